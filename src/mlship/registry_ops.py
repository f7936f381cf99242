"""Model registry calls shared by register, promote, rollback and audit.

Every command wraps its registry calls in :func:`registry_errors`, so a server that goes
down mid-command ends it with RegistryUnavailableError (exit code 75, which the
WorkflowTemplates retry) instead of a traceback.
"""

from __future__ import annotations

import contextlib
import getpass
import os
from collections.abc import Iterator

import mlflow
from mlflow.entities.model_registry import ModelVersion
from mlflow.exceptions import MlflowException

from mlship.errors import InvalidInputError, NotFoundError, RegistryUnavailableError

# NOTE: shares the model loader's private check, so both classify MLflow's wrapped
# connection errors the same way.
from mlship.model_loader import _is_unavailable as is_registry_unavailable

NOT_FOUND_CODES = ("RESOURCE_DOES_NOT_EXIST", "NOT_FOUND")


def resolve_actor(explicit: str | None, default: str | None = None) -> str:
    """Return --actor, else $MLSHIP_ACTOR, else $USER or the login name, else ``default``."""
    for candidate in (explicit, os.environ.get("MLSHIP_ACTOR"), os.environ.get("USER")):
        if candidate and candidate.strip():
            return candidate.strip()
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        # A container user without a passwd entry, as in the images (UID 10001).
        if default is not None:
            return default
        raise InvalidInputError("no actor known; pass --actor NAME or set MLSHIP_ACTOR") from None


@contextlib.contextmanager
def registry_errors(what: str) -> Iterator[None]:
    """Turn a failure to reach MLflow during ``what`` into RegistryUnavailableError."""
    try:
        yield
    except RegistryUnavailableError:
        raise
    except Exception as error:
        if not is_registry_unavailable(error):
            raise
        first_line = (str(error).strip().splitlines() or [type(error).__name__])[0]
        raise RegistryUnavailableError(
            f"MLflow at {mlflow.get_tracking_uri()} became unreachable while {what}: {first_line}; "
            "nothing after the last completed call was changed, so re-run the command once the server is back"
        ) from error


def is_not_found(error: MlflowException) -> bool:
    if error.error_code in NOT_FOUND_CODES:
        return True
    return error.error_code == "INVALID_PARAMETER_VALUE" and "not found" in str(error).lower()


def alias_version(client: mlflow.MlflowClient, name: str, alias: str) -> ModelVersion | None:
    """Return the version of ``name`` that ``alias`` points at, or None when the alias is not set."""
    try:
        return client.get_model_version_by_alias(name, alias)
    except MlflowException as error:
        if is_not_found(error):
            return None
        raise


def model_version(client: mlflow.MlflowClient, name: str, version: str) -> ModelVersion:
    try:
        return client.get_model_version(name, version)
    except MlflowException as error:
        if is_not_found(error):
            raise NotFoundError(f"version {version} of model {name} not found in the registry") from None
        raise


def require_registered_model(client: mlflow.MlflowClient, name: str) -> None:
    try:
        client.get_registered_model(name)
    except MlflowException as error:
        if is_not_found(error):
            raise NotFoundError(
                f"registered model {name!r} not found at {mlflow.get_tracking_uri()}; check --model "
                "and MLFLOW_TRACKING_URI"
            ) from None
        raise
