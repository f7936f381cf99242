"""Write a data set that scikit-learn ships (Iris, wine, breast cancer) to CSV or Parquet.

Column names become snake_case (``sepal length (cm)`` -> ``sepal_length_cm``) and the
target column contains class names, so the file looks like data a team would bring.
"""

from __future__ import annotations

import argparse
import logging
import re
from pathlib import Path

import pandas as pd
from sklearn import datasets

from mlship.errors import InvalidInputError

log = logging.getLogger(__name__)

# data set name -> (loader, name of the target column)
DATASETS = {
    "iris": (datasets.load_iris, "species"),
    "wine": (datasets.load_wine, "cultivar"),
    "breast_cancer": (datasets.load_breast_cancer, "diagnosis"),
}


def column_name(raw: str) -> str:
    """Turn a scikit-learn feature name into a snake_case column name."""
    return re.sub(r"[^0-9a-z]+", "_", raw.lower()).strip("_")


def load_frame(name: str) -> pd.DataFrame:
    """Return the data set ``name`` as a frame with snake_case features and a class-name target."""
    if name not in DATASETS:
        raise InvalidInputError(f"unknown data set {name!r}; choose one of {', '.join(DATASETS)}")
    loader, target = DATASETS[name]
    bunch = loader()
    frame = pd.DataFrame(bunch.data, columns=[column_name(str(raw)) for raw in bunch.feature_names])
    frame[target] = [str(bunch.target_names[index]) for index in bunch.target]
    return frame


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--dataset", required=True, choices=sorted(DATASETS), help="data set to write")
    parser.add_argument("--output", required=True, help="output file; .csv, or .parquet for Parquet")


def run(args: argparse.Namespace) -> int:
    frame = load_frame(args.dataset)
    output = Path(args.output)
    output.parent.mkdir(parents=True, exist_ok=True)

    if output.suffix.lower() in (".parquet", ".pq"):
        frame.to_parquet(output, index=False)
    elif output.suffix.lower() == ".csv":
        frame.to_csv(output, index=False)
    else:
        raise InvalidInputError(f"--output {output} must end in .csv or .parquet")

    log.info("wrote data set %s: %d rows, %d columns to %s", args.dataset, len(frame), frame.shape[1], output)
    return 0
