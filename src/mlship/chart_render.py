"""Rendering the chart with `helm template`, the one source of the pipeline's definition.

The local runner and the promotion command read the WorkflowTemplate and the pipeline
config from the same render that a cluster would get, instead of a second copy.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import yaml

from mlship.config import PipelineConfig, parse_config
from mlship.errors import InvalidInputError

REPO_ROOT = Path(__file__).resolve().parents[2]
CHART_DIR = REPO_ROOT / "charts" / "mlship"
VALUES_DIR = REPO_ROOT / "values"
RELEASE_NAME = "mlship"
# `helm template` checks the chart's kubeVersion against this instead of a cluster; it
# must satisfy kubeVersion in Chart.yaml.
KUBE_VERSION = os.environ.get("MLSHIP_KUBE_VERSION", "1.34.0")


def helm_binary() -> str:
    """Return $HELM, the repository's `.tools/bin/helm`, or `helm` on PATH."""
    candidates = [os.environ.get("HELM"), str(REPO_ROOT / ".tools" / "bin" / "helm"), shutil.which("helm")]
    for candidate in candidates:
        if candidate and Path(candidate).is_file():
            return candidate
    raise InvalidInputError("helm not found; run `make tools` or set HELM=/path/to/helm")


def render_chart(
    values_files: Sequence[Path],
    show_only: Sequence[str] = (),
    chart_dir: Path = CHART_DIR,
    set_values: Sequence[str] = (),
    release: str = RELEASE_NAME,
) -> list[dict[str, Any]]:
    """Run `helm template` and return the rendered objects, skipping empty documents."""
    command = [helm_binary(), "template", release, str(chart_dir), "--kube-version", KUBE_VERSION]
    for values_file in values_files:
        command += ["--values", str(values_file)]
    for assignment in set_values:
        command += ["--set", assignment]
    for template in show_only:
        command += ["--show-only", template]

    result = subprocess.run(command, capture_output=True, text=True, check=False)
    if result.returncode != 0:
        raise InvalidInputError(f"helm template failed: {result.stderr.strip()}")
    return [document for document in yaml.safe_load_all(result.stdout) if document]


def environment_values_file(environment: str, values_dir: Path = VALUES_DIR) -> Path:
    path = values_dir / f"{environment}.yaml"
    if not path.is_file():
        raise InvalidInputError(f"values file {path} not found; environments are the files in {values_dir}")
    return path


def find_object(objects: Sequence[dict[str, Any]], kind: str, name_suffix: str) -> dict[str, Any]:
    """Return the one object of ``kind`` whose name ends with ``name_suffix``."""
    matches = [
        item
        for item in objects
        if item.get("kind") == kind and str(item.get("metadata", {}).get("name", "")).endswith(name_suffix)
    ]
    if len(matches) != 1:
        raise InvalidInputError(f"expected one {kind} named *{name_suffix} in the render, found {len(matches)}")
    return matches[0]


PIPELINE_CONFIGMAP_TEMPLATE = "templates/pipeline/configmap.yaml"


def render_pipeline_config(values_files: Sequence[Path], chart_dir: Path = CHART_DIR) -> PipelineConfig:
    """Render the pipeline ConfigMap for ``values_files`` and parse its ``pipeline.yaml`` key."""
    objects = render_chart(values_files, show_only=[PIPELINE_CONFIGMAP_TEMPLATE], chart_dir=chart_dir)
    config_map = find_object(objects, "ConfigMap", "-pipeline-config")
    text = config_map.get("data", {}).get("pipeline.yaml")
    if not text:
        raise InvalidInputError(f"the rendered ConfigMap {config_map['metadata']['name']} has no pipeline.yaml key")
    source = f"pipeline.yaml rendered from {', '.join(str(path) for path in values_files)}"
    return parse_config(yaml.safe_load(text), source=source)
