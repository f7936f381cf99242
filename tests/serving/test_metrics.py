"""The mlship_* Prometheus metrics on the metrics port, with two gunicorn workers."""

from __future__ import annotations

import re
from collections.abc import Iterator

import pytest
import requests

from tests.serving.conftest import Registry
from tests.serving.support import GOOD_ROW, ModelServer, ndarray

SAMPLE = re.compile(r"^(?P<name>[a-z_]+)\{(?P<labels>[^}]*)\} (?P<value>\S+)$")
# Rows that the iris model predicts as setosa, versicolor and virginica.
SETOSA, VERSICOLOR, VIRGINICA = GOOD_ROW, [6.0, 2.7, 4.5, 1.5], [7.2, 3.2, 6.0, 2.2]


def scrape(server: ModelServer) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    text = requests.get(server.metrics_url, timeout=30).text
    samples = {}
    for line in text.splitlines():
        match = SAMPLE.match(line)
        if match and match["name"].startswith("mlship_"):
            labels = frozenset(re.findall(r'(\w+)="([^"]*)"', match["labels"]))
            samples[(match["name"], labels)] = float(match["value"])
    return samples


def value(samples: dict, name: str, **labels: str) -> float:
    return samples.get((name, frozenset(labels.items())), 0.0)


@pytest.fixture(scope="module")
def alias_server(registry: Registry, tmp_path_factory: pytest.TempPathFactory) -> Iterator[ModelServer]:
    uri = f"models:/{registry.model_name}@{registry.alias}"
    with ModelServer(tmp_path_factory.mktemp("metrics-server"), uri, tracking_uri=registry.url, workers=2) as server:
        yield server


def test_counters_and_histogram_match_requests(alias_server: ModelServer, registry: Registry) -> None:
    model = {"model_name": registry.model_name, "model_version": registry.version}
    good_payloads = [ndarray([SETOSA]), ndarray([VERSICOLOR, VIRGINICA]), ndarray([SETOSA, SETOSA, VIRGINICA])]
    good_requests, bad_requests, unsupported_requests = 30, 12, 5

    for index in range(good_requests):
        response = alias_server.predict(good_payloads[index % 3])
        assert response.status_code == 200, response.text
    for _ in range(bad_requests):
        assert alias_server.predict(ndarray([[1.0, "x", 2.0, 3.0]])).status_code == 400
    for _ in range(unsupported_requests):
        response = requests.post(alias_server.url + "/api/v1.0/predictions", data="{}", timeout=30)
        assert response.status_code == 415

    samples = scrape(alias_server)
    assert value(samples, "mlship_requests_total", **model, status="200") == good_requests
    assert value(samples, "mlship_requests_total", **model, status="400") == bad_requests
    assert value(samples, "mlship_requests_total", **model, status="415") == unsupported_requests
    total = good_requests + bad_requests + unsupported_requests
    assert value(samples, "mlship_request_duration_seconds_count", **model) == total
    assert value(samples, "mlship_request_duration_seconds_bucket", **model, le="+Inf") == total
    assert 0 < value(samples, "mlship_request_duration_seconds_sum", **model) < total * 5

    # Each cycle of three requests predicts setosa 3 times, versicolor once and virginica twice.
    cycles = good_requests // 3
    assert value(samples, "mlship_predictions_total", **model, **{"class": "setosa"}) == 3 * cycles
    assert value(samples, "mlship_predictions_total", **model, **{"class": "versicolor"}) == cycles
    assert value(samples, "mlship_predictions_total", **model, **{"class": "virginica"}) == 2 * cycles


def test_metrics_port_keeps_seldon_metrics(alias_server: ModelServer) -> None:
    response = requests.get(alias_server.metrics_url, timeout=30)
    assert response.status_code == 200
    assert "# TYPE mlship_requests_total counter" in response.text
    assert "# TYPE mlship_request_duration_seconds histogram" in response.text
