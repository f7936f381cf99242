"""A real MLflow tracking server process on 127.0.0.1 for tests.

The server runs from `.venv/registry`, built from the registry image's lock file, with a
SQLite file (or another backend store URI) and an artifact folder under ``root``, the
same way `mlship demo` starts it.
"""

from __future__ import annotations

import subprocess
from pathlib import Path
from types import TracebackType

from mlship.local_servers import free_port, mlflow_server
from tests.support.paths import VENVS


class MlflowServer:
    """Start ``mlflow server`` on a free loopback port; use as a context manager."""

    def __init__(self, root: Path, backend_store_uri: str | None = None, port: int | None = None) -> None:
        self.root = root
        self.port = port or free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.server = mlflow_server(VENVS / "registry", root, self.port, backend_store_uri)
        self.log_path = self.server.log_path

    @property
    def process(self) -> subprocess.Popen[bytes] | None:
        return self.server.process

    def start(self) -> MlflowServer:
        self.server.start()
        return self

    def stop(self) -> None:
        self.server.stop()

    def __enter__(self) -> MlflowServer:
        return self.start()

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()
