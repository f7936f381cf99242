"""Load a scikit-learn model from the MLflow registry or a local MLflow model folder.

The model server and the ``benchmark`` step both call :func:`load_model`, so the step
measures the model the way the server loads it. Accepted URIs:

* ``models:/<name>@<alias>``: the version that the alias points to when it is resolved;
* ``models:/<name>/<version>``: one registered version;
* a path (or ``file://`` URI) of a folder written by ``mlflow.sklearn.save_model``.

An alias is resolved to a version once, and that version is downloaded, so a model
loaded while the alias moves is still one consistent version.
"""

from __future__ import annotations

import contextlib
import logging
import os
import re
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from mlship.errors import InvalidInputError, NotFoundError, RegistryUnavailableError

log = logging.getLogger(__name__)

DEFAULT_ATTEMPTS = 4
DEFAULT_FIRST_DELAY_SECONDS = 0.5  # doubles after each failed attempt: 0.5 + 1 + 2 s
# MLflow 3.17's client retries a failed HTTP request 7 times with backoff, about 4 minutes
# in all, and waits up to 120 s for a response. The loader sets these two variables while
# it runs, unless the operator set them, so that its own retries bound the total time.
MLFLOW_CLIENT_SETTINGS = {"MLFLOW_HTTP_REQUEST_MAX_RETRIES": "0", "MLFLOW_HTTP_REQUEST_TIMEOUT": "10"}

_REGISTRY_URI = re.compile(r"^models:/(?P<name>[^/@]+)(?:@(?P<alias>[^/]+)|/(?P<version>\d+))/?$")
# MLflow error codes that mean the model, version or alias does not exist. The MLflow 3.17
# server returns RESOURCE_DOES_NOT_EXIST for a missing model or version. An
# INVALID_PARAMETER_VALUE error whose message contains "not found" counts too, for a
# missing alias (see _is_not_found).
_NOT_FOUND_CODES = {"RESOURCE_DOES_NOT_EXIST", "NOT_FOUND"}


@dataclass(frozen=True)
class LoadedModel:
    """A fitted classifier with the registry identity and input schema it was loaded with."""

    estimator: Any
    name: str | None  # None for a model loaded from a local path
    version: str | None
    feature_names: tuple[str, ...]  # model input order, from the MLflow signature
    classes: tuple[str, ...]
    uri: str

    def predict_proba(self, x: np.ndarray) -> np.ndarray:
        """Return class probabilities, one row per row of ``x``, columns in ``classes`` order.

        The columns of ``x`` are the features in ``feature_names`` order.
        """
        return np.asarray(self.estimator.predict_proba(x))


@dataclass(frozen=True)
class _Source:
    name: str | None
    version: str | None
    alias: str | None
    download_uri: str | None  # None for a local folder
    local_path: Path | None


def load_model(
    uri: str,
    *,
    attempts: int = DEFAULT_ATTEMPTS,
    first_delay_seconds: float = DEFAULT_FIRST_DELAY_SECONDS,
) -> LoadedModel:
    """Resolve ``uri``, load its estimator and read its feature names and classes.

    Raises ``NotFoundError`` for a model, version, alias or path that does not exist,
    ``RegistryUnavailableError`` when MLflow cannot be reached in ``attempts`` tries, and
    ``InvalidInputError`` for a URI of another form or a model without a usable signature.
    """
    if attempts < 1:
        raise ValueError(f"attempts must be at least 1, got {attempts}")
    source = _parse_uri(uri)
    log.info("loading model uri=%s name=%s version=%s alias=%s", uri, source.name, source.version, source.alias)
    started = time.monotonic()

    with _mlflow_client_settings():
        if source.alias is not None:
            version = _with_retries(
                lambda: _resolve_alias(source.name, source.alias), uri, attempts, first_delay_seconds
            )
            source = _Source(source.name, version, source.alias, f"models:/{source.name}/{version}", None)
        if source.local_path is not None:
            loaded = _load_folder(source.local_path, source, uri)
        else:
            loaded = _with_retries(lambda: _download_and_load(source, uri), uri, attempts, first_delay_seconds)

    log.info(
        "loaded model uri=%s name=%s version=%s alias=%s features=%d classes=%s seconds=%.2f",
        uri,
        loaded.name,
        loaded.version,
        source.alias,
        len(loaded.feature_names),
        ",".join(loaded.classes),
        time.monotonic() - started,
    )
    return loaded


def _parse_uri(uri: str) -> _Source:
    if uri.startswith("models:"):
        match = _REGISTRY_URI.match(uri)
        if match is None:
            raise InvalidInputError(
                f"invalid model URI {uri!r}: expected models:/<name>@<alias>, models:/<name>/<version> or a path"
            )
        name, alias, version = match.group("name"), match.group("alias"), match.group("version")
        download_uri = None if alias else f"models:/{name}/{version}"
        return _Source(name, version, alias, download_uri, None)

    path = Path(uri.removeprefix("file://"))
    if "://" in uri and not uri.startswith("file://"):
        raise InvalidInputError(f"invalid model URI {uri!r}: only models:/ URIs and local paths are supported")
    if not (path / "MLmodel").is_file():
        raise NotFoundError(
            f"model folder {str(path)!r} not found: it must contain the MLmodel file that mlflow writes"
        )
    return _Source(None, None, None, None, path)


