"""Invalid values are rejected when the chart renders, with the offending key in the message.

Two layers are checked: values.schema.json (every Helm render applies it) and the
templates' own `fail` checks, which still hold under `--skip-schema-validation`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.chart.conftest import HelmResult, environment_file, run_helm, template_arguments

# (case id, environment file, overrides, text the error must contain)
SCHEMA_CASES: list[tuple[str, str, dict[str, Any], str]] = [
    ("unknown-top-level-key", "dev", {"servng": {"enabled": True}}, "servng"),
    ("unknown-nested-key", "dev", {"pipeline": {"data": {"targt": "species"}}}, "targt"),
    ("unknown-registry-key", "dev", {"registry": {"backend": {"postgres": {}}}}, "postgres"),
    ("replicas-wrong-type", "dev", {"serving": {"replicas": "two"}}, "/serving/replicas"),
    ("no-server-workers", "dev", {"serving": {"workers": 0}}, "/serving/workers"),
    ("server-threads-wrong-type", "dev", {"serving": {"threads": "four"}}, "/serving/threads"),
    ("enabled-wrong-type", "dev", {"pipeline": {"enabled": "yes"}}, "/pipeline/enabled"),
    ("canary-weight-above-100", "dev", {"serving": {"canary": {"weight": 120}}}, "/serving/canary/weight"),
    ("canary-weight-negative", "dev", {"serving": {"canary": {"weight": -5}}}, "/serving/canary/weight"),
    ("canary-weight-fraction", "dev", {"serving": {"canary": {"weight": 12.5}}}, "/serving/canary/weight"),
    ("canary-without-version", "dev", {"serving": {"canary": {"enabled": True}}}, "/serving/canary/model"),
    ("shadow-without-version", "dev", {"serving": {"shadow": {"enabled": True}}}, "/serving/shadow/model"),
    ("served-version-not-a-number", "staging", {"serving": {"model": {"version": "latest"}}}, "/serving/model/version"),
    ("no-alias-and-no-version", "dev", {"serving": {"model": {"alias": "", "version": ""}}}, "/serving/model/alias"),
    ("unknown-environment", "dev", {"environment": "qa"}, "/environment"),
    ("unknown-example-dataset", "dev", {"pipeline": {"data": {"exampleDataset": "mnist"}}}, "exampleDataset"),
    ("unknown-feature-dtype", "dev", {"pipeline": {"data": {"features": {"x": {"dtype": "string"}}}}}, "dtype"),
    ("test-size-above-one", "dev", {"pipeline": {"split": {"testSize": 1.5}}}, "/pipeline/split/testSize"),
    ("tolerance-above-one", "dev", {"pipeline": {"validation": {"championTolerance": 2}}}, "championTolerance"),
    ("threshold-not-a-number", "dev", {"pipeline": {"validation": {"thresholds": {"accuracy": "high"}}}}, "accuracy"),
    ("retry-duration-not-go", "dev", {"pipeline": {"retry": {"backoffDuration": "ten seconds"}}}, "backoffDuration"),
    ("cron-not-five-fields", "dev", {"pipeline": {"schedule": {"enabled": True, "cron": "every day"}}}, "cron"),
    ("pull-policy-unknown", "dev", {"images": {"serve": {"pullPolicy": "Sometimes"}}}, "pullPolicy"),
    ("sqlite-with-two-replicas", "dev", {"registry": {"replicas": 2}}, "/registry/replicas"),
    ("prod-with-sqlite", "prod", {"registry": {"backend": {"type": "sqlite"}}}, "/registry/backend/type"),
    ("prod-with-pvc-artifacts", "prod", {"registry": {"artifacts": {"type": "pvc"}}}, "/registry/artifacts/type"),
    (
        "prod-without-database-secret",
        "prod",
        {"registry": {"backend": {"postgresql": {"existingSecret": ""}}}},
        "/registry/backend/postgresql/existingSecret",
    ),
    (
        "prod-without-s3-secret",
        "prod",
        {"registry": {"artifacts": {"s3": {"existingSecret": ""}}}},
        "/registry/artifacts/s3/existingSecret",
    ),
    (
        "staging-without-bucket",
        "staging",
        {"registry": {"artifacts": {"s3": {"bucket": ""}}}},
        "/registry/artifacts/s3/bucket",
    ),
    ("staging-without-database-host", "staging", {"registry": {"backend": {"postgresql": {"host": ""}}}}, "host"),
    ("external-mlflow-without-uri", "dev", {"registry": {"enabled": False}}, "/mlflow/trackingUri"),
    ("tracking-uri-not-http", "dev", {"mlflow": {"trackingUri": "mlflow:5000"}}, "/mlflow/trackingUri"),
    (
        "error-rate-above-one",
        "dev",
        {"monitoring": {"prometheusRule": {"errorRateThreshold": 5}}},
        "errorRateThreshold",
    ),
    (
        "namespace-not-dns-label",
        "dev",
        {"networkPolicy": {"servingIngressNamespaces": ["Ingress_NGINX"]}},
        "servingIngressNamespaces",
    ),
]

# The same kind of mistakes with schema validation skipped: the templates' `fail` messages.
TEMPLATE_CASES: list[tuple[str, str, dict[str, Any], str]] = [
    (
        "prod-with-sqlite",
        "prod",
        {"registry": {"backend": {"type": "sqlite"}}},
        "registry.backend.type must be postgresql when environment is prod",
    ),
    (
        "prod-with-pvc-artifacts",
        "prod",
        {"registry": {"artifacts": {"type": "pvc"}}},
        "registry.artifacts.type must be s3 when environment is prod",
    ),
    (
        "prod-without-database-secret",
        "prod",
        {"registry": {"backend": {"postgresql": {"existingSecret": ""}}}},
        "registry.backend.postgresql.existingSecret is required",
    ),
    (
        "prod-without-s3-secret",
        "prod",
        {"registry": {"artifacts": {"s3": {"existingSecret": ""}}}},
        "registry.artifacts.s3.existingSecret is required",
    ),
    ("sqlite-with-two-replicas", "dev", {"registry": {"replicas": 2}}, "registry.replicas is 2"),
    (
        "canary-weight-above-100",
        "dev",
        {"serving": {"canary": {"enabled": True, "weight": 120, "model": {"version": 2}}}},
        "serving.canary.weight must be between 0 and 100",
    ),
    (
        "canary-without-version",
        "dev",
        {"serving": {"canary": {"enabled": True}}},
        "serving.canary.model.version is required",
    ),
    (
        "shadow-without-version",
        "dev",
        {"serving": {"shadow": {"enabled": True}}},
        "serving.shadow.model.version is required",
    ),
    ("external-mlflow-without-uri", "dev", {"registry": {"enabled": False}}, "mlflow.trackingUri is required"),
]


def _render_with(helm: str, tmp_path: Path, environment: str, overrides: dict[str, Any], *extra: str) -> HelmResult:
    override_file = tmp_path / "override.yaml"
    override_file.write_text(yaml.safe_dump(overrides), encoding="utf-8")
    arguments = template_arguments([environment_file(environment), override_file]) + list(extra)
    return run_helm(helm, arguments)


@pytest.mark.parametrize(
    ("environment", "overrides", "message"),
    [case[1:] for case in SCHEMA_CASES],
    ids=[case[0] for case in SCHEMA_CASES],
)
def test_schema_rejects(helm: str, tmp_path: Path, environment: str, overrides: dict[str, Any], message: str) -> None:
    result = _render_with(helm, tmp_path, environment, overrides)
    assert result.returncode != 0, "the render should have failed"
    assert message in result.stderr


@pytest.mark.parametrize(
    ("environment", "overrides", "message"),
    [case[1:] for case in TEMPLATE_CASES],
    ids=[case[0] for case in TEMPLATE_CASES],
)
def test_template_rejects(helm: str, tmp_path: Path, environment: str, overrides: dict[str, Any], message: str) -> None:
    result = _render_with(helm, tmp_path, environment, overrides, "--skip-schema-validation")
    assert result.returncode != 0, "the render should have failed"
    assert message in result.stderr


@pytest.mark.parametrize(
    ("environment", "overrides"),
    [
        ("dev", {"serving": {"canary": {"enabled": True, "weight": 0, "model": {"version": 2}}}}),
        ("dev", {"serving": {"canary": {"enabled": True, "weight": 100, "model": {"version": "2"}}}}),
        ("staging", {"serving": {"model": {"version": 12}}}),
        ("dev", {"promotion": {"enabled": True}}),
    ],
    ids=["canary-weight-0", "canary-weight-100", "version-as-integer", "promotion-key-left-open"],
)
def test_edge_values_accepted(helm: str, tmp_path: Path, environment: str, overrides: dict[str, Any]) -> None:
    result = _render_with(helm, tmp_path, environment, overrides)
    assert result.returncode == 0, result.stderr
