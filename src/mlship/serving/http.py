"""Flask hooks that seldon-core 1.19 registers on its REST app through ``model_error_handler``.

seldon-core registers the blueprint that a model class exposes as ``model_error_handler``
on the app that serves port 9000. Its app-wide hooks close gaps of the wrapper:

* seldon-core's catch-all error handler turns an HTTP error (404, 405, 413, 415) into
  HTTP 500, so these get their own status code here;
* a prediction request must be JSON with ``Content-Type: application/json`` and at most
  ``max_body_bytes`` long;
* the hook returns the response to a valid prediction request itself (see
  ``check_prediction_request``), decoding the request and encoding the response with
  orjson (see ``decode_request`` and ``encode_prediction``);
* request counts and durations are recorded for every prediction response, including the
  rejected ones.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable
from typing import Any

import numpy as np
import orjson
from flask import Blueprint, Flask, current_app, g, jsonify, request
from flask.wrappers import Response
from werkzeug.exceptions import HTTPException

from mlship.serving.errors import RequestError

log = logging.getLogger(__name__)

# The endpoint name of seldon-core's prediction view (``/api/v1.0/predictions``,
# ``/api/v0.1/predictions`` and ``/predict``).
PREDICT_ENDPOINT = "Predict"
PREDICT_PATHS = frozenset({"/api/v1.0/predictions", "/api/v0.1/predictions", "/predict"})
JSON_MEDIA_TYPE = "application/json"
LOG_INTERVAL_SECONDS = 10.0
# Sorted keys and a trailing newline, as Flask's jsonify() writes them. numpy arrays and
# scalars are encoded without converting them to Python lists first.
ORJSON_OPTIONS = orjson.OPT_SERIALIZE_NUMPY | orjson.OPT_SORT_KEYS | orjson.OPT_APPEND_NEWLINE

HTTP_REASONS = {
    400: "INVALID_JSON",
    404: "NOT_FOUND",
    405: "METHOD_NOT_ALLOWED",
    413: "PAYLOAD_TOO_LARGE",
    415: "UNSUPPORTED_MEDIA_TYPE",
}


class RejectionLog:
    """Log rejected requests at most once per interval, with the count since the last line."""

    def __init__(self, interval_seconds: float = LOG_INTERVAL_SECONDS) -> None:
        self.interval_seconds = interval_seconds
        self.suppressed = 0
        self.last_logged = float("-inf")

    def record(self, error: RequestError) -> None:
        now = time.monotonic()
        if now - self.last_logged < self.interval_seconds:
            self.suppressed += 1
            return
        log.warning(
            "rejected request status=%d reason=%s info=%s (%d more rejected since the last line)",
            error.status_code,
            error.reason,
            error.message,
            self.suppressed,
        )
        self.suppressed = 0
        self.last_logged = now


def build_blueprint(
    max_body_bytes: int,
    predict: Callable[[Any], dict[str, Any]],
    observe: Callable[[int, float], None],
) -> Blueprint:
    """Build the blueprint.

    ``predict(payload)`` returns the response body of a checked JSON request, which may
    contain numpy arrays, and ``observe(status_code, seconds)`` runs after every
    prediction response.
    """
    blueprint = Blueprint("mlship", __name__)
    rejections = RejectionLog()

    @blueprint.record_once
    def limit_body_size(state: Any) -> None:
        app: Flask = state.app
        # werkzeug raises RequestEntityTooLarge while reading a longer body, which also
        # covers chunked requests without a Content-Length header.
        app.config["MAX_CONTENT_LENGTH"] = max_body_bytes

    @blueprint.before_app_request
    def check_prediction_request() -> Response | None:
        if request.endpoint != PREDICT_ENDPOINT:
            # seldon-core's app serves static files at "/<path>" for GET, so a GET of the
            # prediction path would otherwise return 404.
            if request.path.rstrip("/") in PREDICT_PATHS and request.method != "POST":
                raise RequestError("send predictions with POST", status_code=405, reason="METHOD_NOT_ALLOWED")
            return None
        g.mlship_started = time.perf_counter()
        if request.method != "POST":
            raise RequestError("send predictions with POST", status_code=405, reason="METHOD_NOT_ALLOWED")
        if request.content_length is not None and request.content_length > max_body_bytes:
            raise RequestError(
                f"request body has {request.content_length} bytes, more than the limit of {max_body_bytes}",
                status_code=413,
                reason="PAYLOAD_TOO_LARGE",
            )
        if request.mimetype != JSON_MEDIA_TYPE:
            raise RequestError(
                f"Content-Type must be {JSON_MEDIA_TYPE}, got {request.content_type or 'none'!r}",
                status_code=415,
                reason="UNSUPPORTED_MEDIA_TYPE",
            )
        payload = decode_request(request.get_data(cache=False))

        # Returning the response here skips seldon-core's prediction view. That view calls
        # the same predict_raw(), but it also updates SeldonMetrics through a
        # multiprocessing manager, with six round trips to another process per request.
        # Those took more than half of the request time in a profile (cProfile with
        # Flask's test client, seldon-core 1.19).
        return encode_prediction(predict(payload))

    @blueprint.after_app_request
    def record_prediction(response: Response) -> Response:
        started = g.pop("mlship_started", None)
        if started is not None:
            observe(response.status_code, time.perf_counter() - started)
        return response

    def error_response(error: RequestError) -> tuple[Response, int]:
        if error.status_code >= 500:
            log.error("request failed status=%d reason=%s info=%s", error.status_code, error.reason, error.message)
        else:
            rejections.record(error)
        response: Response = jsonify(error.to_dict())
        return response, int(error.status_code)

    blueprint.app_errorhandler(RequestError)(error_response)

    @blueprint.app_errorhandler(HTTPException)
    def handle_http_exception(error: HTTPException) -> tuple[Response, int]:
        code = error.code or 500
        description = error.description or error.name
        if code == 413:
            description = f"request body is larger than the limit of {max_body_bytes} bytes"
        reason = HTTP_REASONS.get(code, error.name.upper().replace(" ", "_"))
        return error_response(RequestError(description, status_code=code, reason=reason))

    return blueprint


def encode_prediction(body: dict[str, Any]) -> Response:
    """Encode a prediction response body as JSON with orjson.

    The standard ``json`` encoder that ``jsonify()`` uses took about 40% of the time of
    a 1,000-row request (cProfile with Flask's test client, seldon-core 1.19). The body
    decodes to the same values as ``jsonify()``'s, but the bytes differ: orjson writes
    non-ASCII characters as UTF-8 instead of ``\\u`` escapes, and writes some floats in
    another notation (``1e-8`` for ``1e-08``, ``0.00001`` for ``1e-05``). Error
    responses and seldon-core's own views still use ``jsonify()``.
    """
    encoded = orjson.dumps(body, default=_encode_other, option=ORJSON_OPTIONS)
    response: Response = current_app.response_class(encoded, mimetype=JSON_MEDIA_TYPE)
    return response


def _encode_other(value: Any) -> Any:
    # orjson encodes only C-contiguous arrays of the usual dtypes itself.
    if isinstance(value, np.ndarray):
        return value.tolist()
    raise TypeError(f"cannot encode {type(value).__name__} as JSON")


def decode_request(body: bytes) -> Any:
    """Decode a JSON request body with orjson, or with the standard decoder where orjson fails.

    orjson decodes a 1,000-row body in about a third of the standard decoder's time. It
    rejects what the standard decoder accepts and the validator has a message for
    (``NaN``, ``Infinity``, ``1e999``), and bodies in UTF-16 or UTF-32, so those take the
    slower path. A body that neither decodes is an HTTP 400 with the standard decoder's
    message, which names the line and column.
    """
    try:
        return orjson.loads(body)
    except orjson.JSONDecodeError:
        pass
    if not body:
        raise RequestError("request body is not valid JSON: the body is empty", reason="INVALID_JSON")
    try:
        return json.loads(body)
    except ValueError as error:  # JSONDecodeError and UnicodeDecodeError
        raise RequestError(f"request body is not valid JSON: {error}", reason="INVALID_JSON") from None
    except RecursionError:
        # orjson stops at 1,024 levels and the standard decoder at Python's recursion limit.
        raise RequestError(
            "request body is nested too deeply: send rows as a list of lists of numbers", reason="INVALID_JSON"
        ) from None
