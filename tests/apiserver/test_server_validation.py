"""Values that pass the chart's schema but that kube-apiserver must reject, and the reverse.

Helm's `--dry-run=server` (checked in Helm v3.21.4 and v4.3.2, pkg/action/install.go)
renders with `lookup` and maps each kind through discovery, and it rejects objects that
exist outside the release. It never sends the objects themselves, so it cannot catch an
invalid label value. These tests therefore send the output of `helm template` to the server
with dryRun=All, which is what `kubectl create --dry-run=server` does, and check the real
`helm install` as well.
"""

from __future__ import annotations

import pytest

from tests.apiserver.chart import CHART, RELEASE, fullname, merged_values, release_args, values_file
from tests.apiserver.cluster import KubeApiError, KubeClient
from tests.apiserver.helm import Helm

ENVIRONMENTS = ("dev", "staging", "prod")

# Helm rejects release names longer than 53 characters itself.
MAX_LENGTH_RELEASE_NAME = "release-" + "x" * 45

# (--set argument, text of kube-apiserver's error). Each value is a string, as the chart's
# schema allows, but not one that Kubernetes accepts where the chart puts it.
INVALID_SETTINGS = {
    "label value with a space": (
        "commonLabels.team=ml platform",
        "a valid label must be an empty string or consist of alphanumeric characters",
    ),
    "cpu quantity that is not a number": (
        "registry.resources.requests.cpu=lots",
        "quantities must match the regular expression",
    ),
}


def _server_errors(kube: KubeClient, manifests: list[dict], namespace: str) -> list[str]:
    """Dry-run create each manifest and return the server's error messages."""
    errors = []
    for manifest in manifests:
        try:
            kube.dry_run_create(manifest, namespace)
        except KubeApiError as error:
            errors.append(f"{manifest['kind']} {manifest['metadata']['name']}: {error.message}")
    return errors


@pytest.fixture(scope="module")
def validation_namespace(kube: KubeClient, crds: list[str]) -> str:
    kube.ensure_namespace("server-validation")
    return "server-validation"


@pytest.mark.parametrize("environment", ENVIRONMENTS)
def test_max_length_release_name_accepted(
    helm: Helm, kube: KubeClient, validation_namespace: str, environment: str
) -> None:
    """Every generated name fits Kubernetes' limits, such as 63 characters for a Service."""
    assert len(MAX_LENGTH_RELEASE_NAME) == 53
    manifests = helm.template(
        MAX_LENGTH_RELEASE_NAME, CHART, validation_namespace, "--values", str(values_file(environment))
    )

    errors = _server_errors(kube, manifests, validation_namespace)

    assert manifests
    assert errors == []
    assert len(fullname(merged_values(environment), MAX_LENGTH_RELEASE_NAME)) <= 43


@pytest.mark.parametrize("case", INVALID_SETTINGS, ids=list(INVALID_SETTINGS))
def test_invalid_setting_rejected_by_server(helm: Helm, kube: KubeClient, validation_namespace: str, case: str) -> None:
    setting, message = INVALID_SETTINGS[case]
    # `helm template` applies the values schema, so the setting reaches the server only if it passes.
    manifests = helm.template(
        RELEASE, CHART, validation_namespace, "--values", str(values_file("dev")), "--set", setting
    )

    errors = _server_errors(kube, manifests, validation_namespace)

    assert errors, f"the server accepted every object rendered with {setting}"
    assert any(message in error for error in errors), errors


def test_invalid_label_fails_real_install(helm: Helm, kube: KubeClient, crds: list[str]) -> None:
    """A real install sends the objects, so the server's rejection reaches Helm's output."""
    namespace = f"invalid-label-{helm.major}"
    kube.ensure_namespace(namespace)
    setting, message = INVALID_SETTINGS["label value with a space"]

    result = helm.run(*release_args("install", namespace, "dev", "--set", setting, "--timeout", "60s"))

    assert result.returncode != 0
    assert message in result.stderr
    history = helm.history(RELEASE, namespace)
    assert [revision["status"] for revision in history] == ["failed"]


def test_dry_run_server_sends_no_objects(helm: Helm, kube: KubeClient, crds: list[str]) -> None:
    """Helm's --dry-run=server accepts the invalid label that a real install fails on.

    If a later Helm release sends the objects with dryRun=All, this test fails, and
    `helm install --dry-run=server` can then replace the dry-run helper above.
    """
    namespace = f"dry-run-{helm.major}"
    kube.ensure_namespace(namespace)
    setting, _ = INVALID_SETTINGS["label value with a space"]

    result = helm.run(*release_args("install", namespace, "dev", "--set", setting, "--dry-run=server"))

    assert result.returncode == 0, result.stderr
    assert helm.run("status", RELEASE, "--namespace", namespace).returncode != 0


def test_dry_run_server_rejects_foreign_object(helm: Helm, kube: KubeClient, crds: list[str]) -> None:
    """--dry-run=server reads the cluster, so an object of the same name that Helm does not own blocks the install."""
    namespace = f"conflict-{helm.major}"
    kube.ensure_namespace(namespace)
    config_map = f"{fullname(merged_values('dev'))}-pipeline-config"
    kube.ensure(
        f"/api/v1/namespaces/{namespace}/configmaps",
        {"metadata": {"name": config_map}, "data": {"pipeline.yaml": "{}"}},
    )

    result = helm.run(*release_args("install", namespace, "dev", "--dry-run=server"))

    assert result.returncode != 0
    assert f'ConfigMap "{config_map}" in namespace "{namespace}" exists' in result.stderr
    assert "cannot be imported into the current release" in result.stderr
