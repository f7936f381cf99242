"""The whole pipeline on real data, run from the chart's WorkflowTemplate by the local runner.

`make demo` (Iris, then serving) runs as a subprocess, exactly as a newcomer runs it. The
second data set, scikit-learn's wine, runs against a shared real MLflow server to check
the registry afterwards: tags, aliases, artifacts, re-registration and the champion gate.
"""

from __future__ import annotations

import hashlib
import json
import subprocess
from pathlib import Path

import mlflow
import pytest
import yaml

from mlship.example_data import load_frame
from mlship.local_runner import PipelineRun, build_runner
from tests.pipeline.conftest import IRIS_FEATURES, run_step
from tests.pipeline.workflow_reading import expected_argv
from tests.support.mlflow_server import MlflowServer
from tests.support.paths import REPO, venv_bin

WINE_MODEL = "wine-classifier"


def wine_values(path: Path) -> Path:
    """An override of the dev values for the wine data set: nothing in the chart is Iris-specific."""
    frame = load_frame("wine")
    features: dict[str, object] = {name: None for name in IRIS_FEATURES}  # null removes a key in Helm
    features |= {name: {"dtype": "float", "min": 0, "max": 5000} for name in frame.columns if name != "cultivar"}
    values = {
        "model": {"name": WINE_MODEL},
        "pipeline": {"data": {"exampleDataset": "wine", "source": "/workspace/data/wine.csv",
                              "target": "cultivar", "features": features}},
    }  # fmt: skip
    path.write_text(yaml.safe_dump(values), encoding="utf-8")
    return path


def run_wine(tmp_path: Path, server: MlflowServer, *set_values: str) -> PipelineRun:
    runner = build_runner(
        "dev", tmp_path, server.url, venv_bin("steps", "mlship").parent,
        extra_values=[wine_values(tmp_path / "wine-values.yaml")], set_values=set_values,
        parameters={"git-commit": "c0ffee"}, progress=lambda line: None,
    )  # fmt: skip
    return runner.run()


@pytest.fixture(scope="module")
def wine_run(tmp_path_factory: pytest.TempPathFactory, mlflow_server: MlflowServer) -> PipelineRun:
    result = run_wine(tmp_path_factory.mktemp("wine"), mlflow_server)
    assert result.succeeded, [(task.name, task.status, task.message) for task in result.results]
    return result


def test_wine_pipeline_registers_version_with_provenance(wine_run: PipelineRun, mlflow_server: MlflowServer) -> None:
    client = mlflow.MlflowClient(mlflow_server.url)
    run_id = wine_run.outputs("train")["run-id"]
    version = client.get_model_version_by_alias(WINE_MODEL, "dev")

    assert version.version == wine_run.outputs("register")["version"]
    assert version.run_id == run_id
    data_file = wine_run.run_dir / "workspace" / "data" / "wine.csv"
    assert version.tags["data_hash"] == hashlib.sha256(data_file.read_bytes()).hexdigest()
    assert version.tags["git_commit"] == "c0ffee"
    assert version.tags["run_id"] == run_id
    assert float(version.tags["metric.accuracy"]) >= 0.85
    assert all(isinstance(value, str) for value in version.tags.values())


def test_wine_run_has_tags_and_artifacts(wine_run: PipelineRun, mlflow_server: MlflowServer) -> None:
    client = mlflow.MlflowClient(mlflow_server.url)
    run = client.get_run(wine_run.outputs("train")["run-id"])
    folders = ("validation", "benchmark", "data")
    artifacts = {item.path for folder in folders for item in client.list_artifacts(run.info.run_id, folder)}

    assert run.data.tags["mlship.git_commit"] == "c0ffee"
    assert run.data.tags["mlship.workflow_name"] == wine_run.workflow_name
    assert run.data.tags["mlship.validation.passed"] == "true"
    assert run.data.tags["mlship.benchmark.passed"] == "true"
    assert {"validation/confusion_matrix.png", "validation/summary.json", "benchmark/latency_histogram.png",
            "benchmark/report.json", "data/profile.json"} <= artifacts  # fmt: skip
    assert run.data.params["estimator"] == "sklearn.ensemble.RandomForestClassifier"


