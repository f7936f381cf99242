"""Start and stop the MLflow server and the model server as local processes.

Used by ``mlship demo`` and by the tests, so both run the real servers the same way:
MLflow from the registry image's environment, the seldon-core microservice from the
serve image's environment, each in its own process group on 127.0.0.1.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path
from types import TracebackType

from mlship.errors import InvalidInputError

log = logging.getLogger(__name__)

LOOPBACK = "127.0.0.1"
MODEL_CLASS = "mlship.serving.MlshipModel"


def free_port() -> int:
    """Return a TCP port on 127.0.0.1 that was free a moment ago."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((LOOPBACK, 0))
        return int(sock.getsockname()[1])


def require_free_port(port: int, flag: str) -> None:
    """Raise InvalidInputError naming ``flag`` when ``port`` is taken on 127.0.0.1."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        try:
            sock.bind((LOOPBACK, port))
        except OSError:
            raise InvalidInputError(
                f"port {port} on {LOOPBACK} is already in use; stop the process that listens on it "
                f"or pass {flag} with a free port"
            ) from None


def wait_for_http(url: str, process: subprocess.Popen[bytes], timeout: float, log_path: Path) -> None:
    """Poll ``url`` until it returns 200, and fail early when the process exits."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise InvalidInputError(
                f"server exited with code {process.returncode} before {url} was ready; "
                f"last log lines:\n{tail(log_path)}"
            )
        try:
            with urllib.request.urlopen(url, timeout=2) as response:  # noqa: S310 (loopback only)
                if response.status == 200:
                    return
        except (urllib.error.URLError, ConnectionError, TimeoutError):
            pass
        time.sleep(0.25)
    raise InvalidInputError(f"{url} not ready after {timeout:.0f} s; last log lines:\n{tail(log_path)}")


def tail(path: Path, lines: int = 15) -> str:
    if not path.exists():
        return "(no log)"
    return "\n".join(path.read_text(encoding="utf-8", errors="replace").splitlines()[-lines:])


def stop_process_group(process: subprocess.Popen[bytes], timeout: float = 20.0) -> None:
    """Send SIGTERM to the process group of ``process``, then SIGKILL after ``timeout`` seconds.

    Servers start in their own session, so this also stops their worker processes.
    """
    if process.poll() is not None:
        return
    os.killpg(process.pid, signal.SIGTERM)
    try:
        process.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait()


class ServerProcess:
    """A server started in its own process group, stopped with its workers."""

    def __init__(
        self,
        name: str,
        command: list[str],
        env: dict[str, str],
        log_path: Path,
        ready_url: str,
        scratch_dirs: tuple[str, ...] = (),
    ) -> None:
        self.name = name
        self.scratch_dirs = scratch_dirs  # removed when the server stops
        self.command = command
        self.env = env
        self.log_path = log_path
        self.ready_url = ready_url
        self.process: subprocess.Popen[bytes] | None = None

    def start(self, timeout: float = 180.0) -> ServerProcess:
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        with self.log_path.open("ab") as log_file:
            self.process = subprocess.Popen(
                self.command, stdout=log_file, stderr=subprocess.STDOUT, env=self.env, start_new_session=True
            )
        log.info("started %s (pid %d), waiting for %s", self.name, self.process.pid, self.ready_url)
        try:
            wait_for_http(self.ready_url, self.process, timeout, self.log_path)
        except BaseException:
            self.stop()
            raise
        return self

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            stop_process_group(self.process)
            log.info("stopped %s (pid %d)", self.name, self.process.pid)
        for folder in self.scratch_dirs:
            shutil.rmtree(folder, ignore_errors=True)

    def __enter__(self) -> ServerProcess:
        return self.start()

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, traceback: TracebackType | None
    ) -> None:
        self.stop()


def mlflow_server(venv: Path, root: Path, port: int, backend_store_uri: str | None = None) -> ServerProcess:
    """Build an MLflow tracking server with a SQLite file and proxied artifacts under ``root``."""
    root.mkdir(parents=True, exist_ok=True)
    backend = backend_store_uri or f"sqlite:///{root.resolve() / 'mlflow.db'}"
    command = [
        str(venv / "bin" / "mlflow"), "server",
        "--host", LOOPBACK, "--port", str(port), "--workers", "1",
        "--backend-store-uri", backend,
        "--artifacts-destination", str(root.resolve() / "artifacts"),
        "--serve-artifacts",
    ]  # fmt: skip
    # MLflow 3 sends telemetry from the server too, and there is no route for it here. Its
    # background job runner starts seven more processes, which nothing in mlship uses.
    env = {
        **os.environ,
        "MLFLOW_DISABLE_TELEMETRY": "true",
        "DO_NOT_TRACK": "true",
        "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false",
    }
    return ServerProcess("MLflow server", command, env, root / "mlflow-server.log", f"http://{LOOPBACK}:{port}/health")


def model_server(
    venv: Path, root: Path, model_uri: str, tracking_uri: str, http_port: int, metrics_port: int, workers: int = 1
) -> ServerProcess:
    """Build the seldon-core microservice with mlship's model class, as the SeldonDeployment runs it."""
    scratch = root / "tmp"
    metrics_dir = scratch / "prometheus"
    metrics_dir.mkdir(parents=True, exist_ok=True)
    parameters = [{"name": "model_uri", "value": model_uri, "type": "STRING"}]
    command = [
        str(venv / "bin" / "seldon-core-microservice"), MODEL_CLASS,
        "--service-type", "MODEL",
        "--http-port", str(http_port), "--metrics-port", str(metrics_port),
        "--workers", str(workers),
        "--parameters", json.dumps(parameters),
    ]  # fmt: skip
    # seldon-core's metrics manager binds a Unix socket under $TMPDIR, and socket paths are
    # limited to 107 bytes, so TMPDIR is a short folder of the system's /tmp, as in the pod.
    socket_dir = tempfile.mkdtemp(prefix="mlship-serve-")
    env = {
        **os.environ,
        "MLFLOW_TRACKING_URI": tracking_uri,
        "PROMETHEUS_MULTIPROC_DIR": str(metrics_dir),
        "TMPDIR": socket_dir,
        "HOME": str(scratch),
        # As in images/serve/Dockerfile: REST only (a gRPC process would load a second copy
        # of the model), and gunicorn's sync worker.
        "GRPC_WORKERS": "0",
        "GUNICORN_THREADS": "1",
    }
    return ServerProcess(
        "model server",
        command,
        env,
        root / "model-server.log",
        f"http://{LOOPBACK}:{http_port}/health/ping",
        scratch_dirs=(socket_dir,),
    )
