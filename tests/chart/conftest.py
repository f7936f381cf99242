"""Shared fixtures of the chart tests: tool paths, rendering and offline JSON schemas.

Tools come from environment variables with defaults under .tools/ (built by
`bash ci/install-tools.sh`): HELM, HELM4, KUBECONFORM, PROMTOOL, and CRDS_DIR for the
folder of upstream CRD manifests (default ../shared/crds from the repository root).
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.chart import jsonschemas

REPO_ROOT = Path(__file__).resolve().parents[2]
CHART_DIR = REPO_ROOT / "charts" / "mlship"
VALUES_DIR = REPO_ROOT / "values"
SCENARIO_DIR = Path(__file__).resolve().parent / "values"
CRD_SCHEMA_CACHE = REPO_ROOT / ".tools" / "crd-schemas"
ENVIRONMENTS = ("dev", "staging", "prod")
RELEASE = "mlship"
NAMESPACE = "mlship"
# Kubernetes minors whose schemas ci/install-tools.sh writes, each paired with the Argo
# Workflows CRDs of its time: the newest Argo on the newest minor, the older on the older.
KUBERNETES_TARGETS = {
    "1.37.2": "argo-workflows-v4.1.2",
    "1.34.4": "argo-workflows-v3.7.18",
}
# Render with these APIs present, as on a cluster that runs the Prometheus Operator.
MONITORING_APIS = ("monitoring.coreos.com/v1/ServiceMonitor", "monitoring.coreos.com/v1/PrometheusRule")


def _tool(variable: str, default: Path | str) -> str:
    value = os.environ.get(variable) or str(default)
    path = Path(value) if "/" in value else shutil.which(value)
    if path is None or not Path(path).is_file():
        pytest.fail(f"{variable}={value} not found: run `bash ci/install-tools.sh` or set {variable}")
    return str(path)


@pytest.fixture(scope="session")
def helm3() -> str:
    return _tool("HELM", REPO_ROOT / ".tools" / "bin" / "helm")


@pytest.fixture(scope="session")
def helm4() -> str:
    return _tool("HELM4", REPO_ROOT / ".tools" / "bin" / "helm4")


@pytest.fixture(scope="session", params=["helm3", "helm4"])
def helm(request: pytest.FixtureRequest) -> str:
    """Each test that takes this fixture runs once with Helm v3 and once with Helm v4."""
    return str(request.getfixturevalue(request.param))


@pytest.fixture(scope="session")
def kubeconform() -> str:
    return _tool("KUBECONFORM", REPO_ROOT / ".tools" / "bin" / "kubeconform")


@pytest.fixture(scope="session")
def promtool() -> str:
    return _tool("PROMTOOL", "promtool")


@pytest.fixture(scope="session")
def kubernetes_schemas() -> Path:
    folder = Path(os.environ.get("K8S_SCHEMAS_DIR") or REPO_ROOT / ".tools" / "k8s-schemas")
    for version in KUBERNETES_TARGETS:
        if not (folder / f"v{version}-standalone-strict" / "deployment-apps-v1.json").is_file():
            pytest.fail(f"no schemas for Kubernetes {version} in {folder}: run `bash ci/install-tools.sh`")
    return folder


@pytest.fixture(scope="session")
def crds_dir() -> Path:
    folder = Path(os.environ.get("CRDS_DIR") or REPO_ROOT.parent / "shared" / "crds")
    if not folder.is_absolute():
        folder = REPO_ROOT / folder
    if not folder.is_dir():
        pytest.fail(f"CRDS_DIR={folder} is not a folder of CRD manifests")
    return folder


@pytest.fixture(scope="session")
def crd_schemas(crds_dir: Path) -> dict[str, Path]:
    """Strict JSON schemas of the CRDs, one folder per Kubernetes target (keyed by version).

    They are cached under .tools/crd-schemas/, keyed by a digest of the CRD files and of the
    converter, because converting the Argo Workflows CRDs takes several seconds.
    """
    folders = {}
    for version, argo_workflows in KUBERNETES_TARGETS.items():
        sources = [
            source
            for source in sorted(crds_dir.iterdir())
            if source.is_dir() and not (source.name.startswith("argo-workflows-") and source.name != argo_workflows)
        ]
        digest = hashlib.sha256(Path(jsonschemas.__file__).read_bytes())
        for source in sources:
            for path in sorted(source.rglob("*.yaml")):
                digest.update(path.name.encode() + path.read_bytes())
        out = CRD_SCHEMA_CACHE / f"{version}-{digest.hexdigest()[:16]}"
        if not (out / ".complete").is_file():
            shutil.rmtree(out, ignore_errors=True)
            for source in sources:
                jsonschemas.convert_crds(source, out)
            (out / ".complete").write_text("", encoding="utf-8")
        folders[version] = out
    return folders


@dataclass
class HelmResult:
    returncode: int
    stdout: str
    stderr: str

    @property
    def objects(self) -> list[dict[str, Any]]:
        return [document for document in yaml.safe_load_all(self.stdout) if document]


def run_helm(helm: str, arguments: Sequence[str]) -> HelmResult:
    result = subprocess.run([helm, *arguments], capture_output=True, text=True, check=False, timeout=120)
    return HelmResult(result.returncode, result.stdout, result.stderr)


def template_arguments(
    values_files: Sequence[Path] = (),
    set_json: Sequence[str] = (),
    api_versions: Sequence[str] = MONITORING_APIS,
    kube_version: str | None = None,
) -> list[str]:
    arguments = ["template", RELEASE, str(CHART_DIR), "--namespace", NAMESPACE]
    for values_file in values_files:
        arguments += ["--values", str(values_file)]
    # --set-json keeps numbers typed, because --set passes 0.5 as the string "0.5".
    for assignment in set_json:
        arguments += ["--set-json", assignment]
    for api_version in api_versions:
        arguments += ["--api-versions", api_version]
    if kube_version:
        arguments += ["--kube-version", kube_version]
    return arguments


def render(helm: str, values_files: Sequence[Path] = (), set_json: Sequence[str] = (), **kwargs: Any) -> HelmResult:
    """Run `helm template` and fail the test with Helm's message when it does not render."""
    result = run_helm(helm, template_arguments(values_files, set_json, **kwargs))
    if result.returncode != 0:
        pytest.fail(f"helm template failed: {result.stderr}")
    return result


def environment_file(environment: str) -> Path:
    return VALUES_DIR / f"{environment}.yaml"


def scenario_files() -> list[Path]:
    return sorted(SCENARIO_DIR.glob("*.yaml"))
