"""The main job on one machine: the whole pipeline, then serving, with no cluster.

``mlship demo`` starts a real MLflow server on 127.0.0.1, with SQLite and artifacts under
the run directory. It runs the chart's pipeline for the dev environment with the local
runner, then starts the seldon-core model server on the alias the pipeline set and sends
predictions. It prints a summary, writes it as HTML to the run directory and to the MLflow
run, and stops both servers.
"""

from __future__ import annotations

import argparse
import html
import json
import logging
import shutil
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import yaml

from mlship.chart_render import REPO_ROOT
from mlship.errors import GateFailedError, InvalidInputError
from mlship.local_runner import LocalRunner, PipelineRun, build_runner, git_commit
from mlship.local_servers import LOOPBACK, free_port, mlflow_server, model_server, require_free_port

log = logging.getLogger(__name__)

VENVS = REPO_ROOT / ".venv"
PREDICTION_ROWS = 6
SUMMARY_METRICS = ("test_accuracy", "test_f1_macro", "latency_single_p99_ms", "latency_batch_p99_ms")


def say(line: str = "") -> None:
    print(line, flush=True)


def pipeline_settings(runner: LocalRunner) -> dict[str, Any]:
    """Return the pipeline config file that the chart rendered for this environment."""
    document: dict[str, Any] = yaml.safe_load(runner.config_map["data"]["pipeline.yaml"])
    return document


def post_json(url: str, body: dict[str, Any]) -> tuple[int, dict[str, Any]]:
    request = urllib.request.Request(  # noqa: S310 (loopback only)
        url, data=json.dumps(body).encode(), headers={"Content-Type": "application/json"}, method="POST"
    )
    try:
        with urllib.request.urlopen(request, timeout=10) as response:  # noqa: S310
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read() or b"{}")


def send_predictions(url: str, data_file: Path, settings: dict[str, Any]) -> list[dict[str, Any]]:
    """Send a few rows of the training data, one request each, and collect the responses."""
    import pandas as pd

    frame = pd.read_csv(data_file) if data_file.suffix == ".csv" else pd.read_parquet(data_file)
    names = sorted(settings["data"]["features"])
    target = settings["data"]["target"]
    sample = frame.sample(n=min(PREDICTION_ROWS, len(frame)), random_state=settings["split"]["randomSeed"])

    answers = []
    for _, row in sample.iterrows():
        values = [float(row[name]) for name in names]
        status, body = post_json(url, {"data": {"names": names, "ndarray": [values]}})
        if status != 200:
            raise GateFailedError(f"the model server returned HTTP {status}: {body}")
        probabilities = dict(zip(body["data"]["names"], body["data"]["ndarray"][0], strict=True))
        predicted = max(probabilities, key=lambda label: probabilities[label])
        answers.append(
            {
                "features": dict(zip(names, values, strict=True)),
                "actual": str(row[target]),
                "predicted": predicted,
                "probability": probabilities[predicted],
                "meta": body.get("meta", {}),
            }
        )
    return answers


def step_table(result: PipelineRun) -> list[str]:
    lines = [f"  {'step':<16} {'result':<10} {'seconds':>8}"]
    for task in result.results:
        lines.append(f"  {task.name:<16} {task.status:<10} {task.seconds:8.1f}  {task.message}".rstrip())
    return lines


def run_metrics(tracking_uri: str, run_id: str) -> dict[str, float]:
    import mlflow

    client = mlflow.MlflowClient(tracking_uri)
    return dict(sorted(client.get_run(run_id).data.metrics.items()))


def write_summary_html(path: Path, summary: dict[str, Any]) -> None:
    """Write the demo summary as a small self-contained HTML page."""

    def table(rows: list[list[Any]], header: list[str]) -> str:
        head = "".join(f"<th>{html.escape(str(cell))}</th>" for cell in header)
        body = "".join("<tr>" + "".join(f"<td>{html.escape(str(cell))}</td>" for cell in row) + "</tr>" for row in rows)
        return f"<table><tr>{head}</tr>{body}</table>"

    steps = [[step["name"], step["status"], f"{step['seconds']:.1f}", step["message"]] for step in summary["steps"]]
    metric_rows = [[name, f"{value:.4f}"] for name, value in summary["metrics"].items()]
    predictions = [
        [answer["actual"], answer["predicted"], f"{answer['probability']:.3f}"] for answer in summary["predictions"]
    ]
    page = f"""<!doctype html>
<html><head><meta charset="utf-8"><title>mlship pipeline summary</title>
<style>body{{font-family:sans-serif;margin:2em}}table{{border-collapse:collapse;margin-bottom:1.5em}}
td,th{{border:1px solid #ccc;padding:4px 10px;text-align:left}}th{{background:#eee}}</style></head>
<body><h1>mlship pipeline summary</h1>
<p>Workflow {html.escape(summary["workflow"])}, environment {html.escape(summary["environment"])},
model {html.escape(summary["model"])} version {html.escape(str(summary["version"]))}
(alias {html.escape(summary["alias"])}), run {html.escape(summary["runId"])}.</p>
<h2>Steps</h2>{table(steps, ["step", "result", "seconds", "message"])}
<h2>Metrics</h2>{table(metric_rows, ["metric", "value"])}
<h2>Predictions from the model server</h2>{table(predictions, ["actual", "predicted", "probability"])}
</body></html>
"""
    path.write_text(page, encoding="utf-8")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--env", default="dev", help="environment whose values file to use (default: dev)")
    parser.add_argument("--run-dir", type=Path, default=Path(".run/demo"), help="folder for the run (emptied first)")
    parser.add_argument("--mlflow-port", type=int, default=0, help="MLflow server port (default: a free port)")
    parser.add_argument("--model-port", type=int, default=0, help="model server HTTP port (default: a free port)")


