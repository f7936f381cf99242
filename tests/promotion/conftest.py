"""Fixtures for the promotion suites: real pipeline steps against a real MLflow server.

Candidates are made by the steps image's own commands (`.venv/steps/bin/mlship`), run
as subprocesses with MLFLOW_TRACKING_URI pointing at a server on 127.0.0.1. The values
files are copies of the repository's `values/<env>.yaml` with small training and
benchmark settings, written to a temporary folder, so the tests render the real chart
and never touch the repository's values.
"""

from __future__ import annotations

import io
import json
import os
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import mlflow
import pytest
import yaml
from ruamel.yaml import YAML

from mlship.chart_render import CHART_DIR, PIPELINE_CONFIGMAP_TEMPLATE, find_object, render_chart
from tests.support.mlflow_server import MlflowServer
from tests.support.paths import REPO, venv_bin

MODEL = "iris-classifier"
ENVIRONMENTS = ("dev", "staging", "prod")
# Small enough that a candidate trains and benchmarks in seconds on a shared CI core.
FAST_SETTINGS: dict[str, Any] = {
    "pipeline": {
        "train": {"params": {"n_estimators": 10}},
        "benchmark": {"iterations": 30, "batchSize": 100},
    }
}
STEP_TIMEOUT_SECONDS = 300


def merge_into(node: Any, overrides: dict[str, Any]) -> None:
    """Merge ``overrides`` into a ruamel mapping in place, keeping its comments."""
    for key, value in overrides.items():
        if isinstance(value, dict) and isinstance(node.get(key), dict):
            merge_into(node[key], value)
        else:
            node[key] = value


def write_values(folder: Path, environment: str, overrides: dict[str, Any] | None = None) -> Path:
    """Copy values/<environment>.yaml into ``folder`` with FAST_SETTINGS and ``overrides`` merged in."""
    round_trip = YAML(typ="rt")
    round_trip.preserve_quotes = True
    round_trip.indent(mapping=2, sequence=4, offset=2)
    document = round_trip.load((REPO / "values" / f"{environment}.yaml").read_text(encoding="utf-8"))
    merge_into(document, FAST_SETTINGS)
    merge_into(document, overrides or {})
    folder.mkdir(parents=True, exist_ok=True)
    target = folder / f"{environment}.yaml"
    buffer = io.StringIO()
    round_trip.dump(document, buffer)
    target.write_text(buffer.getvalue(), encoding="utf-8")
    return target


def render_config_file(values_file: Path, output: Path) -> Path:
    """Render the chart's pipeline ConfigMap for ``values_file`` and write its pipeline.yaml to ``output``."""
    objects = render_chart([values_file], show_only=[PIPELINE_CONFIGMAP_TEMPLATE])
    config_map = find_object(objects, "ConfigMap", "-pipeline-config")
    output.write_text(config_map["data"]["pipeline.yaml"], encoding="utf-8")
    return output