def test_register_again_reuses_version(wine_run: PipelineRun, mlflow_server: MlflowServer, tmp_path: Path) -> None:
    client = mlflow.MlflowClient(mlflow_server.url)
    before = client.search_model_versions(f"name = '{WINE_MODEL}'")
    config = wine_run.run_dir / "config" / "pipeline.yaml"

    result = run_step(
        ["register", "--config", str(config), "--run-id", wine_run.outputs("train")["run-id"],
         "--version-out", str(tmp_path / "version")],
        tmp_path, mlflow_server.url,
    )  # fmt: skip

    assert result.returncode == 0, result.stderr
    assert (tmp_path / "version").read_text() == wine_run.outputs("register")["version"]
    assert len(client.search_model_versions(f"name = '{WINE_MODEL}'")) == len(before)


def test_weaker_challenger_keeps_champion(wine_run: PipelineRun, mlflow_server: MlflowServer, tmp_path: Path) -> None:
    client = mlflow.MlflowClient(mlflow_server.url)
    champion = client.get_model_version_by_alias(WINE_MODEL, "dev").version

    result = run_wine(
        tmp_path, mlflow_server,
        "pipeline.train.estimator=sklearn.dummy.DummyClassifier", "pipeline.train.params=null",
        "pipeline.validation.thresholds.accuracy=0", "pipeline.validation.thresholds.f1_macro=0",
    )  # fmt: skip

    statuses = {task.name: task.status for task in result.results}
    assert statuses["validate-model"] == "Failed"
    assert "register" not in statuses
    assert "worse than champion version" in (tmp_path / "logs" / "validate-model.log").read_text()
    assert client.get_model_version_by_alias(WINE_MODEL, "dev").version == champion
    holders = [
        version.version
        for version in client.search_model_versions(f"name = '{WINE_MODEL}'")
        if "dev" in client.get_model_version(WINE_MODEL, version.version).aliases
    ]
    assert holders == [champion]


def container_path(argument: str, run_dir: Path, task: str) -> str:
    """Map a local path of the run back to the container path the chart mounts."""
    mounts = {
        run_dir / "tasks" / task / "tmp": "/tmp",
        run_dir / "workspace": "/workspace",
        run_dir / "config": "/etc/mlship",
    }
    for local, container in mounts.items():
        if argument == str(local) or argument.startswith(f"{local}/"):
            return container + argument[len(str(local)) :]
    return argument


def test_demo_runs_pipeline_and_serves(tmp_path: Path) -> None:
    run_dir = tmp_path / "demo"
    result = subprocess.run(
        [str(venv_bin("dev", "mlship")), "demo", "--run-dir", str(run_dir)],
        capture_output=True, text=True, timeout=1800, cwd=REPO, check=False,
    )  # fmt: skip

    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert "==> predictions from the served model" in result.stdout
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["version"] == "1"
    assert summary["alias"] == "dev"
    assert len(summary["predictions"]) == 6
    assert {answer["meta"]["tags"]["model_version"] for answer in summary["predictions"]} == {"1"}
    correct = sum(answer["actual"] == answer["predicted"] for answer in summary["predictions"])
    assert correct >= 5
    assert (run_dir / "summary.html").read_text().count("<tr>") >= 6

    # Every command the demo ran is the rendered WorkflowTemplate's command for that task.
    from mlship.chart_render import find_object, render_chart
    from mlship.local_runner import WORKFLOW_TEMPLATE

    [template] = render_chart([REPO / "values" / "dev.yaml"], show_only=[WORKFLOW_TEMPLATE])
    assert template is find_object([template], "WorkflowTemplate", "-pipeline")
    parameters = {item["name"]: str(item["value"]) for item in template["spec"]["arguments"]["parameters"]}
    parameters["git-commit"] = summary["steps"][2]["command"].split("--git-commit ")[1].split()[0]
    outputs = {step["name"]: step["outputs"] for step in summary["steps"]}
    executed = [json.loads(line) for line in (run_dir / "pipeline" / "commands.jsonl").read_text().splitlines()]
    assert [entry["task"] for entry in executed] == [step["name"] for step in summary["steps"]]
    for entry in executed:
        ran = [container_path(part, run_dir / "pipeline", entry["task"]) for part in entry["command"]]
        ran[0] = Path(ran[0]).name
        assert ran == expected_argv(template, entry["task"], parameters, summary["workflow"], outputs), entry["task"]
