"""Locations of the repository, its virtual environments and its built tools."""

import os
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
VENVS = REPO / ".venv"
TOOLS = REPO / ".tools"


def venv_bin(venv: str, program: str) -> Path:
    """Return the path of ``program`` in the local virtual environment ``venv``."""
    return VENVS / venv / "bin" / program


def helm() -> str:
    return os.environ.get("HELM", str(TOOLS / "bin" / "helm"))


def crds_dir() -> Path:
    return Path(os.environ.get("CRDS_DIR", REPO.parent / "shared" / "crds")).resolve()
