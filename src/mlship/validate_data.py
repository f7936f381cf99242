"""Check the training data against the schema declared in the pipeline config.

Every rule runs and every violation is reported, so one run shows all that is wrong
with a file. The step writes a per-feature profile, which the train step logs with the
run as the reference for drift checks, and the SHA-256 of the file.
"""

from __future__ import annotations

import argparse
import json
import logging
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from mlship.config import DataConfig, FeatureSpec, load_config
from mlship.data import hash_file, read_table
from mlship.errors import GateFailedError
from mlship.outputs import write_json, write_value

log = logging.getLogger(__name__)


@dataclass
class DataReport:
    """The outcome of all rules: the violations found and the profile of the data."""

    violations: list[str] = field(default_factory=list)
    profile: dict[str, Any] = field(default_factory=dict)

    @property
    def valid(self) -> bool:
        return not self.violations


def _check_feature(frame: pd.DataFrame, spec: FeatureSpec, data: DataConfig, report: DataReport) -> None:
    column = frame[spec.name]

    if spec.dtype == "category":
        report.profile["features"][spec.name] = {
            "dtype": spec.dtype,
            "missing": int(column.isna().sum()),
            "distinct": int(column.nunique()),
        }
        return

    numeric = pd.to_numeric(column, errors="coerce")
    non_numeric = column.notna() & numeric.isna()
    if non_numeric.any():
        examples = ", ".join(repr(value) for value in column[non_numeric].unique()[:3])
        report.violations.append(
            f"column {spec.name}: {int(non_numeric.sum())} non-numeric value(s) such as {examples}"
        )
    if spec.dtype == "int":
        fractional = numeric.notna() & (numeric != np.floor(numeric))
        if fractional.any():
            report.violations.append(f"column {spec.name}: {int(fractional.sum())} non-integer value(s)")

    missing_fraction = float(column.isna().mean()) if len(column) else 0.0
    if missing_fraction > data.max_missing_fraction:
        report.violations.append(
            f"column {spec.name}: {missing_fraction:.1%} missing values, above the maximum "
            f"{data.max_missing_fraction:.1%} (pipeline.data.maxMissingFraction)"
        )
    infinite = np.isinf(numeric.to_numpy(dtype="float64", na_value=np.nan))
    if infinite.any():
        report.violations.append(f"column {spec.name}: {int(infinite.sum())} infinite value(s)")

    if spec.min is not None and (numeric < spec.min).any():
        report.violations.append(
            f"column {spec.name}: {int((numeric < spec.min).sum())} value(s) below the minimum {spec.min} "
            f"(lowest {numeric.min()})"
        )
    if spec.max is not None and (numeric > spec.max).any():
        report.violations.append(
            f"column {spec.name}: {int((numeric > spec.max).sum())} value(s) above the maximum {spec.max} "
            f"(highest {numeric.max()})"
        )

    finite = numeric[np.isfinite(numeric)]
    quantiles = finite.quantile([0.05, 0.25, 0.5, 0.75, 0.95]) if len(finite) else pd.Series(dtype=float)
    report.profile["features"][spec.name] = {
        "dtype": spec.dtype,
        "count": int(finite.count()),
        "missing": int(column.isna().sum()),
        "mean": float(finite.mean()) if len(finite) else None,
        "std": float(finite.std()) if len(finite) > 1 else None,
        "min": float(finite.min()) if len(finite) else None,
        "max": float(finite.max()) if len(finite) else None,
        "quantiles": {f"p{int(q * 100)}": float(value) for q, value in quantiles.items()},
    }


def _check_target(frame: pd.DataFrame, data: DataConfig, report: DataReport) -> None:
    target = frame[data.target]
    if target.isna().any():
        report.violations.append(f"target column {data.target}: {int(target.isna().sum())} missing label(s)")

    counts = target.value_counts(dropna=True)
    report.profile["classes"] = {str(label): int(count) for label, count in counts.items()}
    if len(counts) < 2:
        report.violations.append(f"target column {data.target}: {len(counts)} class(es); a classifier needs at least 2")
        return

    fractions = counts / counts.sum()
    for label, fraction in fractions.items():
        if fraction < data.min_class_fraction:
            report.violations.append(
                f"target column {data.target}: class {label!r} is {fraction:.1%} of the rows, below the "
                f"minimum {data.min_class_fraction:.1%} (pipeline.data.minClassFraction)"
            )


def validate_frame(frame: pd.DataFrame, data: DataConfig) -> DataReport:
    """Run every rule on ``frame`` and return all violations together with the profile."""
    report = DataReport(profile={"rows": len(frame), "features": {}, "classes": {}})

    expected = [*data.feature_names, data.target]
    missing = [name for name in expected if name not in frame.columns]
    if missing:
        report.violations.append(
            f"missing column(s): {', '.join(missing)}; the file has {', '.join(map(str, frame.columns))}"
        )
    unexpected = [str(name) for name in frame.columns if name not in expected]
    if unexpected:
        log.warning("ignoring undeclared column(s): %s", ", ".join(unexpected))

    if len(frame) < data.min_rows:
        report.violations.append(f"{len(frame)} row(s), below the minimum {data.min_rows} (pipeline.data.minRows)")

    for spec in data.features:
        if spec.name in frame.columns:
            _check_feature(frame, spec, data, report)
    if data.target in frame.columns:
        _check_target(frame, data, report)
    return report


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", help="pipeline config file (default: $MLSHIP_CONFIG or /etc/mlship/pipeline.yaml)")
    parser.add_argument("--data", required=True, help="CSV or Parquet file to check")
    parser.add_argument("--profile-out", help="write the per-feature profile (JSON) here")
    parser.add_argument("--data-hash-out", help="write the SHA-256 of the data file here")
    parser.add_argument("--valid-out", help="write true or false here")


def run(args: argparse.Namespace) -> int:
    config = load_config(args.config)
    frame = read_table(args.data)
    data_hash = hash_file(args.data)
    log.info("validating %s: %d rows, %d columns, sha256 %s", args.data, len(frame), frame.shape[1], data_hash)

    report = validate_frame(frame, config.data)
    report.profile["dataHash"] = data_hash
    report.profile["violations"] = report.violations

    write_json(args.profile_out, report.profile)
    write_value(args.data_hash_out, data_hash)
    write_value(args.valid_out, report.valid)

    if not report.valid:
        for violation in report.violations:
            log.error("data rule violated: %s", violation)
        raise GateFailedError(
            f"{len(report.violations)} data rule(s) violated in {args.data}: " + "; ".join(report.violations)
        )
    log.info("data valid: %s", json.dumps(report.profile["classes"], sort_keys=True))
    return 0