@contextlib.contextmanager
def _mlflow_client_settings() -> Iterator[None]:
    added = [key for key in MLFLOW_CLIENT_SETTINGS if key not in os.environ]
    for key in added:
        os.environ[key] = MLFLOW_CLIENT_SETTINGS[key]
    try:
        yield
    finally:
        for key in added:
            os.environ.pop(key, None)


def _tracking_uri() -> str:
    import mlflow

    return str(mlflow.get_tracking_uri())


def _with_retries[T](action: Callable[[], T], uri: str, attempts: int, first_delay_seconds: float) -> T:
    """Run ``action``, retrying only when the registry cannot be reached."""
    delay = first_delay_seconds
    for attempt in range(1, attempts + 1):
        try:
            return action()
        except Exception as error:
            if not _is_unavailable(error):
                raise
            if attempt == attempts:
                raise RegistryUnavailableError(
                    f"MLflow at {_tracking_uri()} is unreachable after {attempts} attempts while loading {uri}: "
                    f"{_first_line(error)}; check MLFLOW_TRACKING_URI and that the registry is running"
                ) from error
            log.warning(
                "registry unreachable uri=%s tracking_uri=%s attempt=%d/%d retry_in=%.1fs error=%s",
                uri,
                _tracking_uri(),
                attempt,
                attempts,
                delay,
                _first_line(error),
            )
            time.sleep(delay)
            delay *= 2
    raise AssertionError("unreachable")  # the loop returns or raises


def _is_unavailable(error: BaseException) -> bool:
    """Tell whether ``error`` means the registry was unreachable or returned HTTP 5xx."""
    import requests
    from mlflow.exceptions import MlflowException, RestException

    seen: BaseException | None = error
    while seen is not None:
        if isinstance(seen, (requests.exceptions.ConnectionError, requests.exceptions.Timeout, ConnectionError)):
            return True
        seen = seen.__cause__ or seen.__context__
    if isinstance(error, RestException):
        return False  # the server returned an MLflow error, so it is reachable
    if isinstance(error, MlflowException):
        message = str(error)
        # MLflow's REST client wraps connection failures and exhausted 5xx retries in a
        # plain MlflowException whose message starts this way.
        return message.startswith("API request to") and (
            "failed with exception" in message
            or "failed with timeout" in message
            or re.search(r"error code 5\d\d", message) is not None
        )
    return False


def _first_line(error: BaseException) -> str:
    text = str(error).strip()
    return text.splitlines()[0] if text else type(error).__name__


def _is_not_found(error: BaseException) -> bool:
    from mlflow.exceptions import MlflowException

    if not isinstance(error, MlflowException):
        return False
    if error.error_code in _NOT_FOUND_CODES:
        return True
    return error.error_code == "INVALID_PARAMETER_VALUE" and "not found" in str(error).lower()


def _resolve_alias(name: str | None, alias: str | None) -> str:
    from mlflow import MlflowClient
    from mlflow.exceptions import MlflowException

    try:
        version = MlflowClient().get_model_version_by_alias(str(name), str(alias))
    except MlflowException as error:
        if _is_not_found(error):
            raise NotFoundError(
                f"alias {alias!r} of model {name!r} not found in MLflow at {_tracking_uri()}: "
                f"register the model and set the alias first"
            ) from error
        raise
    return str(version.version)


def _download_and_load(source: _Source, uri: str) -> LoadedModel:
    import mlflow
    from mlflow.exceptions import MlflowException

    with tempfile.TemporaryDirectory(prefix="mlship-model-") as folder:
        try:
            local_path = mlflow.artifacts.download_artifacts(artifact_uri=source.download_uri, dst_path=folder)
        except MlflowException as error:
            if _is_not_found(error):
                raise NotFoundError(
                    f"version {source.version!r} of model {source.name!r} not found in MLflow at "
                    f"{_tracking_uri()}: list the versions with `mlship audit --model {source.name}`"
                ) from error
            raise
        return _load_folder(Path(local_path), source, uri)


def _load_folder(path: Path, source: _Source, uri: str) -> LoadedModel:
    import mlflow.sklearn
    from mlflow.models import Model

    metadata = Model.load(str(path / "MLmodel"))
    if "sklearn" not in metadata.flavors:
        raise InvalidInputError(f"model {uri!r} has no sklearn flavor (flavors: {', '.join(metadata.flavors)})")
    estimator = mlflow.sklearn.load_model(str(path))
    if not hasattr(estimator, "predict_proba") or not hasattr(estimator, "classes_"):
        raise InvalidInputError(
            f"model {uri!r} is a {type(estimator).__name__}, not a fitted classifier with predict_proba"
        )

    feature_names = _feature_names(metadata, estimator, uri)
    classes = tuple(str(value) for value in estimator.classes_)
    return LoadedModel(estimator, source.name, source.version, feature_names, classes, uri)


def _feature_names(metadata: Any, estimator: Any, uri: str) -> tuple[str, ...]:
    """Read the input column names from the signature, in model input order."""
    signature = metadata.signature
    names: list[str] = []
    if signature is not None and signature.inputs is not None and signature.inputs.has_input_names():
        names = [str(name) for name in signature.inputs.input_names()]
    if not names:
        raise InvalidInputError(
            f"model {uri!r} has no input signature with column names: log it with "
            f"mlflow.sklearn.log_model(..., signature=infer_signature(features_frame, ...))"
        )
    fitted = getattr(estimator, "feature_names_in_", None)
    if fitted is not None and list(fitted) != names:
        raise InvalidInputError(
            f"model {uri!r}: signature columns {names} differ from the columns it was fitted on {list(fitted)}"
        )
    return tuple(names)
