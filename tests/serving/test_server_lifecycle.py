"""Starting the model server: loading by alias, version and path, and failing clearly."""

from __future__ import annotations

import socket

import pytest

from tests.serving.conftest import Registry
from tests.serving.support import CLASSES, GOOD_ROW, ModelServer, ndarray
from tests.support.network import free_port

BOOT_ERROR_EXIT_CODE = 3  # gunicorn's "worker failed to boot"


def assert_prediction(server: ModelServer, name: str | None, version: str | None) -> None:
    response = server.predict(ndarray([GOOD_ROW]))
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["data"]["names"] == CLASSES
    assert len(body["data"]["ndarray"][0]) == 3
    assert body["meta"]["tags"] == {"model_name": name, "model_version": version}


def test_serves_model_by_alias(registry: Registry, tmp_path) -> None:
    uri = f"models:/{registry.model_name}@{registry.alias}"
    with ModelServer(tmp_path, uri, tracking_uri=registry.url) as server:
        assert_prediction(server, registry.model_name, registry.version)


def test_serves_model_by_version(registry: Registry, tmp_path) -> None:
    uri = f"models:/{registry.model_name}/{registry.version}"
    with ModelServer(tmp_path, uri, tracking_uri=registry.url) as server:
        assert_prediction(server, registry.model_name, registry.version)


def test_serves_model_by_local_path(local_server: ModelServer) -> None:
    assert_prediction(local_server, None, None)


@pytest.mark.parametrize(
    ("uri_template", "expected"),
    [
        ("models:/{name}@no-such-alias", "alias 'no-such-alias' of model '{name}' not found"),
        ("models:/{name}/999", "version '999' of model '{name}' not found"),
    ],
)
def test_missing_model_stops_server(registry: Registry, tmp_path, uri_template: str, expected: str) -> None:
    uri = uri_template.format(name=registry.model_name)
    server = ModelServer(tmp_path, uri, tracking_uri=registry.url).start()
    assert server.wait_exit() == BOOT_ERROR_EXIT_CODE
    log = server.log()
    assert f"failed to load model uri={uri}: {expected.format(name=registry.model_name)}" in log
    assert "Traceback" not in log


def test_unreachable_registry_stops_server(tmp_path) -> None:
    closed = f"http://127.0.0.1:{free_port()}"
    server = ModelServer(tmp_path, "models:/iris@dev", tracking_uri=closed).start()
    assert server.wait_exit() == BOOT_ERROR_EXIT_CODE
    log = server.log()
    assert log.count("registry unreachable uri=models:/iris@dev") == 3  # attempts 1 to 3 of 4
    assert f"MLflow at {closed} is unreachable after 4 attempts" in log
    assert "Traceback" not in log


def test_port_in_use_stops_server(registry: Registry, tmp_path) -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as holder:
        holder.bind(("0.0.0.0", 0))  # the server binds 0.0.0.0, so hold the same address
        holder.listen()
        port = holder.getsockname()[1]
        server = ModelServer(tmp_path, str(registry.local_path), http_port=port).start()
        assert server.wait_exit() != 0
    log = server.log()
    assert f"Connection in use: ('0.0.0.0', {port})" in log
    assert f"Can't connect to ('0.0.0.0', {port})" in log
