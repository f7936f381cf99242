"""Session fixtures: one kine + kube-apiserver for every test in this folder.

See cluster.py for how the server runs (authorization RBAC, default admission plugins,
no controllers). The whole folder is skipped when `ci/apiserver/build.sh` has not built
the binaries. Set MLSHIP_REQUIRE_APISERVER=1 to make that an error instead, so that a CI
run cannot pass by skipping.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.apiserver.cluster import (
    KINE,
    KUBE_APISERVER,
    Cluster,
    KubeClient,
    apply_crds,
    load_crds,
)
from tests.apiserver.helm import Helm
from tests.support.paths import crds_dir

HERE = Path(__file__).parent

# CRD folders under CRDS_DIR whose kinds the chart renders.
CRD_FOLDERS = (
    "argo-workflows-v3.7.18",
    "seldon-core-v1.18.2",
    "prometheus-operator-v0.93.0",
    "argo-cd-v3.5.1",
)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Mark every test of this folder `apiserver`, so `-m "not apiserver"` deselects them."""
    for item in items:
        if HERE in item.path.parents:
            item.add_marker(pytest.mark.apiserver)


def _missing_binaries() -> list[str]:
    return [str(path) for path in (KUBE_APISERVER, KINE) if not os.access(path, os.X_OK)]


@pytest.fixture(scope="session")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    """A running kube-apiserver with its kubeconfig, stopped at the end of the session."""
    missing = _missing_binaries()
    if missing:
        message = f"kube-apiserver harness not built ({', '.join(missing)} missing): run ci/apiserver/build.sh"
        if os.environ.get("MLSHIP_REQUIRE_APISERVER") == "1":
            pytest.fail(message)
        pytest.skip(message)

    with Cluster(tmp_path_factory.mktemp("apiserver")) as running:
        yield running


@pytest.fixture(scope="session")
def kube(cluster: Cluster) -> KubeClient:
    """REST client authenticated as a member of system:masters."""
    assert cluster.client is not None
    return cluster.client


@pytest.fixture(scope="session")
def crds(kube: KubeClient) -> list[str]:
    """Apply the CRDs of Argo Workflows, Seldon Core, the Prometheus Operator and Argo CD.

    The folder comes from CRDS_DIR (default: ../shared/crds beside the repository) and is
    read in place, never copied. Returns the CRD names once all are Established.
    """
    root = crds_dir()
    folders = [root / name for name in CRD_FOLDERS]
    missing = [str(folder) for folder in folders if not folder.is_dir()]
    if missing:
        pytest.fail(f"CRD folders not found: {', '.join(missing)}; set CRDS_DIR to their parent")
    return apply_crds(kube, load_crds(folders))


@pytest.fixture(scope="session", params=["helm3", "helm4"])
def helm(request: pytest.FixtureRequest, cluster: Cluster, tmp_path_factory: pytest.TempPathFactory) -> Helm:
    """Helm v3 (HELM) or v4 (HELM4), pointed at the test cluster with an empty Helm home."""
    major = request.param
    binary = Helm.binary_for(major)
    if not os.access(binary, os.X_OK):
        pytest.skip(f"{binary} not found: run ci/install-tools.sh, or set {Helm.ENV_VARS[major]}")
    assert cluster.files is not None
    return Helm(major, binary, cluster.files.kubeconfig, tmp_path_factory.mktemp(f"{major}-home"))
