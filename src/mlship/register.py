"""Register the candidate model and point the environment's alias at it.

Register refuses a run whose validation and benchmark tags are not both ``true``, so a
model that failed a gate is never registered, even when the step is run by hand.
Re-running it for the same run reuses the version it created before instead of adding a
second one, which makes the step safe to retry after a crash. The alias move is
appended to the model's audit trail (see ``mlship.audit``).
"""

from __future__ import annotations

import argparse
import logging

import mlflow
from mlflow.entities.model_registry import ModelVersion
from mlflow.exceptions import MlflowException

from mlship import audit
from mlship.benchmark import TAG_PASSED as TAG_BENCHMARK_PASSED
from mlship.config import load_config
from mlship.errors import GateFailedError, NotFoundError
from mlship.failpoints import failpoint
from mlship.outputs import write_value
from mlship.registry_ops import registry_errors, resolve_actor
from mlship.tracking import check_server
from mlship.train import MODEL_ARTIFACT, TAG_DATA_HASH, TAG_GIT_COMMIT, TAG_WORKFLOW
from mlship.validate_model import TAG_ENVIRONMENT as TAG_VALIDATED_ENVIRONMENT
from mlship.validate_model import TAG_PASSED as TAG_VALIDATION_PASSED

log = logging.getLogger(__name__)


def _version_tags(run: mlflow.entities.Run) -> dict[str, str]:
    """Tags copied onto the model version: provenance and the held-out metrics, as strings."""
    tags = {
        "run_id": run.info.run_id,
        "git_commit": run.data.tags.get(TAG_GIT_COMMIT, "unknown"),
        "data_hash": run.data.tags.get(TAG_DATA_HASH, "unknown"),
        "validated_environment": run.data.tags.get(TAG_VALIDATED_ENVIRONMENT, ""),
    }
    for name, value in run.data.metrics.items():
        if name.startswith("test_"):
            tags[f"metric.{name.removeprefix('test_')}"] = f"{value:.6f}"
    return tags


def versions_of_run(client: mlflow.MlflowClient, name: str, run_id: str) -> list[ModelVersion]:
    """Return the versions of ``name`` created from ``run_id``, oldest first."""
    versions = client.search_model_versions(f"name = '{name}' and run_id = '{run_id}'")
    return sorted(versions, key=lambda version: int(version.version))


def existing_version(client: mlflow.MlflowClient, name: str, run_id: str) -> ModelVersion | None:
    """Return the oldest version of ``name`` created from ``run_id``, if there is one."""
    versions = versions_of_run(client, name, run_id)
    return versions[0] if versions else None


def delete_duplicates(client: mlflow.MlflowClient, name: str, run_id: str) -> None:
    """Delete every version of ``run_id`` but the oldest, unless an alias points at it.

    Duplicates come from two registrations of one run racing, or from a registration
    killed between creating its version and deleting the duplicate.
    """
    for duplicate in versions_of_run(client, name, run_id)[1:]:
        if duplicate.aliases:
            log.warning(
                "version %s of %s duplicates run %s but has alias(es) %s; keeping it",
                duplicate.version,
                name,
                run_id,
                ", ".join(duplicate.aliases),
            )
            continue
        log.warning("run %s was registered twice; deleting duplicate version %s of %s", run_id, duplicate.version, name)
        try:
            client.delete_model_version(name, duplicate.version)
        except MlflowException as error:
            # A concurrent registration deleted it first.
            if error.error_code not in ("RESOURCE_DOES_NOT_EXIST", "NOT_FOUND"):
                raise


def ensure_registered_model(client: mlflow.MlflowClient, name: str) -> None:
    try:
        client.create_registered_model(name, description="Registered by mlship.")
        log.info("created registered model %s", name)
    except MlflowException as error:
        if error.error_code != "RESOURCE_ALREADY_EXISTS":
            raise


def require_passed_gates(run: mlflow.entities.Run) -> None:
    tags = run.data.tags
    failed = [tag for tag in (TAG_VALIDATION_PASSED, TAG_BENCHMARK_PASSED) if tags.get(tag) != "true"]
    if failed:
        found = ", ".join(f"{tag}={tags.get(tag, '(missing)')}" for tag in failed)
        raise GateFailedError(
            f"run {run.info.run_id} has not passed its gates ({found}); run validate-model and "
            "benchmark on it first, a model that failed them is never registered"
        )


def register_run(client: mlflow.MlflowClient, name: str, alias: str, run_id: str, actor: str) -> ModelVersion:
    """Create (or reuse) the version for ``run_id``, point ``alias`` at it and record the move."""
    with registry_errors(f"registering run {run_id} as {name}"):
        try:
            run = client.get_run(run_id)
        except MlflowException as error:
            if error.error_code not in ("RESOURCE_DOES_NOT_EXIST", "NOT_FOUND"):
                raise
            raise NotFoundError(f"run {run_id} not found in MLflow; pass the run id that train wrote") from None
        require_passed_gates(run)

        ensure_registered_model(client, name)
        version = existing_version(client, name, run_id)
        if version is None:
            mlflow.register_model(f"runs:/{run_id}/{MODEL_ARTIFACT}", name, tags=_version_tags(run))
            failpoint("after-create-version")
            log.info("registered %s from run %s", name, run_id)
        else:
            log.info("run %s already registered as %s version %s; reusing it", run_id, name, version.version)
            for key, value in _version_tags(run).items():
                client.set_model_version_tag(name, version.version, key, value)
        # Keep the oldest version when two registrations of one run raced.
        delete_duplicates(client, name, run_id)
        version = existing_version(client, name, run_id)
        assert version is not None

    def build_record(previous: str) -> audit.AuditRecord:
        return audit.new_record(
            "register",
            actor,
            name,
            str(version.version),
            "",
            alias,
            previous,
            run_id=run_id,
            git_commit=run.data.tags.get(TAG_GIT_COMMIT, "unknown"),
            reason=f"workflow {run.data.tags.get(TAG_WORKFLOW, 'unknown')}",
        )

    # Setting an alias moves it atomically from any previous version, so exactly one
    # version has it.
    audit.move_alias(client, name, alias, str(version.version), build_record)
    log.info("alias %s@%s points at version %s (run %s)", name, alias, version.version, run_id)
    return version


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", help="pipeline config file (default: $MLSHIP_CONFIG or /etc/mlship/pipeline.yaml)")
    parser.add_argument("--run-id", required=True, help="MLflow run of the validated candidate")
    parser.add_argument("--version-out", help="write the registered model version here")
    parser.add_argument("--actor", help="who registers, for the audit trail (default: $MLSHIP_ACTOR or $USER)")


def run(args: argparse.Namespace) -> int:
    config = load_config(args.config)
    actor = resolve_actor(args.actor, default="pipeline")
    check_server()
    client = mlflow.MlflowClient()
    version = register_run(client, config.model_name, config.alias, args.run_id, actor)
    write_value(args.version_out, version.version)
    return 0
