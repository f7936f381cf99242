"""Checks that the test cluster is a working kube-apiserver before any chart is installed."""

from __future__ import annotations

import pytest

from tests.apiserver.cluster import KubeApiError, KubeClient


def test_version_is_pinned_release(kube: KubeClient) -> None:
    version = kube.get("/version")

    assert version["major"] == "1"
    assert version["gitVersion"].startswith("v1.")
    assert "master" not in version["gitVersion"]


def test_namespace_create_and_read(kube: KubeClient) -> None:
    kube.ensure_namespace("harness-check")

    namespace = kube.get("/api/v1/namespaces/harness-check")
    account = kube.get("/api/v1/namespaces/harness-check/serviceaccounts/default")

    assert namespace["status"]["phase"] == "Active"
    assert account["metadata"]["name"] == "default"


def test_invalid_object_rejected(kube: KubeClient) -> None:
    """The server validates what it stores: an upper-case name is not a DNS-1123 label."""
    with pytest.raises(KubeApiError) as raised:
        kube.create("/api/v1/namespaces", {"metadata": {"name": "Not-Valid"}})

    assert raised.value.status == 422
    assert "a lowercase RFC 1123 label must consist of" in raised.value.message


def test_crds_established(kube: KubeClient, crds: list[str]) -> None:
    expected = {
        "workflowtemplates.argoproj.io",
        "seldondeployments.machinelearning.seldon.io",
        "servicemonitors.monitoring.coreos.com",
        "prometheusrules.monitoring.coreos.com",
        "applications.argoproj.io",
    }

    assert expected <= set(crds)
    groups = kube.get("/apis")["groups"]
    served = {group["name"] for group in groups}
    assert {"argoproj.io", "machinelearning.seldon.io", "monitoring.coreos.com"} <= served


def test_custom_resource_schema_enforced(kube: KubeClient, crds: list[str]) -> None:
    """The Seldon CRD's structural schema rejects a field of the wrong type."""
    kube.ensure_namespace("harness-check")
    body = {
        "apiVersion": "machinelearning.seldon.io/v1",
        "kind": "SeldonDeployment",
        "metadata": {"name": "wrong-type"},
        "spec": {"predictors": [{"name": "default", "replicas": "three", "graph": {"name": "model"}}]},
    }

    with pytest.raises(KubeApiError) as raised:
        kube.create("/apis/machinelearning.seldon.io/v1/namespaces/harness-check/seldondeployments", body)

    assert raised.value.status == 422
    assert "spec.predictors[0].replicas" in raised.value.message
