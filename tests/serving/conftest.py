"""Fixtures: an MLflow server with a registered iris model, and model servers for it."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.serving.support import ModelServer, model_signature, train_iris_classifier
from tests.support.mlflow_server import MlflowServer

MODEL_NAME = "iris-serving-test"
ALIAS = "dev"
# Limits small enough that the malformed-request table can exceed them cheaply.
MAX_BATCH_ROWS = 50
MAX_BODY_BYTES = 20_000


@dataclass(frozen=True)
class Registry:
    url: str
    model_name: str
    version: str
    alias: str
    local_path: Path


@pytest.fixture(scope="session")
def registry(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Registry]:
    import mlflow
    import mlflow.sklearn

    root = tmp_path_factory.mktemp("mlflow")
    with MlflowServer(root) as server, pytest.MonkeyPatch.context() as patch:
        # The environment variable, not mlflow.set_tracking_uri(), which would override
        # the URI that later tests set.
        patch.setenv("MLFLOW_TRACKING_URI", server.url)
        model, features = train_iris_classifier()
        signature = model_signature(model, features)
        with mlflow.start_run():
            info = mlflow.sklearn.log_model(
                model,
                name="model",
                signature=signature,
                registered_model_name=MODEL_NAME,
                serialization_format="cloudpickle",
            )
        client = mlflow.MlflowClient()
        version = str(info.registered_model_version)
        client.set_registered_model_alias(MODEL_NAME, ALIAS, version)

        local_path = root / "local-model"
        mlflow.sklearn.save_model(model, str(local_path), signature=signature, serialization_format="cloudpickle")
        patch.undo()
        yield Registry(server.url, MODEL_NAME, version, ALIAS, local_path)


@pytest.fixture(scope="module")
def local_server(registry: Registry, tmp_path_factory: pytest.TempPathFactory) -> Iterator[ModelServer]:
    """A server of the local model folder with small request limits."""
    server = ModelServer(
        tmp_path_factory.mktemp("local-server"),
        str(registry.local_path),
        extra_parameters={"max_batch_rows": MAX_BATCH_ROWS, "max_body_bytes": MAX_BODY_BYTES},
    )
    with server:
        yield server
