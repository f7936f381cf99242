"""Access to the MLflow tracking server with bounded retries.

MLflow's REST client already retries some HTTP status codes, but a server that is down
makes each call hang through urllib3's own retries for minutes. Steps call
``connect()`` first, which checks the server once with a short timeout and a bounded
backoff, so an unreachable server fails the step in seconds with exit code 75 (which
the WorkflowTemplate retries) instead of leaving a half-finished run.
"""

from __future__ import annotations

import logging
import os
import time
import urllib.error
import urllib.request
from collections.abc import Callable

from mlship.errors import RegistryUnavailableError

log = logging.getLogger(__name__)

DEFAULT_ATTEMPTS = 4
DEFAULT_FIRST_DELAY_SECONDS = 0.5


def tracking_uri() -> str:
    """Return $MLFLOW_TRACKING_URI, which every step and the server require."""
    uri = os.environ.get("MLFLOW_TRACKING_URI", "")
    if not uri:
        raise RegistryUnavailableError(
            "MLFLOW_TRACKING_URI is not set; set it to the MLflow server URL, e.g. http://127.0.0.1:5000"
        )
    return uri


def with_retries[T](
    action: Callable[[], T],
    what: str,
    attempts: int = DEFAULT_ATTEMPTS,
    first_delay: float = DEFAULT_FIRST_DELAY_SECONDS,
    retry_on: tuple[type[BaseException], ...] = (OSError,),
) -> T:
    """Run ``action``, retrying ``retry_on`` errors with exponential backoff.

    After ``attempts`` failures it raises RegistryUnavailableError naming ``what``.
    """
    delay = first_delay
    for attempt in range(1, attempts + 1):
        try:
            return action()
        except retry_on as error:
            if attempt == attempts:
                raise RegistryUnavailableError(
                    f"{what} failed after {attempts} attempts: {error}; check that the MLflow "
                    f"server at {os.environ.get('MLFLOW_TRACKING_URI', '(unset)')} is running and "
                    "reachable, then re-run the step"
                ) from None
            log.warning("%s failed (attempt %d of %d, retrying in %.1f s): %s", what, attempt, attempts, delay, error)
            time.sleep(delay)
            delay *= 2
    raise AssertionError("unreachable")


def check_server(uri: str | None = None, attempts: int | None = None) -> str:
    """Check that the MLflow server returns 200 on /health, with bounded retries; return its URI.

    File-based URIs (a local folder or ``sqlite:``) have no server to check.
    """
    chosen = uri or tracking_uri()
    if not chosen.startswith(("http://", "https://")):
        return chosen

    def probe() -> None:
        with urllib.request.urlopen(f"{chosen.rstrip('/')}/health", timeout=5) as response:  # noqa: S310
            if response.status != 200:
                raise OSError(f"/health returned HTTP {response.status}")

    retries = attempts or int(os.environ.get("MLSHIP_REGISTRY_ATTEMPTS", DEFAULT_ATTEMPTS))
    with_retries(
        probe, f"connecting to MLflow at {chosen}", attempts=retries, retry_on=(OSError, urllib.error.URLError)
    )
    # Keep MLflow's own HTTP retries short once the server is known to be up, so a server
    # that dies mid-step fails the step within seconds rather than minutes.
    os.environ.setdefault("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "2")
    os.environ.setdefault("MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR", "1")
    os.environ.setdefault("MLFLOW_HTTP_REQUEST_TIMEOUT", "30")
    return chosen
