"""A seldon-core microservice running ``mlship.serving.MlshipModel``, and a model to serve.

The process runs from ``.venv/serve`` on free loopback ports, close to how the pod runs
it: HOME, TMPDIR and the working directory are empty folders under the test's tmp dir,
and the only folder the server is meant to write is ``PROMETHEUS_MULTIPROC_DIR``, as the
emptyDir in the pod. NOTE: the tests run as root, so nothing stops the server from
writing elsewhere; the read-only root file system and UID 10001 are not reproduced.
"""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path
from typing import Any

import requests

from mlship.local_servers import stop_process_group
from tests.support.network import free_port, wait_for_http
from tests.support.paths import REPO, venv_bin

FEATURE_NAMES = ["sepal_length_cm", "sepal_width_cm", "petal_length_cm", "petal_width_cm"]
CLASSES = ["setosa", "versicolor", "virginica"]
GOOD_ROW = [5.1, 3.5, 1.4, 0.2]
PREDICT_PATH = "/api/v1.0/predictions"


def train_iris_classifier() -> tuple[Any, Any]:
    """Fit a small classifier on the iris data; return it with its feature frame."""
    from sklearn.datasets import load_iris
    from sklearn.linear_model import LogisticRegression

    data = load_iris(as_frame=True)
    features = data.data.set_axis(FEATURE_NAMES, axis=1)
    target = data.target.map(dict(enumerate(data.target_names)))
    return LogisticRegression(max_iter=500).fit(features, target), features


def model_signature(model: Any, features: Any) -> Any:
    from mlflow.models import infer_signature

    return infer_signature(features, model.predict_proba(features))


class ModelServer:
    """``seldon-core-microservice mlship.serving.MlshipModel`` as a child process."""

    def __init__(
        self,
        root: Path,
        model_uri: str,
        tracking_uri: str = "",
        workers: int = 1,
        http_port: int | None = None,
        extra_parameters: dict[str, int] | None = None,
    ) -> None:
        self.root = root
        self.http_port = http_port or free_port()
        self.metrics_port = free_port()
        self.url = f"http://127.0.0.1:{self.http_port}"
        self.metrics_url = f"http://127.0.0.1:{self.metrics_port}/metrics"
        self.log_path = root / "server.log"
        parameters = [{"name": "model_uri", "value": model_uri, "type": "STRING"}]
        for name, value in (extra_parameters or {}).items():
            parameters.append({"name": name, "value": str(value), "type": "INT"})
        for folder in ("home", "tmp", "work", "prometheus"):
            (root / folder).mkdir(parents=True, exist_ok=True)
        self.environment = {
            "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
            "HOME": str(root / "home"),
            "TMPDIR": str(root / "tmp"),
            "PROMETHEUS_MULTIPROC_DIR": str(root / "prometheus"),
            "PREDICTIVE_UNIT_PARAMETERS": json.dumps(parameters),
            "MLFLOW_TRACKING_URI": tracking_uri,
            "GRPC_WORKERS": "0",
            "GUNICORN_WORKERS": str(workers),
            "PYTHONPATH": str(REPO / "src"),
        }
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> ModelServer:
        log = self.log_path.open("ab")
        self.process = subprocess.Popen(
            [
                str(venv_bin("serve", "seldon-core-microservice")),
                "mlship.serving.MlshipModel",
                "--service-type",
                "MODEL",
                "--http-port",
                str(self.http_port),
                "--metrics-port",
                str(self.metrics_port),
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
            env=self.environment,
            cwd=self.root / "work",
            start_new_session=True,
        )
        return self

    def wait_ready(self, timeout: float = 240) -> ModelServer:
        try:
            wait_for_http(f"{self.url}/health/status", timeout=timeout, process=self.process)
            wait_for_http(self.metrics_url, timeout=timeout, process=self.process)
        except Exception:
            self.stop()
            raise RuntimeError(f"model server did not become ready; log:\n{self.log()[-4000:]}") from None
        return self

    def wait_exit(self, timeout: float = 240) -> int:
        assert self.process is not None
        try:
            return self.process.wait(timeout=timeout)
        finally:
            self.stop()

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def predict(self, payload: Any) -> requests.Response:
        return requests.post(self.url + PREDICT_PATH, json=payload, timeout=30)

    def stop(self) -> None:
        if self.process is not None:
            stop_process_group(self.process)

    def __enter__(self) -> ModelServer:
        return self.start().wait_ready()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()


def ndarray(rows: Any, names: list[str] | None = None) -> dict[str, Any]:
    data: dict[str, Any] = {"ndarray": rows}
    if names is not None:
        data["names"] = names
    return {"data": data}
