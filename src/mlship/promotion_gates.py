"""Checking a registered version against another environment's gates before promotion.

The evidence is what register copied onto the version: ``metric.<name>`` tags (held-out
scores from validate-model), ``data_hash``, and the run's latency metrics and
parameters. The evidence is stale in three cases: a threshold names a metric without a
tag, the run used other features or another split than the target declares, or
``--data`` is a different file than the one the version was scored on. Stale evidence
is replaced by scoring the version again, on the ``--data`` rows, with the target's
split, exactly as validate-model does; without ``--data`` the check fails and names
what is missing.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass, field
from typing import Any

import mlflow
from mlflow.entities import Run
from mlflow.entities.model_registry import ModelVersion

from mlship.config import PipelineConfig
from mlship.data import features_and_target, hash_file, read_table, split
from mlship.errors import InvalidInputError
from mlship.validate_model import check_thresholds, score

log = logging.getLogger(__name__)

METRIC_TAG_PREFIX = "metric."
GATE_TAG_PREFIX = "mlship.gate."  # mlship.gate.<environment>.<key>: evidence from a re-score
LATENCY_METRICS = {"single": "latency_single_p99_ms", "batch": "latency_batch_p99_ms"}
RUN_GATE_TAGS = ("mlship.validation.passed", "mlship.benchmark.passed")


@dataclass
class GateResult:
    """The outcome of checking one version against one environment's gates."""

    failures: list[str]
    scores: dict[str, float]
    evidence: str
    tags: dict[str, str] = field(default_factory=dict)  # recorded on the version unless a dry run

    @property
    def passed(self) -> bool:
        return not self.failures


def tag_scores(version: ModelVersion) -> dict[str, float]:
    return {
        key.removeprefix(METRIC_TAG_PREFIX): float(value)
        for key, value in version.tags.items()
        if key.startswith(METRIC_TAG_PREFIX)
    }


def evidence_gaps(version: ModelVersion, run: Run, config: PipelineConfig, data_hash: str | None) -> list[str]:
    """List why the version's recorded scores cannot be used for ``config``'s thresholds."""
    gaps = []
    scores = tag_scores(version)
    needed = sorted({*config.validation.thresholds, config.validation.primary_metric})
    missing = [name for name in needed if name not in scores]
    if missing:
        gaps.append(f"no {', '.join(METRIC_TAG_PREFIX + name for name in missing)} tag(s) on version {version.version}")

    params = run.data.params
    declared = ",".join(config.data.feature_names)
    if "features" in params and params["features"] != declared:
        gaps.append(
            f"version {version.version} was scored on features {params['features']}, "
            f"{config.environment} declares {declared}"
        )
    for param, expected in (("test_size", config.split.test_size), ("random_seed", config.split.random_seed)):
        if param in params and not math.isclose(float(params[param]), float(expected)):
            gaps.append(
                f"version {version.version} was scored with split {param}={params[param]}, "
                f"{config.environment} uses {expected}"
            )

    recorded_hash = version.tags.get("data_hash", "")
    if data_hash is not None and recorded_hash != data_hash:
        gaps.append(
            f"version {version.version} was scored on data {recorded_hash[:12] or '(unknown)'}, "
            f"not on the given --data file ({data_hash[:12]})"
        )
    return gaps


def rescore(model_uri: str, config: PipelineConfig, data_path: str) -> dict[str, float]:
    """Score ``model_uri`` on the held-out split of ``data_path``, as validate-model does."""
    features, target = features_and_target(read_table(data_path), config.data)
    _, x_test, _, y_test = split(features, target, config.split)
    model = mlflow.sklearn.load_model(model_uri)
    return score(model, x_test.to_numpy(), y_test.to_numpy())


def _latency_failures(run: Run, config: PipelineConfig) -> list[str]:
    limits = {"single": config.benchmark.max_p99_ms_single, "batch": config.benchmark.max_p99_ms_batch}
    failures = []
    for mode, metric in LATENCY_METRICS.items():
        measured = run.data.metrics.get(metric)
        if measured is None:
            raise InvalidInputError(
                f"run {run.info.run_id} has no {metric} metric, so its latency cannot be checked against "
                f"{config.environment}'s limit; run `mlship benchmark --run-id {run.info.run_id}` first"
            )
        if measured > limits[mode]:
            failures.append(f"{mode} p99 {measured:.2f} ms exceeds {config.environment}'s limit {limits[mode]:g} ms")
    return failures


def _champion_failure(
    config: PipelineConfig, candidate: dict[str, float], champion_version: str, champion: dict[str, float] | None
) -> list[str]:
    primary = config.validation.primary_metric
    if champion is None or primary not in champion or primary not in candidate:
        log.info("no comparable scores for champion version %s; checking thresholds only", champion_version)
        return []
    floor = champion[primary] - config.validation.champion_tolerance
    if candidate[primary] < floor:
        return [
            f"{primary} {candidate[primary]:.4f} is worse than {config.environment}'s current version "
            f"{champion_version} ({champion[primary]:.4f}) by more than the tolerance "
            f"{config.validation.champion_tolerance}"
        ]
    return []


def check_gates(
    version: ModelVersion,
    run: Run,
    champion: ModelVersion | None,
    config: PipelineConfig,
    data_path: str | None,
) -> GateResult:
    """Check ``version`` against ``config``'s thresholds, latency limits and current version."""
    not_passed = [
        f"{tag}={run.data.tags.get(tag, '(missing)')}" for tag in RUN_GATE_TAGS if run.data.tags.get(tag) != "true"
    ]
    if not_passed:
        return GateResult([f"run {run.info.run_id} did not pass its gates: {', '.join(not_passed)}"], {}, "run tags")

    data_hash = hash_file(data_path) if data_path else None
    gaps = evidence_gaps(version, run, config, data_hash)
    tags: dict[str, str] = {}
    champion_scores: dict[str, float] | None = None

    if not gaps:
        scores = tag_scores(version)
        evidence = f"metric tags of version {version.version}"
        if champion is not None and champion.tags.get("data_hash") == version.tags.get("data_hash"):
            champion_scores = tag_scores(champion)
    elif data_path is None:
        raise InvalidInputError(
            f"cannot check version {version.version} against {config.environment}'s gates: "
            + "; ".join(gaps)
            + "; pass --data FILE to score it on that data"
        )
    else:
        log.info("re-scoring version %s for %s: %s", version.version, config.environment, "; ".join(gaps))
        scores = rescore(f"models:/{version.name}/{version.version}", config, data_path)
        evidence = f"re-scored on {data_path}"
        if champion is not None:
            try:
                champion_scores = rescore(f"models:/{champion.name}/{champion.version}", config, data_path)
            except ValueError as error:
                log.warning(
                    "version %s cannot score %s (%s); skipping the comparison", champion.version, data_path, error
                )
        prefix = f"{GATE_TAG_PREFIX}{config.environment}."
        tags = {f"{prefix}data_hash": str(data_hash)}
        tags.update({f"{prefix}metric.{name}": f"{value:.6f}" for name, value in scores.items()})

    failures = check_thresholds(scores, config.validation.thresholds)
    failures += _latency_failures(run, config)
    if champion is not None and champion.version != version.version:
        failures += _champion_failure(config, scores, str(champion.version), champion_scores)
    if tags:
        tags[f"{GATE_TAG_PREFIX}{config.environment}.passed"] = str(not failures).lower()
    return GateResult(failures, scores, evidence, tags)


def describe_scores(scores: dict[str, Any]) -> str:
    return ", ".join(f"{name}={value:.4f}" for name, value in sorted(scores.items()))
