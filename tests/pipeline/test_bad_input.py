"""Bad input to the steps: each fails with one clear error line and leaves the registry as it was."""

from __future__ import annotations

import socket
import subprocess
import time
from pathlib import Path

import mlflow
import pandas as pd
import pytest

from tests.pipeline.conftest import error_lines, iris_config, run_step, write_config
from tests.support.mlflow_server import MlflowServer
from tests.support.paths import venv_bin


def registry_snapshot(tracking_uri: str) -> tuple[int, int]:
    """Count registered models and versions, to prove a failed step changed nothing."""
    client = mlflow.MlflowClient(tracking_uri)
    models = client.search_registered_models()
    return len(models), len(client.search_model_versions())


def validate(tmp_path: Path, data: Path, config: dict[str, object] | None = None) -> subprocess.CompletedProcess[str]:
    config_file = write_config(tmp_path / "pipeline.yaml", config or iris_config())
    return run_step(
        ["validate-data", "--config", str(config_file), "--data", str(data),
         "--valid-out", str(tmp_path / "valid"), "--profile-out", str(tmp_path / "profile.json")],
        tmp_path,
    )  # fmt: skip


def test_missing_data_file_names_path(tmp_path: Path) -> None:
    result = validate(tmp_path, tmp_path / "absent.csv")

    assert result.returncode == 1
    [line] = error_lines(result)
    assert "absent.csv not found" in line
    assert "pipeline.data.source" in line


def test_empty_file_is_rejected(tmp_path: Path) -> None:
    empty = tmp_path / "empty.csv"
    empty.write_bytes(b"")

    result = validate(tmp_path, empty)

    assert result.returncode == 1
    assert "is empty" in error_lines(result)[0]


def test_header_only_file_fails_row_count(tmp_path: Path, iris_csv: Path) -> None:
    header_only = tmp_path / "header.csv"
    header_only.write_text(iris_csv.read_text().splitlines()[0] + "\n")

    result = validate(tmp_path, header_only)

    assert result.returncode == 1
    assert "0 row(s), below the minimum 100" in error_lines(result)[0]


def test_wrong_and_missing_columns_reported(tmp_path: Path, iris_csv: Path) -> None:
    frame = pd.read_csv(iris_csv).rename(columns={"sepal_width_cm": "sepal_width"}).drop(columns=["petal_width_cm"])
    bad = tmp_path / "columns.csv"
    frame.to_csv(bad, index=False)

    result = validate(tmp_path, bad)

    assert result.returncode == 1
    line = error_lines(result)[0]
    assert "missing column(s): petal_width_cm, sepal_width_cm" in line
    assert (tmp_path / "valid").read_text() == "false"


def test_non_numeric_values_named(tmp_path: Path, iris_csv: Path) -> None:
    frame = pd.read_csv(iris_csv).astype({"petal_length_cm": "object"})
    frame.loc[3, "petal_length_cm"] = "n/a-cm"
    bad = tmp_path / "text.csv"
    frame.to_csv(bad, index=False)

    result = validate(tmp_path, bad)

    assert result.returncode == 1
    assert "column petal_length_cm: 1 non-numeric value(s) such as 'n/a-cm'" in error_lines(result)[0]


def test_every_violation_reported_at_once(tmp_path: Path, iris_csv: Path) -> None:
    frame = pd.read_csv(iris_csv)
    frame = frame[frame["species"] != "setosa"].head(99).reset_index(drop=True)  # two classes
    frame = pd.concat([frame, frame.tail(1).assign(species="setosa")], ignore_index=True)  # 1 % setosa
    frame.loc[0, "sepal_length_cm"] = 42.0  # above max 10
    frame.loc[1, "sepal_width_cm"] = None  # missing
    bad = tmp_path / "many.csv"
    frame.to_csv(bad, index=False)

    result = validate(tmp_path, bad)

    assert result.returncode == 1
    line = error_lines(result)[0]
    assert "data rule(s) violated" in line
    assert "sepal_length_cm: 1 value(s) above the maximum 10" in line
    assert "sepal_width_cm: 1.0% missing values" in line
    assert "class 'setosa' is 1.0% of the rows" in line


