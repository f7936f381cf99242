"""The chart under test, its per-environment values and the objects a release must contain."""

from __future__ import annotations

import base64
import copy
from pathlib import Path
from typing import Any

import yaml

from tests.apiserver.cluster import KubeClient
from tests.support.paths import REPO

CHART = REPO / "charts" / "mlship"
VALUES_DIR = REPO / "values"
RELEASE = "mlship"

SELDON_DEPLOYMENTS = "/apis/machinelearning.seldon.io/v1/namespaces/{namespace}/seldondeployments"
WORKFLOW_TEMPLATES = "/apis/argoproj.io/v1alpha1/namespaces/{namespace}/workflowtemplates"


def values_file(environment: str) -> Path:
    return VALUES_DIR / f"{environment}.yaml"


def release_args(command: str, namespace: str, environment: str, *extra: str) -> list[str]:
    """Return the arguments of `helm install` or `helm upgrade` of the chart with one values file."""
    return [command, RELEASE, str(CHART), "--namespace", namespace, "--values", str(values_file(environment)), *extra]


def _deep_merge(base: dict[str, Any], override: dict[str, Any]) -> dict[str, Any]:
    """Merge ``override`` into a copy of ``base`` the way Helm merges values files."""
    merged = copy.deepcopy(base)
    for key, value in override.items():
        if value is None:
            merged.pop(key, None)
        elif isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = _deep_merge(merged[key], value)
        else:
            merged[key] = copy.deepcopy(value)
    return merged


def merged_values(environment: str) -> dict[str, Any]:
    """Return the chart's values.yaml overridden by values/<environment>.yaml."""
    defaults = yaml.safe_load((CHART / "values.yaml").read_text()) or {}
    overrides = yaml.safe_load(values_file(environment).read_text()) or {}
    return _deep_merge(defaults, overrides)


def fullname(values: dict[str, Any], release: str = RELEASE) -> str:
    """Repeat the chart's mlship.fullname helper (release-chart, 43 characters at most)."""
    if values.get("fullnameOverride"):
        return str(values["fullnameOverride"])[:43].rstrip("-")
    name = values.get("nameOverride") or "mlship"
    base = release if name in release else f"{release}-{name}"
    return base[:43].rstrip("-")


def referenced_secrets(values: Any) -> dict[str, dict[str, str]]:
    """Find every non-empty ``existingSecret`` in ``values`` and the keys it must contain.

    The keys are the sibling settings whose names end in ``Key`` (``userKey``,
    ``passwordKey``, ``accessKeyIdKey``, ...). Returns Secret name -> key -> dummy value.
    """
    found: dict[str, dict[str, str]] = {}
    if isinstance(values, dict):
        name = values.get("existingSecret")
        if isinstance(name, str) and name:
            keys = {str(v): f"test-{k}" for k, v in values.items() if k.endswith("Key") and isinstance(v, str)}
            found.setdefault(name, {}).update(keys)
        for child in values.values():
            for secret, keys in referenced_secrets(child).items():
                found.setdefault(secret, {}).update(keys)
    elif isinstance(values, list):
        for child in values:
            for secret, keys in referenced_secrets(child).items():
                found.setdefault(secret, {}).update(keys)
    return found


def create_referenced_secrets(kube: KubeClient, namespace: str, values: dict[str, Any]) -> list[str]:
    """Create the Secrets that ``values`` names as existing, as an operator would before install."""
    names = []
    for name, keys in referenced_secrets(values).items():
        data = {key: base64.b64encode(value.encode()).decode() for key, value in keys.items()}
        kube.ensure(
            f"/api/v1/namespaces/{namespace}/secrets",
            {"metadata": {"name": name}, "type": "Opaque", "data": data},
        )
        names.append(name)
    return names


def model_uri(values: dict[str, Any], version: Any = None) -> str:
    """Repeat the chart's mlship.modelUri helper for the main predictor, or a pinned ``version``."""
    name = values["model"]["name"]
    pinned = version if version is not None else values["serving"]["model"].get("version")
    if pinned:
        return f"models:/{name}/{pinned}"
    return f"models:/{name}@{values['serving']['model']['alias']}"
