"""`helm test` on the test cluster, as far as it goes without a scheduler or kubelet.

The test Pod is admitted and stored, but no node exists, so it stays Pending and never
runs its prediction request. The test therefore checks that Helm creates the Pod from the
chart's test hook and that `helm test` then fails on its short timeout instead of
reporting success. Whether the Pod's request succeeds is checked where a model server runs.
"""

from __future__ import annotations

from tests.apiserver.chart import RELEASE, merged_values, release_args
from tests.apiserver.cluster import KubeClient
from tests.apiserver.helm import Helm


def _test_hook_pods(kube: KubeClient, namespace: str) -> list[dict]:
    pods = kube.get(f"/api/v1/namespaces/{namespace}/pods")["items"]
    return [pod for pod in pods if pod["metadata"].get("annotations", {}).get("helm.sh/hook") == "test"]


def test_helm_test_creates_pod(helm: Helm, kube: KubeClient, crds: list[str]) -> None:
    assert merged_values("dev")["tests"]["enabled"], "values/dev.yaml turns the test hook off"
    namespace = f"helm-test-{helm.major}"
    kube.ensure_namespace(namespace)
    helm.check(*release_args("install", namespace, "dev"))

    result = helm.run("test", RELEASE, "--namespace", namespace, "--timeout", "10s", timeout=120)

    assert result.returncode != 0, f"helm test passed with no node to run its Pod:\n{result.stdout}"
    pods = _test_hook_pods(kube, namespace)
    assert len(pods) == 1, [pod["metadata"]["name"] for pod in pods]
    pod = pods[0]
    assert pod["metadata"]["labels"].get("app.kubernetes.io/instance") == RELEASE
    assert pod["spec"]["restartPolicy"] == "Never"
    assert pod["status"].get("phase") == "Pending"
    assert not pod["spec"].get("nodeName")
