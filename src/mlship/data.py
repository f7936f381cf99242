"""Reading the training data, hashing it and splitting it the same way in every step."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pandas as pd
from sklearn.model_selection import train_test_split

from mlship.config import DataConfig, SplitConfig
from mlship.errors import InvalidInputError

SUPPORTED_SUFFIXES = (".csv", ".parquet", ".pq")


def read_table(path: str | Path) -> pd.DataFrame:
    """Read a CSV or Parquet file, raising InvalidInputError with the path and the fix."""
    source = Path(path)
    if source.suffix.lower() not in SUPPORTED_SUFFIXES:
        raise InvalidInputError(
            f"data source {source} has an unsupported suffix {source.suffix!r}; "
            f"use one of {', '.join(SUPPORTED_SUFFIXES)}"
        )
    if not source.is_file():
        raise InvalidInputError(
            f"data source {source} not found; check pipeline.data.source in the values file or the --data flag"
        )
    if source.stat().st_size == 0:
        raise InvalidInputError(f"data source {source} is empty; expected a header row and data rows")

    try:
        if source.suffix.lower() == ".csv":
            return pd.read_csv(source)
        return pd.read_parquet(source)
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError, OSError, ValueError) as error:
        raise InvalidInputError(f"data source {source} could not be parsed: {error}") from None


def hash_file(path: str | Path) -> str:
    """Return the SHA-256 of the file's bytes, the data version recorded with each run."""
    digest = hashlib.sha256()
    with Path(path).open("rb") as stream:
        for block in iter(lambda: stream.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def features_and_target(frame: pd.DataFrame, data: DataConfig) -> tuple[pd.DataFrame, pd.Series]:
    """Select the declared features in declared order, cast to float, and the target."""
    missing = [name for name in [*data.feature_names, data.target] if name not in frame.columns]
    if missing:
        raise InvalidInputError(
            f"columns {', '.join(missing)} missing from the data; run validate-data for the full report"
        )
    features = frame[data.feature_names].astype("float64")
    return features, frame[data.target]


def split(
    features: pd.DataFrame, target: pd.Series, settings: SplitConfig
) -> tuple[pd.DataFrame, pd.DataFrame, pd.Series, pd.Series]:
    """Split into train and held-out test sets, stratified and seeded so steps agree."""
    x_train, x_test, y_train, y_test = train_test_split(
        features,
        target,
        test_size=settings.test_size,
        random_state=settings.random_seed,
        stratify=target,
    )
    return x_train, x_test, y_train, y_test
