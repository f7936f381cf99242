"""Run the helm binary of one major version against the test cluster."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path
from typing import Any, ClassVar

import yaml

from tests.support.paths import TOOLS


class Helm:
    """One Helm major version with its own kubeconfig and cache, config and data folders."""

    ENV_VARS: ClassVar[dict[str, str]] = {"helm3": "HELM", "helm4": "HELM4"}
    DEFAULT_BINARIES: ClassVar[dict[str, Path]] = {
        "helm3": TOOLS / "bin" / "helm",
        "helm4": TOOLS / "bin" / "helm4",
    }

    def __init__(self, major: str, binary: Path, kubeconfig: Path, home: Path) -> None:
        self.major = major
        self.binary = binary
        self.environment = {
            **os.environ,
            "KUBECONFIG": str(kubeconfig),
            "HELM_CACHE_HOME": str(home / "cache"),
            "HELM_CONFIG_HOME": str(home / "config"),
            "HELM_DATA_HOME": str(home / "data"),
        }

    @classmethod
    def binary_for(cls, major: str) -> Path:
        return Path(os.environ.get(cls.ENV_VARS[major], cls.DEFAULT_BINARIES[major]))

    def run(self, *args: str, timeout: float = 300.0) -> subprocess.CompletedProcess[str]:
        """Run helm with ``args`` and return the result whatever its exit code."""
        return subprocess.run(
            [str(self.binary), *args],
            env=self.environment,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )

    def check(self, *args: str, timeout: float = 300.0) -> str:
        """Run helm with ``args``, fail with its output unless it exits 0, and return stdout."""
        result = self.run(*args, timeout=timeout)
        if result.returncode != 0:
            raise AssertionError(
                f"{self.major} {' '.join(args)} exited {result.returncode}\n"
                f"stdout:\n{result.stdout[-3000:]}\nstderr:\n{result.stderr[-3000:]}"
            )
        return result.stdout

    def history(self, release: str, namespace: str) -> list[dict[str, Any]]:
        """Return the release's revisions, oldest first, as `helm history -o json` prints them."""
        output = self.check("history", release, "--namespace", namespace, "--output", "json")
        return list(json.loads(output))

    def template(self, release: str, chart: Path, namespace: str, *args: str) -> list[dict[str, Any]]:
        """Render ``chart`` with `helm template` against the cluster and return its manifests, hooks included.

        Helm v3's --validate and Helm v4's --dry-run=server (v4 deprecates --validate) take the
        Kubernetes version and API versions from the cluster, so the chart's Capabilities checks
        see the installed CRDs, as they do on install.
        """
        server_flag = "--validate" if self.major == "helm3" else "--dry-run=server"
        output = self.check("template", release, str(chart), "--namespace", namespace, server_flag, *args)
        return [document for document in yaml.safe_load_all(output) if document]
