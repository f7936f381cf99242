"""Every rendered object of every environment, strictly valid against the Kubernetes
schemas of two minors and the CRD schemas of the operators the chart targets."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

import pytest

from tests.chart.conftest import (
    ENVIRONMENTS,
    KUBERNETES_TARGETS,
    REPO_ROOT,
    environment_file,
    render,
    scenario_files,
)

ALL_VALUES = [environment_file(name) for name in ENVIRONMENTS] + scenario_files()
ARGOCD_FILES = sorted((REPO_ROOT / "argocd").glob("*.yaml"))


def kubeconform_run(
    kubeconform: str, kubernetes_schemas: Path, crd_schemas: Path, version: str, manifests: list[Path]
) -> dict:
    """Validate ``manifests`` strictly and return kubeconform's JSON report, with one entry per object."""
    command = [
        kubeconform,
        "-strict",
        "-summary",
        "-verbose",
        "-output",
        "json",
        "-kubernetes-version",
        version,
        "-schema-location",
        str(kubernetes_schemas),
        "-schema-location",
        str(crd_schemas) + "/{{ .Group }}/{{ .ResourceKind }}_{{ .ResourceAPIVersion }}.json",
        *map(str, manifests),
    ]
    result = subprocess.run(command, capture_output=True, text=True, check=False, timeout=600)
    report: dict[str, Any] = json.loads(result.stdout)
    report["returncode"] = result.returncode
    return report


@pytest.fixture(scope="session")
def renders(helm3: str, tmp_path_factory: pytest.TempPathFactory) -> dict[str, dict[str, tuple[Path, int]]]:
    """Render every values file for every target: version -> file stem -> (manifest, object count)."""
    folder = tmp_path_factory.mktemp("renders")
    rendered: dict[str, dict[str, tuple[Path, int]]] = {}
    for version in KUBERNETES_TARGETS:
        rendered[version] = {}
        for values_file in ALL_VALUES:
            result = render(helm3, [values_file], kube_version=version)
            manifest = folder / f"{version}-{values_file.stem}.yaml"
            manifest.write_text(result.stdout, encoding="utf-8")
            rendered[version][values_file.stem] = (manifest, len(result.objects))
    return rendered


@pytest.fixture(scope="session")
def reports(
    renders: dict[str, dict[str, tuple[Path, int]]],
    kubeconform: str,
    kubernetes_schemas: Path,
    crd_schemas: dict[str, Path],
) -> dict[str, dict]:
    """One kubeconform run per Kubernetes target over all renders (schemas load once per run)."""
    return {
        version: kubeconform_run(
            kubeconform,
            kubernetes_schemas,
            crd_schemas[version],
            version,
            [manifest for manifest, _ in renders[version].values()],
        )
        for version in KUBERNETES_TARGETS
    }


@pytest.mark.parametrize("version", KUBERNETES_TARGETS)
@pytest.mark.parametrize("values_file", ALL_VALUES, ids=[path.stem for path in ALL_VALUES])
def test_render_is_valid(
    renders: dict[str, dict[str, tuple[Path, int]]], reports: dict[str, dict], values_file: Path, version: str
) -> None:
    manifest, count = renders[version][values_file.stem]
    # kubeconform reports an empty file as one entry with an empty status and kind.
    resources = [
        item
        for item in reports[version]["resources"]
        if item["filename"] == str(manifest) and (item["status"], item["kind"]) != ("", "")
    ]
    problems = [
        f"{item['kind']} {item['name']}: {item['msg']}" for item in resources if item["status"] != "statusValid"
    ]
    print(f"{values_file.stem} on Kubernetes {version}: {len(resources) - len(problems)} of {count} objects valid")
    assert problems == []
    assert len(resources) == count


@pytest.mark.parametrize("version", KUBERNETES_TARGETS)
def test_argocd_examples_are_valid(
    kubeconform: str, kubernetes_schemas: Path, crd_schemas: dict[str, Path], version: str
) -> None:
    assert [path.name for path in ARGOCD_FILES] == [
        "application-dev.yaml",
        "application-prod.yaml",
        "application-staging.yaml",
        "applicationset.yaml",
    ]
    report = kubeconform_run(kubeconform, kubernetes_schemas, crd_schemas[version], version, ARGOCD_FILES)
    problems = [
        f"{item['kind']} {item['name']}: {item['msg']}"
        for item in report["resources"]
        if item["status"] != "statusValid"
    ]
    assert problems == []
    assert report["summary"]["valid"] == len(ARGOCD_FILES)
    assert report["returncode"] == 0


@pytest.mark.parametrize(
    ("manifest", "message"),
    [
        (
            "apiVersion: argoproj.io/v1alpha1\nkind: CronWorkflow\nmetadata: {name: x}\n"
            "spec: {schedules: ['0 * * * *'], workflowSpec: {entrypoint: a}, unknownField: 1}\n",
            "additional properties 'unknownField' not allowed",
        ),
        (
            "apiVersion: v1\nkind: Service\nmetadata: {name: x}\nspec: {ports: [{port: 80, targetPorts: 1}]}\n",
            "additional properties 'targetPorts' not allowed",
        ),
        (
            "apiVersion: machinelearning.seldon.io/v1\nkind: SeldonDeployment\nmetadata: {name: x}\n"
            "spec: {predictors: [{name: main, graph: {name: m}, traffic: '50%'}]}\n",
            "traffic",
        ),
    ],
    ids=["crd-unknown-field", "builtin-unknown-field", "crd-wrong-type"],
)
def test_validation_rejects_invalid_object(
    kubeconform: str,
    kubernetes_schemas: Path,
    crd_schemas: dict[str, Path],
    tmp_path: Path,
    manifest: str,
    message: str,
) -> None:
    """The schemas are strict enough to catch a misspelt or mistyped field."""
    path = tmp_path / "invalid.yaml"
    path.write_text(manifest, encoding="utf-8")
    version = next(iter(KUBERNETES_TARGETS))
    report = kubeconform_run(kubeconform, kubernetes_schemas, crd_schemas[version], version, [path])
    assert report["returncode"] != 0
    assert report["summary"]["invalid"] == 1
    assert message in report["resources"][0]["msg"]
