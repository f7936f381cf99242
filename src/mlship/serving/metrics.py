"""Prometheus metrics of the model server, exported on seldon-core's metrics port.

seldon-core 1.19 serves ``/metrics`` on port 6000 from its own process, forked before the
gunicorn workers that run the model, and that endpoint renders only seldon-core's
``SeldonMetrics``. The workers therefore record these metrics with prometheus-client's
multiprocess mode, in files under ``$PROMETHEUS_MULTIPROC_DIR``, and
:func:`install_exporter` makes the metrics endpoint add what those files contain.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Histogram, exposition
from prometheus_client.multiprocess import MultiProcessCollector

log = logging.getLogger(__name__)

MULTIPROC_DIR_VARIABLE = "PROMETHEUS_MULTIPROC_DIR"
# Request latency buckets in seconds, from 0.5 ms up to 10 s.
DURATION_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)

# registry=None: in multiprocess mode the values live in files, and MultiProcessCollector
# reads them back, so these objects need no registry of their own.
REQUESTS = Counter(
    "mlship_requests",  # exported as mlship_requests_total
    "Prediction requests by HTTP status code.",
    ["model_name", "model_version", "status"],
    registry=None,
)
REQUEST_DURATION = Histogram(
    "mlship_request_duration_seconds",
    "Time from the start of request handling to the encoded response, in seconds.",
    ["model_name", "model_version"],
    buckets=DURATION_BUCKETS,
    registry=None,
)
PREDICTIONS = Counter(
    "mlship_predictions",  # exported as mlship_predictions_total
    "Predicted rows by the class with the highest probability.",
    ["model_name", "model_version", "class"],
    registry=None,
)


def prepare_multiprocess_dir() -> Path | None:
    """Create ``$PROMETHEUS_MULTIPROC_DIR`` and delete value files of earlier runs.

    Call it once in the parent process before any worker records a value. The folder is
    an emptyDir in the pod, which survives a container restart, and prometheus-client
    would otherwise add the old files to the new counts.
    """
    folder = os.environ.get(MULTIPROC_DIR_VARIABLE)
    if not folder:
        log.warning(
            "%s is not set, so mlship_* metrics are not exported: seldon-core serves /metrics from "
            "another process than the workers; set it to a writable, empty folder",
            MULTIPROC_DIR_VARIABLE,
        )
        return None
    path = Path(folder)
    path.mkdir(parents=True, exist_ok=True)
    stale = list(path.glob("*.db"))
    for file in stale:
        file.unlink()
    log.info("prometheus multiprocess folder=%s removed_files=%d", path, len(stale))
    return path


def render_multiprocess_metrics(folder: Path) -> str:
    """Render the metrics that every worker recorded under ``folder`` in text format."""
    registry = CollectorRegistry()
    MultiProcessCollector(registry, path=str(folder))
    return str(exposition.generate_latest(registry).decode("utf-8"))


def install_exporter(folder: Path) -> None:
    """Make seldon-core's metrics endpoint append the metrics recorded under ``folder``.

    seldon-core 1.19 offers no hook to add a collector to that endpoint, so this wraps
    ``SeldonMetrics.generate_metrics``, which the endpoint calls for every scrape. It must
    run before seldon-core forks the metrics process, which happens after it constructs
    the model class.
    """
    from seldon_core.metrics import SeldonMetrics

    original: Callable[[Any], tuple[str, str]] = SeldonMetrics.generate_metrics
    if getattr(original, "mlship_exporter", False):
        return

    def generate_metrics(self: Any) -> tuple[str, str]:
        text, content_type = original(self)
        try:
            text += render_multiprocess_metrics(folder)
        except Exception:
            # A scrape must still return seldon-core's own metrics.
            log.exception("failed to read mlship metrics from %s", folder)
        return text, content_type

    generate_metrics.mlship_exporter = True  # type: ignore[attr-defined]
    SeldonMetrics.generate_metrics = generate_metrics
