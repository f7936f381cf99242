"""mlship.model_loader.load_model against a real MLflow server, in the test process."""

from __future__ import annotations

import time

import numpy as np
import pytest

from mlship.errors import InvalidInputError, NotFoundError, RegistryUnavailableError
from mlship.model_loader import load_model
from tests.serving.conftest import Registry
from tests.serving.support import CLASSES, FEATURE_NAMES, GOOD_ROW
from tests.support.network import free_port


@pytest.fixture()
def tracking_uri(registry: Registry, monkeypatch: pytest.MonkeyPatch) -> str:
    monkeypatch.setenv("MLFLOW_TRACKING_URI", registry.url)
    return registry.url


def test_load_by_alias(registry: Registry, tracking_uri: str) -> None:
    model = load_model(f"models:/{registry.model_name}@{registry.alias}")
    assert model.name == registry.model_name
    assert model.version == registry.version
    assert list(model.feature_names) == FEATURE_NAMES
    assert list(model.classes) == CLASSES


def test_load_by_version(registry: Registry, tracking_uri: str) -> None:
    model = load_model(f"models:/{registry.model_name}/{registry.version}")
    assert model.version == registry.version
    probabilities = model.predict_proba(np.array([GOOD_ROW]))
    assert probabilities.shape == (1, 3)
    assert probabilities.sum() == pytest.approx(1.0)


def test_load_by_local_path(registry: Registry) -> None:
    model = load_model(str(registry.local_path))
    assert model.name is None
    assert model.version is None
    assert list(model.feature_names) == FEATURE_NAMES


@pytest.mark.parametrize(
    ("uri_template", "expected"),
    [
        ("models:/{name}@no-such-alias", "alias 'no-such-alias' of model '{name}' not found"),
        ("models:/{name}/999", "version '999' of model '{name}' not found"),
        ("models:/no-such-model@dev", "alias 'dev' of model 'no-such-model' not found"),
        ("models:/no-such-model/1", "version '1' of model 'no-such-model' not found"),
    ],
)
def test_missing_model_is_not_found(registry: Registry, tracking_uri: str, uri_template: str, expected: str) -> None:
    with pytest.raises(NotFoundError) as raised:
        load_model(uri_template.format(name=registry.model_name), attempts=1)
    assert expected.format(name=registry.model_name) in str(raised.value)


def test_missing_local_folder_is_not_found(tmp_path) -> None:
    with pytest.raises(NotFoundError, match="must contain the MLmodel file"):
        load_model(str(tmp_path / "nothing"))


@pytest.mark.parametrize("uri", ["models:/only-a-name", "models:/name/not-a-number", "s3://bucket/model"])
def test_malformed_uri_is_invalid(uri: str) -> None:
    with pytest.raises(InvalidInputError, match="invalid model URI"):
        load_model(uri)


def test_unreachable_registry_retries_then_fails(monkeypatch: pytest.MonkeyPatch) -> None:
    closed = f"http://127.0.0.1:{free_port()}"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", closed)
    started = time.monotonic()
    with pytest.raises(RegistryUnavailableError) as raised:
        load_model("models:/iris@dev", attempts=3, first_delay_seconds=0.2)
    elapsed = time.monotonic() - started
    assert f"MLflow at {closed} is unreachable after 3 attempts" in str(raised.value)
    assert 0.6 <= elapsed < 30  # two waits of 0.2 s and 0.4 s, and no retries inside MLflow