class Steps:
    """Run `mlship` commands from the steps virtual environment against one MLflow server."""

    def __init__(self, root: Path, tracking_uri: str) -> None:
        self.root = root
        self.tracking_uri = tracking_uri
        self.values_dir = root / "values"
        self.outputs = root / "outputs"
        self.outputs.mkdir(parents=True, exist_ok=True)
        self.data = root / "iris.csv"
        self.counter = 0
        self.model = MODEL

    def environment(self, extra: dict[str, str] | None = None) -> dict[str, str]:
        inherited = {key: value for key, value in os.environ.items() if key != "PYTHONDONTWRITEBYTECODE"}
        return {
            # Bytecode caching keeps each step's start-up (mostly importing MLflow) to seconds.
            **inherited,
            "MLFLOW_TRACKING_URI": self.tracking_uri,
            "MLSHIP_ACTOR": "ci-tests",
            "MLSHIP_REGISTRY_ATTEMPTS": "2",
            **(extra or {}),
        }

    def start(self, *arguments: str, extra_env: dict[str, str] | None = None) -> subprocess.Popen[str]:
        return subprocess.Popen(
            [str(venv_bin("steps", "mlship")), *arguments],
            env=self.environment(extra_env),
            cwd=self.root,
            text=True,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )

    def run(
        self, *arguments: str, extra_env: dict[str, str] | None = None, expect: int | None = 0
    ) -> subprocess.CompletedProcess[str]:
        result = subprocess.run(
            [str(venv_bin("steps", "mlship")), *arguments],
            env=self.environment(extra_env),
            cwd=self.root,
            text=True,
            capture_output=True,
            timeout=STEP_TIMEOUT_SECONDS,
            check=False,
        )
        if expect is not None:
            assert result.returncode == expect, (
                f"mlship {' '.join(arguments)} exited {result.returncode}, expected {expect}\n"
                f"stdout:\n{result.stdout}\nstderr:\n{result.stderr[-4000:]}"
            )
        return result

    def setup(self) -> Steps:
        """Write the Iris data, the three environments' values and their pipeline configs."""
        self.run("example-data", "--dataset", "iris", "--output", str(self.data))
        for environment in ENVIRONMENTS:
            values = write_values(self.values_dir, environment)
            render_config_file(values, self.root / f"{environment}-pipeline.yaml")
        return self

    def config(self, environment: str) -> Path:
        return self.root / f"{environment}-pipeline.yaml"

    def candidate(self, config: Path | None = None, expect_gates: bool = True) -> str:
        """Train, validate and benchmark one candidate with ``config`` (dev's by default); return its run id."""
        self.counter += 1
        chosen = str(config or self.config("dev"))
        run_id_file = self.outputs / f"run-{self.counter}"
        self.run(
            "train",
            "--config",
            chosen,
            "--data",
            str(self.data),
            "--git-commit",
            f"commit{self.counter:04d}",
            "--workflow-name",
            f"test-{self.counter}",
            "--run-id-out",
            str(run_id_file),
        )
        run_id = run_id_file.read_text()
        self.run(
            "validate-model",
            "--config",
            chosen,
            "--data",
            str(self.data),
            "--run-id",
            run_id,
            expect=0 if expect_gates else 1,
        )
        if expect_gates:
            self.run("benchmark", "--config", chosen, "--data", str(self.data), "--run-id", run_id)
        return run_id

    def register(
        self, run_id: str, config: Path | None = None, expect: int | None = 0, extra_env: dict[str, str] | None = None
    ) -> subprocess.CompletedProcess[str]:
        return self.run(
            "register",
            "--config",
            str(config or self.config("dev")),
            "--run-id",
            run_id,
            extra_env=extra_env,
            expect=expect,
        )

    def promote(
        self, source: str, target: str, *extra: str, expect: int | None = 0, extra_env: dict[str, str] | None = None
    ) -> subprocess.CompletedProcess[str]:
        return self.run(
            "promote",
            "--model",
            self.model,
            "--from",
            source,
            "--to",
            target,
            "--values-dir",
            str(self.values_dir),
            "--chart-dir",
            str(CHART_DIR),
            *extra,
            extra_env=extra_env,
            expect=expect,
        )

    def rollback(self, environment: str, *extra: str, expect: int | None = 0) -> subprocess.CompletedProcess[str]:
        return self.run(
            "rollback",
            "--model",
            self.model,
            "--env",
            environment,
            "--values-dir",
            str(self.values_dir),
            "--chart-dir",
            str(CHART_DIR),
            *extra,
            expect=expect,
        )

    def pinned_version(self, environment: str) -> str:
        values = yaml.safe_load((self.values_dir / f"{environment}.yaml").read_text(encoding="utf-8"))
        return str(values["serving"]["model"]["version"])


def audit_records(steps: Steps, model: str) -> list[dict[str, str]]:
    """Return the model's audit log as `mlship audit --json` prints it."""
    result = steps.run("audit", "--model", model, "--json")
    return [json.loads(line) for line in result.stdout.splitlines() if line.strip()]


def client_for(tracking_uri: str) -> mlflow.MlflowClient:
    return mlflow.MlflowClient(tracking_uri=tracking_uri, registry_uri=tracking_uri)


def alias_holder(client: mlflow.MlflowClient, alias: str, model: str = MODEL) -> str | None:
    from mlflow.exceptions import MlflowException

    try:
        return str(client.get_model_version_by_alias(model, alias).version)
    except MlflowException:
        return None


@pytest.fixture(scope="session")
def sqlite_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[MlflowServer]:
    """One MLflow server on SQLite for the whole session; the outage test stops and restarts it."""
    server = MlflowServer(tmp_path_factory.mktemp("mlflow-sqlite"))
    server.start()
    yield server
    server.stop()


@dataclass
class Candidates:
    """Runs made once per session: two that pass every gate and one that fails validation (accuracy below 0.999)."""

    steps: Steps
    good: list[str]
    failed_validation: str


@pytest.fixture(scope="session")
def candidates(sqlite_server: MlflowServer, tmp_path_factory: pytest.TempPathFactory) -> Candidates:
    steps = Steps(tmp_path_factory.mktemp("steps"), sqlite_server.url).setup()
    good = [steps.candidate(), steps.candidate()]
    strict = write_values(
        steps.root / "values-strict", "dev", {"pipeline": {"validation": {"thresholds": {"accuracy": 0.999}}}}
    )
    failed = steps.candidate(render_config_file(strict, steps.root / "strict-pipeline.yaml"), expect_gates=False)
    return Candidates(steps, good, failed)


def model_steps(
    candidates: Candidates, root: Path, model: str, overrides: dict[str, dict[str, Any]] | None = None
) -> Steps:
    """Return Steps on the session server whose values and configs name ``model``, for an isolated test."""
    steps = Steps(root, candidates.steps.tracking_uri)
    steps.model = model
    steps.data = candidates.steps.data
    for environment in ENVIRONMENTS:
        # No version pinned yet, so a test can check exactly what promote and rollback pin.
        changes = {"model": {"name": model}, "serving": {"model": {"version": ""}}}
        merge_into(changes, (overrides or {}).get(environment, {}))
        values = write_values(steps.values_dir, environment, changes)
        render_config_file(values, steps.config(environment))
    return steps
