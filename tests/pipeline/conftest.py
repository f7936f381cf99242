"""Fixtures for the pipeline tests: a real MLflow server and the steps' environment."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from tests.support.mlflow_server import MlflowServer
from tests.support.paths import REPO, venv_bin

STEPS_MLSHIP = venv_bin("steps", "mlship")
IRIS_FEATURES = ["sepal_length_cm", "sepal_width_cm", "petal_length_cm", "petal_width_cm"]


@pytest.fixture(scope="session")
def mlflow_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[MlflowServer]:
    with MlflowServer(tmp_path_factory.mktemp("mlflow")) as server:
        yield server


def pod_environment(scratch: Path, tracking_uri: str | None = None) -> dict[str, str]:
    """Environment like a pipeline pod's: HOME and TMPDIR on the writable /tmp mount."""
    scratch.mkdir(parents=True, exist_ok=True)
    environment = {**os.environ, "HOME": str(scratch), "TMPDIR": str(scratch), "MLSHIP_REGISTRY_ATTEMPTS": "2"}
    environment.pop("MLFLOW_TRACKING_URI", None)
    if tracking_uri:
        environment["MLFLOW_TRACKING_URI"] = tracking_uri
    return environment


def run_step(
    arguments: list[str], scratch: Path, tracking_uri: str | None = None, timeout: float = 600
) -> subprocess.CompletedProcess[str]:
    """Run `mlship <arguments>` from the steps image's environment."""
    return subprocess.run(
        [str(STEPS_MLSHIP), *arguments],
        capture_output=True,
        text=True,
        env=pod_environment(scratch, tracking_uri),
        cwd=scratch,
        timeout=timeout,
        check=False,
    )


def error_lines(result: subprocess.CompletedProcess[str]) -> list[str]:
    """The step's own one-line error messages on standard error."""
    return [line for line in result.stderr.splitlines() if line.startswith("mlship ") and ": error: " in line]


def iris_config(**overrides: object) -> dict[str, object]:
    """A pipeline config for the Iris CSV that `mlship example-data --dataset iris` writes."""
    config: dict[str, object] = {
        "environment": "test",
        "modelName": "iris-test",
        "alias": "test",
        "data": {
            "target": "species",
            "features": {name: {"dtype": "float", "min": 0, "max": 10} for name in IRIS_FEATURES},
            "minRows": 100,
            "maxMissingFraction": 0.0,
            "minClassFraction": 0.2,
        },
        "split": {"testSize": 0.25, "randomSeed": 42},
        "train": {"estimator": "sklearn.linear_model.LogisticRegression", "params": {"max_iter": 500}},
        "validation": {"thresholds": {"accuracy": 0.8}, "primaryMetric": "f1_macro", "championTolerance": 0.02},
        "benchmark": {"batchSize": 200, "iterations": 50, "maxP99Ms": {"single": 5000, "batch": 5000}},
    }
    config.update(overrides)
    return config


def write_config(path: Path, config: dict[str, object]) -> Path:
    path.write_text(yaml.safe_dump(config), encoding="utf-8")
    return path


@pytest.fixture(scope="session")
def iris_csv(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("iris")
    result = run_step(["example-data", "--dataset", "iris", "--output", str(folder / "iris.csv")], folder)
    assert result.returncode == 0, result.stderr
    return folder / "iris.csv"


__all__ = ["REPO"]
