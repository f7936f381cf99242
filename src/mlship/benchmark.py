"""Measure the candidate's prediction latency the way the model server calls it.

The model is loaded with the server's own loader and called through the same
``predict_proba`` path, for single rows and for batches drawn from the training data.
The step fails when a p99 exceeds the limit in ``benchmark.maxP99Ms``. It measures
the model call, not HTTP; the serving benchmark in ``ci/`` measures the whole server.
"""

from __future__ import annotations

import argparse
import logging
import tempfile
import time

import mlflow
import numpy as np

from mlship.config import load_config
from mlship.data import features_and_target, read_table
from mlship.errors import GateFailedError
from mlship.model_loader import load_model
from mlship.outputs import write_json, write_value
from mlship.reports import close, latency_histogram_figure
from mlship.tracking import check_server
from mlship.train import MODEL_ARTIFACT

log = logging.getLogger(__name__)

TAG_PASSED = "mlship.benchmark.passed"
WARM_UP_CALLS = 20


def time_calls(predict: object, batches: list[np.ndarray]) -> list[float]:
    """Call ``predict`` on each batch and return the latencies in milliseconds."""
    latencies = []
    for batch in batches:
        started = time.perf_counter()
        predict(batch)  # type: ignore[operator]
        latencies.append((time.perf_counter() - started) * 1000.0)
    return latencies


def summarize(latencies: list[float]) -> dict[str, float]:
    values = np.asarray(latencies)
    return {
        "p50_ms": float(np.percentile(values, 50)),
        "p90_ms": float(np.percentile(values, 90)),
        "p99_ms": float(np.percentile(values, 99)),
        "mean_ms": float(values.mean()),
        "calls": float(len(values)),
    }


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", help="pipeline config file (default: $MLSHIP_CONFIG or /etc/mlship/pipeline.yaml)")
    parser.add_argument("--data", required=True, help="data file to draw request rows from")
    parser.add_argument("--run-id", required=True, help="MLflow run of the candidate model")
    parser.add_argument("--passed-out", help="write true or false here")
    parser.add_argument("--report-out", help="write the latency report (JSON) here")


def run(args: argparse.Namespace) -> int:
    config = load_config(args.config)
    features, _ = features_and_target(read_table(args.data), config.data)
    rows = features.to_numpy(dtype="float64")

    check_server()
    # The candidate is not registered yet, so the step downloads the run's model folder
    # and loads it from that path with the loader the server uses.
    with tempfile.TemporaryDirectory() as folder:
        local = mlflow.artifacts.download_artifacts(f"runs:/{args.run_id}/{MODEL_ARTIFACT}", dst_path=folder)
        model = load_model(local)
    settings = config.benchmark
    generator = np.random.default_rng(config.split.random_seed)

    singles = [rows[generator.integers(len(rows))][np.newaxis, :] for _ in range(settings.iterations)]
    batch_count = max(10, settings.iterations // 10)
    batches = [rows[generator.integers(len(rows), size=settings.batch_size)] for _ in range(batch_count)]

    log.info(
        "benchmarking run %s: %d single-row calls, %d batches of %d rows",
        args.run_id,
        len(singles),
        len(batches),
        settings.batch_size,
    )
    time_calls(model.predict_proba, singles[:WARM_UP_CALLS])
    single_ms = time_calls(model.predict_proba, singles)
    batch_ms = time_calls(model.predict_proba, batches)

    limits = {"single": settings.max_p99_ms_single, "batch": settings.max_p99_ms_batch}
    results = {"single": summarize(single_ms), "batch": summarize(batch_ms)}
    failures = [
        f"{mode} p99 {results[mode]['p99_ms']:.2f} ms exceeds the limit {limit:g} ms "
        f"(pipeline.benchmark.maxP99Ms.{mode})"
        for mode, limit in limits.items()
        if results[mode]["p99_ms"] > limit
    ]
    passed = not failures
    report = {
        "runId": args.run_id,
        "batchSize": settings.batch_size,
        "limitsMs": limits,
        "results": results,
        "passed": passed,
        "failures": failures,
    }

    with mlflow.start_run(run_id=args.run_id):
        mlflow.log_metrics(
            {
                f"latency_{mode}_{name}": value
                for mode, summary in results.items()
                for name, value in summary.items()
                if name != "calls"
            }
        )
        mlflow.log_dict(report, "benchmark/report.json")
        figure = latency_histogram_figure({"single": single_ms, "batch": batch_ms}, limits)
        mlflow.log_figure(figure, "benchmark/latency_histogram.png")
        close(figure)
        mlflow.set_tag(TAG_PASSED, str(passed).lower())

    write_json(args.report_out, report)
    write_value(args.passed_out, passed)
    log.info(
        "run %s benchmark %s: single p99 %.2f ms, batch p99 %.2f ms",
        args.run_id,
        "passed" if passed else "failed",
        results["single"]["p99_ms"],
        results["batch"]["p99_ms"],
    )
    if not passed:
        raise GateFailedError(f"model from run {args.run_id} failed the latency benchmark: " + "; ".join(failures))
    return 0
