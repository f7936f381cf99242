"""`helm lint` and `helm template` of every environment with Helm v3 and v4, and checks
that span every rendered object: labels, Pod Security Standards and the pipeline config."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from mlship.config import parse_config
from tests.chart.conftest import (
    CHART_DIR,
    ENVIRONMENTS,
    NAMESPACE,
    environment_file,
    render,
    run_helm,
    scenario_files,
)

ALL_VALUES = [environment_file(name) for name in ENVIRONMENTS] + scenario_files()
VALUES_IDS = [path.stem for path in ALL_VALUES]
STANDARD_LABELS = (
    "app.kubernetes.io/name",
    "app.kubernetes.io/instance",
    "app.kubernetes.io/component",
    "app.kubernetes.io/part-of",
    "app.kubernetes.io/version",
    "app.kubernetes.io/managed-by",
    "helm.sh/chart",
)
# Volume types that the `restricted` Pod Security Standard allows.
RESTRICTED_VOLUME_TYPES = {
    "configMap",
    "csi",
    "downwardAPI",
    "emptyDir",
    "ephemeral",
    "persistentVolumeClaim",
    "projected",
    "secret",
}


@pytest.mark.parametrize("environment", ENVIRONMENTS)
def test_lint_environment(helm: str, environment: str) -> None:
    result = run_helm(helm, ["lint", str(CHART_DIR), "--strict", "--values", str(environment_file(environment))])
    assert result.returncode == 0, result.stdout + result.stderr
    assert "0 chart(s) failed" in result.stdout


@pytest.mark.parametrize("environment", ENVIRONMENTS)
def test_template_environment(helm: str, environment: str) -> None:
    objects = render(helm, [environment_file(environment)]).objects
    kinds = {item["kind"] for item in objects}
    assert {"WorkflowTemplate", "ConfigMap", "Deployment", "SeldonDeployment", "NetworkPolicy"} <= kinds
    for item in objects:
        assert item["metadata"]["namespace"] == NAMESPACE, item["metadata"]["name"]


@pytest.mark.parametrize("values_file", ALL_VALUES, ids=VALUES_IDS)
def test_helm3_and_helm4_render_alike(helm3: str, helm4: str, values_file: Path) -> None:
    assert render(helm3, [values_file]).objects == render(helm4, [values_file]).objects


def _pod_specs(item: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
    """Return (where, pod spec) for every pod that ``item`` creates."""
    kind, name = item["kind"], item["metadata"]["name"]
    if kind == "Pod":
        return [(f"Pod {name}", item["spec"])]
    if kind == "Deployment":
        return [(f"Deployment {name}", item["spec"]["template"]["spec"])]
    if kind == "SeldonDeployment":
        return [
            (f"SeldonDeployment {name} predictor {predictor['name']}", component["spec"])
            for predictor in item["spec"]["predictors"]
            for component in predictor["componentSpecs"]
        ]
    if kind == "WorkflowTemplate":
        spec = item["spec"]
        patch = yaml.safe_load(spec["podSpecPatch"])
        containers = [template["container"] for template in spec["templates"] if "container" in template]
        pod = {
            "securityContext": spec["securityContext"],
            "volumes": spec["volumes"],
            "containers": containers + patch["containers"],
            "initContainers": patch["initContainers"],
        }
        return [(f"WorkflowTemplate {name}", pod)]
    return []


def _check_restricted(where: str, pod: dict[str, Any]) -> list[str]:
    problems = []
    pod_context = pod.get("securityContext") or {}
    if pod_context.get("runAsNonRoot") is not True:
        problems.append(f"{where}: pod runAsNonRoot is not true")
    if pod_context.get("runAsUser") != 10001:
        problems.append(f"{where}: pod runAsUser is not 10001")
    for field in ("hostNetwork", "hostPID", "hostIPC"):
        if pod.get(field):
            problems.append(f"{where}: {field} is set")
    for volume in pod.get("volumes", []):
        types = set(volume) - {"name"}
        if not types <= RESTRICTED_VOLUME_TYPES:
            problems.append(f"{where}: volume {volume['name']} has type {types}")
    for container in pod.get("containers", []) + pod.get("initContainers", []):
        context = container.get("securityContext") or {}
        # Argo names a template's container "main" when the template leaves the name out.
        label = f"{where} container {container.get('name', 'main')}"
        seccomp = (context.get("seccompProfile") or pod_context.get("seccompProfile") or {}).get("type")
        checks = {
            "allowPrivilegeEscalation is not false": context.get("allowPrivilegeEscalation") is False,
            "readOnlyRootFilesystem is not true": context.get("readOnlyRootFilesystem") is True,
            "capabilities.drop lacks ALL": "ALL" in (context.get("capabilities") or {}).get("drop", []),
            "capabilities.add is set": not (context.get("capabilities") or {}).get("add"),
            "privileged is set": not context.get("privileged"),
            "seccompProfile is not RuntimeDefault": seccomp == "RuntimeDefault",
            "runAsNonRoot is false": context.get("runAsNonRoot", True) is not False,
        }
        problems += [f"{label}: {message}" for message, ok in checks.items() if not ok]
    return problems


@pytest.mark.parametrize("values_file", ALL_VALUES, ids=VALUES_IDS)
def test_every_pod_is_restricted(helm3: str, values_file: Path) -> None:
    objects = render(helm3, [values_file]).objects
    pods = [pod for item in objects for pod in _pod_specs(item)]
    problems = [problem for where, pod in pods for problem in _check_restricted(where, pod)]
    assert problems == []


def test_restricted_check_finds_violations() -> None:
    pod = {
        "securityContext": {"runAsNonRoot": True, "runAsUser": 10001, "seccompProfile": {"type": "RuntimeDefault"}},
        "volumes": [{"name": "host", "hostPath": {"path": "/"}}],
        "containers": [{"name": "main", "securityContext": {"allowPrivilegeEscalation": True}}],
    }
    problems = _check_restricted("Pod test", pod)
    assert "Pod test: volume host has type {'hostPath'}" in problems
    assert "Pod test container main: allowPrivilegeEscalation is not false" in problems
    assert "Pod test container main: capabilities.drop lacks ALL" in problems


@pytest.mark.parametrize("values_file", ALL_VALUES, ids=VALUES_IDS)
def test_every_object_has_standard_labels(helm3: str, values_file: Path) -> None:
    for item in render(helm3, [values_file]).objects:
        labels = item["metadata"].get("labels", {})
        missing = [label for label in STANDARD_LABELS if label not in labels]
        assert missing == [], f"{item['kind']} {item['metadata']['name']} lacks {missing}"
        assert labels["app.kubernetes.io/instance"] == "mlship"


@pytest.mark.parametrize("environment", ENVIRONMENTS)
def test_pipeline_config_parses(helm3: str, environment: str) -> None:
    """The rendered pipeline.yaml is accepted by the parser that the steps use."""
    objects = render(helm3, [environment_file(environment)]).objects
    config_map = next(item for item in objects if item["metadata"]["name"] == "mlship-pipeline-config")
    config = parse_config(yaml.safe_load(config_map["data"]["pipeline.yaml"]), source=environment)
    assert config.environment == environment
    assert config.model_name == "iris-classifier"
    assert config.alias == environment
    assert config.data.feature_names == sorted(
        ["sepal_length_cm", "sepal_width_cm", "petal_length_cm", "petal_width_cm"]
    )
    expected_threshold = 0.85 if environment == "dev" else 0.9
    assert config.validation.thresholds == {"accuracy": expected_threshold, "f1_macro": expected_threshold}


def test_pipeline_config_checksum_follows_values(helm3: str) -> None:
    def checksum(*set_values: str) -> str:
        objects = render(helm3, [environment_file("dev")], set_values).objects
        template = next(item for item in objects if item["kind"] == "WorkflowTemplate")
        return str(template["spec"]["podMetadata"]["annotations"]["checksum/pipeline-config"])

    assert checksum() == checksum()
    assert checksum() != checksum("pipeline.validation.championTolerance=0.05")


@pytest.mark.parametrize("environment", ENVIRONMENTS)
def test_no_secret_value_in_render(helm3: str, environment: str) -> None:
    """Credentials reach pods only through secretKeyRef, and the chart renders no Secret."""
    objects = render(helm3, [environment_file(environment)]).objects
    assert [item["metadata"]["name"] for item in objects if item["kind"] == "Secret"] == []
    registry = next(item for item in objects if item["kind"] == "Deployment")
    env = registry["spec"]["template"]["spec"]["containers"][0]["env"]
    for variable in env:
        if variable["name"] in ("DB_USER", "DB_PASSWORD", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"):
            assert "value" not in variable
            assert "secretKeyRef" in variable["valueFrom"]