def test_profile_written_for_valid_data(tmp_path: Path, iris_csv: Path) -> None:
    result = validate(tmp_path, iris_csv)

    assert result.returncode == 0, result.stderr
    assert (tmp_path / "valid").read_text() == "true"
    profile = pd.read_json(tmp_path / "profile.json", typ="series")
    assert profile["rows"] == 150
    assert set(profile["features"]) == {"sepal_length_cm", "sepal_width_cm", "petal_length_cm", "petal_width_cm"}


def test_unknown_config_key_named(tmp_path: Path, iris_csv: Path) -> None:
    config = iris_config()
    config["validation"] = {**config["validation"], "treshold": 0.9}  # type: ignore[dict-item]

    result = validate(tmp_path, iris_csv, config)

    assert result.returncode == 1
    assert "unknown key(s) validation.treshold" in error_lines(result)[0]


def test_non_sklearn_estimator_rejected(tmp_path: Path, iris_csv: Path, mlflow_server: MlflowServer) -> None:
    config = iris_config(train={"estimator": "os.system", "params": {}})
    config_file = write_config(tmp_path / "pipeline.yaml", config)
    before = registry_snapshot(mlflow_server.url)

    result = run_step(["train", "--config", str(config_file), "--data", str(iris_csv)], tmp_path, mlflow_server.url)

    assert result.returncode == 1
    assert "must be a scikit-learn class path" in error_lines(result)[0]
    assert registry_snapshot(mlflow_server.url) == before


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_unreachable_registry_exits_75(tmp_path: Path, iris_csv: Path) -> None:
    config_file = write_config(tmp_path / "pipeline.yaml", iris_config())
    uri = f"http://127.0.0.1:{closed_port()}"

    started = time.monotonic()
    result = run_step(["train", "--config", str(config_file), "--data", str(iris_csv)], tmp_path, uri)
    seconds = time.monotonic() - started

    assert result.returncode == 75
    line = error_lines(result)[0]
    assert f"connecting to MLflow at {uri} failed after 2 attempts" in line
    assert "check that the MLflow server" in line
    # Two attempts with a 0.5 s backoff, plus interpreter start-up; far below a hang.
    assert seconds < 120


def test_unknown_run_id_not_registered(tmp_path: Path, mlflow_server: MlflowServer) -> None:
    config_file = write_config(tmp_path / "pipeline.yaml", iris_config())
    before = registry_snapshot(mlflow_server.url)

    result = run_step(["register", "--config", str(config_file), "--run-id", "0" * 32], tmp_path, mlflow_server.url)

    assert result.returncode == 1
    assert f"run {'0' * 32} not found" in error_lines(result)[0]
    assert registry_snapshot(mlflow_server.url) == before


def test_unknown_run_id_in_validate_model(tmp_path: Path, iris_csv: Path, mlflow_server: MlflowServer) -> None:
    config_file = write_config(tmp_path / "pipeline.yaml", iris_config())

    result = run_step(
        ["validate-model", "--config", str(config_file), "--data", str(iris_csv), "--run-id", "f" * 32],
        tmp_path,
        mlflow_server.url,
    )

    assert result.returncode == 1
    assert f"no model in run {'f' * 32}" in error_lines(result)[0]


def test_demo_rejects_port_in_use(tmp_path: Path) -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]

        result = subprocess.run(
            [str(venv_bin("dev", "mlship")), "demo", "--run-dir", str(tmp_path / "demo"), "--mlflow-port", str(port)],
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )

    assert result.returncode == 1
    assert f"port {port} on 127.0.0.1 is already in use" in result.stderr
    assert "--mlflow-port" in result.stderr


@pytest.mark.parametrize("command", ["validate-data", "train", "validate-model", "benchmark", "register", "run-local"])
def test_help_lists_flags(command: str, tmp_path: Path) -> None:
    result = run_step([command, "--help"], tmp_path)

    assert result.returncode == 0
    assert f"usage: mlship {command}" in result.stdout
