"""Check the candidate model's metrics on the held-out split and against the champion.

The thresholds come from the environment's values. The champion is the version that
holds the environment's alias; both models are scored on the same held-out rows, and the
candidate fails when its primary metric is worse than the champion's by more than
``validation.championTolerance``. The outcome is tagged on the run, which register
checks before it creates a version.
"""

from __future__ import annotations

import argparse
import logging
from typing import Any

import mlflow
import numpy as np
from mlflow.exceptions import MlflowException
from sklearn import metrics

from mlship.config import PipelineConfig, load_config
from mlship.data import features_and_target, read_table, split
from mlship.errors import GateFailedError, InvalidInputError, NotFoundError
from mlship.outputs import write_json, write_value
from mlship.reports import close, confusion_matrix_figure
from mlship.tracking import check_server
from mlship.train import MODEL_ARTIFACT

log = logging.getLogger(__name__)

TAG_PASSED = "mlship.validation.passed"
TAG_ENVIRONMENT = "mlship.validation.environment"


def score(model: Any, x: np.ndarray, y: np.ndarray) -> dict[str, float]:
    """Return the classification metrics that thresholds may name."""
    predicted = model.predict(x)
    scores = {
        "accuracy": metrics.accuracy_score(y, predicted),
        "balanced_accuracy": metrics.balanced_accuracy_score(y, predicted),
        "f1_macro": metrics.f1_score(y, predicted, average="macro"),
        "precision_macro": metrics.precision_score(y, predicted, average="macro", zero_division=0),
        "recall_macro": metrics.recall_score(y, predicted, average="macro", zero_division=0),
    }
    return {name: float(value) for name, value in scores.items()}


def check_thresholds(scores: dict[str, float], thresholds: dict[str, float]) -> list[str]:
    """Return one message per metric below its threshold."""
    unknown = sorted(set(thresholds) - set(scores))
    if unknown:
        raise InvalidInputError(
            f"pipeline.validation.thresholds names unknown metric(s) {', '.join(unknown)}; "
            f"known: {', '.join(sorted(scores))}"
        )
    return [
        f"{name} {scores[name]:.4f} is below the threshold {minimum:.4f}"
        for name, minimum in sorted(thresholds.items())
        if scores[name] < minimum
    ]


def champion_scores(config: PipelineConfig, x: np.ndarray, y: np.ndarray) -> tuple[str | None, dict[str, float] | None]:
    """Score the version holding the environment's alias on the same rows, if one exists."""
    client = mlflow.MlflowClient()
    try:
        champion = client.get_model_version_by_alias(config.model_name, config.alias)
    except MlflowException as error:
        if error.error_code in ("RESOURCE_DOES_NOT_EXIST", "NOT_FOUND", "INVALID_PARAMETER_VALUE"):
            log.info("no champion: %s@%s does not exist yet", config.model_name, config.alias)
            return None, None
        raise
    model = mlflow.sklearn.load_model(f"models:/{config.model_name}/{champion.version}")
    try:
        return str(champion.version), score(model, x, y)
    except ValueError as error:
        # A champion trained on other features cannot be scored on these rows; the
        # candidate then only has to meet the thresholds.
        log.warning(
            "champion version %s cannot score the current data (%s); skipping the comparison", champion.version, error
        )
        return str(champion.version), None


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", help="pipeline config file (default: $MLSHIP_CONFIG or /etc/mlship/pipeline.yaml)")
    parser.add_argument("--data", required=True, help="the same data file that train used")
    parser.add_argument("--run-id", required=True, help="MLflow run of the candidate model")
    parser.add_argument("--passed-out", help="write true or false here")
    parser.add_argument("--metrics-out", help="write the metrics summary (JSON) here")


def run(args: argparse.Namespace) -> int:
    config = load_config(args.config)
    features, target = features_and_target(read_table(args.data), config.data)
    _, x_test_frame, _, y_test_series = split(features, target, config.split)
    x_test, y_test = x_test_frame.to_numpy(), y_test_series.to_numpy()

    check_server()
    try:
        candidate = mlflow.sklearn.load_model(f"runs:/{args.run_id}/{MODEL_ARTIFACT}")
    except MlflowException as error:
        raise NotFoundError(
            f"no model in run {args.run_id}: {error.message}; pass the run id that train wrote"
        ) from None

    scores = score(candidate, x_test, y_test)
    failures = check_thresholds(scores, config.validation.thresholds)

    champion_version, champion = champion_scores(config, x_test, y_test)
    primary = config.validation.primary_metric
    if primary not in scores:
        raise InvalidInputError(
            f"pipeline.validation.primaryMetric {primary!r} is unknown; use one of {', '.join(sorted(scores))}"
        )
    if champion is not None:
        floor = champion[primary] - config.validation.champion_tolerance
        if scores[primary] < floor:
            failures.append(
                f"{primary} {scores[primary]:.4f} is worse than champion version {champion_version} "
                f"({champion[primary]:.4f}) by more than the tolerance {config.validation.champion_tolerance}"
            )

    passed = not failures
    labels = [str(label) for label in candidate.classes_]
    matrix = metrics.confusion_matrix(y_test, candidate.predict(x_test), labels=candidate.classes_)
    summary = {
        "runId": args.run_id,
        "environment": config.environment,
        "heldOutRows": len(y_test),
        "metrics": scores,
        "thresholds": config.validation.thresholds,
        "champion": {"version": champion_version, "metrics": champion},
        "passed": passed,
        "failures": failures,
        "confusionMatrix": {"labels": labels, "counts": matrix.tolist()},
    }

    with mlflow.start_run(run_id=args.run_id):
        mlflow.log_metrics({f"test_{name}": value for name, value in scores.items()})
        mlflow.log_dict(summary, "validation/summary.json")
        figure = confusion_matrix_figure(matrix, labels, f"{config.model_name} held-out confusion matrix")
        mlflow.log_figure(figure, "validation/confusion_matrix.png")
        close(figure)
        mlflow.set_tags({TAG_PASSED: str(passed).lower(), TAG_ENVIRONMENT: config.environment})

    write_json(args.metrics_out, summary)
    write_value(args.passed_out, passed)
    log.info(
        "run %s validation %s: %s",
        args.run_id,
        "passed" if passed else "failed",
        ", ".join(f"{name}={value:.4f}" for name, value in sorted(scores.items())),
    )

    if not passed:
        raise GateFailedError(f"model from run {args.run_id} failed validation: " + "; ".join(failures))
    return 0
