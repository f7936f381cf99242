"""The seldon-core 1.19 model class that serves a scikit-learn classifier from MLflow.

Run it with ``seldon-core-microservice mlship.serving.MlshipModel --service-type MODEL``
and the parameter ``model_uri`` in ``PREDICTIVE_UNIT_PARAMETERS``, for example
``[{"name": "model_uri", "value": "models:/iris-classifier@dev", "type": "STRING"}]``.
"""

from __future__ import annotations

import atexit
import gc
import logging
import multiprocessing.util
import os
import threading
import warnings
from typing import Any

import numpy as np
import sklearn
from flask import Blueprint
from gunicorn.arbiter import Arbiter

from mlship.errors import MlshipError
from mlship.model_loader import LoadedModel, load_model
from mlship.serving import metrics
from mlship.serving.errors import RequestError
from mlship.serving.http import build_blueprint
from mlship.serving.validation import features_from_payload

log = logging.getLogger(__name__)
_thread_state = threading.local()

DEFAULT_MAX_BATCH_ROWS = 10_000
DEFAULT_MAX_BODY_BYTES = 8 * 1024 * 1024


class MlshipModel:
    """Predict class probabilities with a model loaded by ``mlship.model_loader``.

    seldon-core constructs the class once in its main process, then calls ``load()`` in
    every gunicorn worker after the fork, so each worker loads its own copy.
    """

    def __init__(
        self,
        model_uri: str,
        max_batch_rows: int = DEFAULT_MAX_BATCH_ROWS,
        max_body_bytes: int = DEFAULT_MAX_BODY_BYTES,
    ) -> None:
        if not model_uri:
            raise ValueError("model_uri is empty: set it in PREDICTIVE_UNIT_PARAMETERS")
        if max_batch_rows < 1 or max_body_bytes < 1:
            raise ValueError(
                f"max_batch_rows and max_body_bytes must be positive, got {max_batch_rows} and {max_body_bytes}"
            )
        self.model_uri = model_uri
        self.max_batch_rows = max_batch_rows
        self.max_body_bytes = max_body_bytes
        self.ready = False
        self.model: LoadedModel | None = None
        self._constructor_pid = os.getpid()
        self._labels: tuple[str, str] = ("", "")
        self._status_counters: dict[int, Any] = {}
        self._class_counters: list[Any] = []
        self._duration: Any = None

        # seldon-core registers this blueprint on its REST app (port 9000).
        self.model_error_handler: Blueprint = build_blueprint(max_body_bytes, self.predict_body, self._observe)
        metrics_folder = metrics.prepare_multiprocess_dir()
        if metrics_folder is not None:
            metrics.install_exporter(metrics_folder)
        log.info(
            "model server configured model_uri=%s max_batch_rows=%d max_body_bytes=%d",
            model_uri,
            max_batch_rows,
            max_body_bytes,
        )

    def load(self) -> None:
        """Load the model; on failure log one line and stop the server.

        Exit code 3 is gunicorn's "worker failed to boot", which makes the gunicorn
        arbiter stop instead of starting another worker, so the process exits with 3 and
        Kubernetes restarts the container with back-off.
        """
        if self.ready:
            return
        try:
            model = load_model(self.model_uri)
        except MlshipError as error:
            log.error("failed to load model uri=%s: %s", self.model_uri, error)
            if os.getpid() != self._constructor_pid:
                # In a gunicorn worker, multiprocessing's exit handler would try to join
                # the metrics process, a child of seldon-core's parent process, and print
                # a traceback. seldon-core removes the handler too, but only after load().
                atexit.unregister(multiprocessing.util._exit_function)  # type: ignore[attr-defined]
            raise SystemExit(Arbiter.WORKER_BOOT_ERROR) from None

        # NOTE: with several workers and an alias, each worker resolves the alias itself,
        # so a worker started while the alias moves can serve another version.
        # The request's columns are checked against the signature and put in its order,
        # so scikit-learn's warning about a plain array without column names is noise.
        warnings.filterwarnings("ignore", message="X does not have valid feature names", category=UserWarning)

        self.model = model
        self._labels = (model.name or "", model.version or "")
        self._duration = metrics.REQUEST_DURATION.labels(*self._labels)
        self._class_counters = [metrics.PREDICTIONS.labels(*self._labels, name) for name in model.classes]
        self.ready = True

        # A full garbage collection walks every tracked object, about 220,000 once
        # seldon-core, MLflow and scikit-learn are imported, which took 60 to 180 ms on a
        # 2-core machine. The lists that 1,000-row requests allocate trigger such
        # collections, so freezing what exists after the load leaves the collector only
        # the requests' own objects. With it, the p99 of 1,000-row requests at one
        # connection fell from 70 ms to under 4 ms (docs/benchmarks.md, runs 7 and 8).
        gc.collect()
        gc.freeze()
        log.info("model ready name=%s version=%s uri=%s", model.name, model.version, self.model_uri)

    def predict_raw(self, request: Any) -> dict[str, Any]:
        """Check a Seldon protocol JSON request and return class probabilities as lists.

        seldon-core's own prediction view calls this method and encodes the result with
        Flask's standard JSON provider, which cannot encode numpy arrays. For a valid REST
        prediction request, the blueprint's hook returns a response from ``predict_body``
        before that view runs.
        """
        body = self.predict_body(request)
        body["data"]["ndarray"] = body["data"]["ndarray"].tolist()
        return body

    def predict_body(self, request: Any) -> dict[str, Any]:
        """Check a Seldon protocol JSON request and return class probabilities.

        ``data.ndarray`` in the returned body is a float64 numpy array, one row per
        request row, because orjson encodes that faster than a list of lists.
        """
        model = self._require_model()
        if isinstance(request, bytes):
            raise RequestError("raw payloads are not supported: unset PAYLOAD_PASSTHROUGH")
        features = features_from_payload(request, model.feature_names, self.max_batch_rows)
        if not getattr(_thread_state, "sklearn_configured", False):
            # Requests are checked for NaN and infinity before they reach the model.
            # scikit-learn keeps this setting per thread, and gunicorn's gthread worker
            # serves requests from several threads.
            sklearn.set_config(assume_finite=True)
            _thread_state.sklearn_configured = True
        try:
            probabilities = model.predict_proba(features)
        except Exception:
            log.exception("predict_proba failed name=%s version=%s rows=%d", model.name, model.version, len(features))
            raise RequestError("the model failed to predict; see the server log", 500, "MODEL_ERROR") from None

        self._count_classes(probabilities)
        return {
            "data": {"names": list(model.classes), "ndarray": probabilities.astype(np.float64, copy=False)},
            "meta": {"tags": {"model_name": model.name, "model_version": model.version}},
        }

    def health_status(self) -> dict[str, Any]:
        """Return the loaded model's identity, or HTTP 503 before it is loaded."""
        model = self._require_model()
        return {"model_name": model.name, "model_version": model.version, "ready": True}

    def _require_model(self) -> LoadedModel:
        if self.model is None:
            raise RequestError("the model is not loaded yet", 503, "MODEL_NOT_READY")
        return self.model

    def _count_classes(self, probabilities: np.ndarray) -> None:
        counts = np.bincount(probabilities.argmax(axis=1), minlength=len(self._class_counters))
        for counter, count in zip(self._class_counters, counts.tolist(), strict=True):
            if count:
                counter.inc(count)

    def _observe(self, status_code: int, seconds: float) -> None:
        counter = self._status_counters.get(status_code)
        if counter is None:
            counter = metrics.REQUESTS.labels(*self._labels, str(status_code))
            self._status_counters[status_code] = counter
        counter.inc()
        if self._duration is not None:
            self._duration.observe(seconds)
