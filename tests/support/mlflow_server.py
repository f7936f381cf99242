"""A real MLflow tracking server process on 127.0.0.1 for tests.

The server runs from `.venv/registry`, built from the registry image's lock file, with a
SQLite file (or another backend store URI) and an artifact folder under ``root``.
"""

from __future__ import annotations

import os
import signal
import subprocess
from pathlib import Path
from types import TracebackType

from tests.support.network import free_port, wait_for_http
from tests.support.paths import venv_bin


class MlflowServer:
    """Start ``mlflow server`` on a free loopback port; use as a context manager."""

    def __init__(self, root: Path, backend_store_uri: str | None = None, port: int | None = None) -> None:
        self.root = root
        self.port = port or free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.backend_store_uri = backend_store_uri or f"sqlite:///{root / 'mlflow.db'}"
        self.log_path = root / "mlflow-server.log"
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> MlflowServer:
        self.root.mkdir(parents=True, exist_ok=True)
        command = [
            str(venv_bin("registry", "mlflow")),
            "server",
            "--host", "127.0.0.1",
            "--port", str(self.port),
            "--workers", "1",
            "--backend-store-uri", self.backend_store_uri,
            "--artifacts-destination", str(self.root / "artifacts"),
            "--serve-artifacts",
        ]
        environment = {**os.environ, "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false"}
        log = self.log_path.open("ab")
        self.process = subprocess.Popen(
            command, stdout=log, stderr=subprocess.STDOUT, env=environment, start_new_session=True
        )
        try:
            wait_for_http(f"{self.url}/health", timeout=120, process=self.process)
        except Exception:
            self.stop()
            raise RuntimeError(f"MLflow server failed to start; log:\n{self.log_path.read_text()[-3000:]}") from None
        return self

    def stop(self) -> None:
        if self.process is None or self.process.poll() is not None:
            return
        # gunicorn or uvicorn workers share the process group started above.
        os.killpg(self.process.pid, signal.SIGTERM)
        try:
            self.process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait()

    def __enter__(self) -> MlflowServer:
        return self.start()

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()