def run(args: argparse.Namespace) -> int:
    for flag, port in (("--mlflow-port", args.mlflow_port), ("--model-port", args.model_port)):
        if port:
            require_free_port(port, flag)
    for venv in ("registry", "steps", "serve"):
        if not (VENVS / venv / "bin" / "python").exists():
            raise InvalidInputError(f"virtual environment {VENVS / venv} is missing; run `make venvs` first")

    run_dir = args.run_dir.resolve()
    shutil.rmtree(run_dir, ignore_errors=True)
    run_dir.mkdir(parents=True)
    started = time.monotonic()

    mlflow_port = args.mlflow_port or free_port()
    say(f"==> starting the MLflow server on http://{LOOPBACK}:{mlflow_port} (SQLite under {run_dir / 'mlflow'})")
    with mlflow_server(VENVS / "registry", run_dir / "mlflow", mlflow_port) as registry:
        tracking_uri = f"http://{LOOPBACK}:{mlflow_port}"

        say(f"==> running the {args.env} pipeline from the chart's WorkflowTemplate")
        runner = build_runner(
            args.env, run_dir / "pipeline", tracking_uri, VENVS / "steps" / "bin",
            parameters={"git-commit": git_commit()}, progress=say,
        )  # fmt: skip
        result = runner.run()
        say()
        say("\n".join(step_table(result)))
        if not result.succeeded:
            raise GateFailedError(f"the pipeline failed; step logs are in {result.run_dir / 'logs'}")

        settings = pipeline_settings(runner)
        run_id = result.outputs("train")["run-id"]
        version = result.outputs("register")["version"]
        model_uri = f"models:/{settings['modelName']}@{settings['alias']}"

        http_port = args.model_port or free_port()
        say(f"\n==> starting the model server on {model_uri} at http://{LOOPBACK}:{http_port}")
        server = model_server(VENVS / "serve", run_dir / "serve", model_uri, tracking_uri, http_port, free_port())
        with server:
            url = f"http://{LOOPBACK}:{http_port}/api/v1.0/predictions"
            data_file = Path(runner.to_local(runner.parameters["data-source"], "demo"))
            predictions = send_predictions(url, data_file, settings)

        metrics = run_metrics(tracking_uri, run_id)
        summary = {
            "workflow": result.workflow_name,
            "environment": args.env,
            "model": settings["modelName"],
            "alias": settings["alias"],
            "version": version,
            "runId": run_id,
            "steps": [vars(task) | {"command": " ".join(task.command)} for task in result.results],
            "metrics": metrics,
            "predictions": predictions,
            "modelServer": url,
            "mlflow": tracking_uri,
        }
        write_summary_html(run_dir / "summary.html", summary)
        (run_dir / "summary.json").write_text(json.dumps(summary, indent=2, default=str), encoding="utf-8")
        log_summary(tracking_uri, run_id, run_dir / "summary.html")
        registry_log = registry.log_path

    say("\n==> predictions from the served model")
    say(f"  {'actual':<14} {'predicted':<14} {'probability':>11}  model version")
    for answer in predictions:
        served = answer["meta"].get("tags", {}).get("model_version", "?")
        say(f"  {answer['actual']:<14} {answer['predicted']:<14} {answer['probability']:11.3f}  {served}")

    say("\n==> summary")
    rows = [
        ("model", f"{settings['modelName']} version {version} (alias {settings['alias']})"),
        ("model URI", model_uri),
        ("MLflow run", run_id),
        *[(name, f"{metrics[name]:.4f}") for name in SUMMARY_METRICS if name in metrics],
        ("model server", f"{url} (stopped)"),
        ("MLflow server", f"{tracking_uri} (stopped; data in {run_dir / 'mlflow'}, log {registry_log})"),
        ("summary", str(run_dir / "summary.html")),
        ("wall time", f"{time.monotonic() - started:.1f} s"),
    ]
    width = max(len(label) for label, _ in rows)
    for label, value in rows:
        say(f"  {label:<{width}}  {value}")
    return 0


def log_summary(tracking_uri: str, run_id: str, page: Path) -> None:
    import mlflow

    mlflow.MlflowClient(tracking_uri).log_artifact(run_id, str(page), "pipeline")
