"""The audit trail of registrations, promotions and rollbacks, and ``mlship audit``.

Each record goes to two places: a tag ``mlship.audit.<record id>`` on the model version
that the alias moved to, and the model's audit log in MLflow. The log lives in the
experiment ``mlship-audit``, in the run tagged ``mlship.audit.model=<model>``, as one
artifact file ``records/<record id>.jsonl`` per record, each holding one JSON line.

Writers never rewrite a file, so two writers appending at once cannot lose each other's
records: each uploads its own file. Two writers that both find no audit run may each
create one, so the reader merges the records of every run tagged for the model, and
writers pick the oldest such run. Records are ordered by their UTC time, then their
id, which starts with the same time, so the merged log reads the same for every reader.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import tempfile
import uuid
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import mlflow
from mlflow.exceptions import MlflowException

from mlship.errors import InvalidInputError
from mlship.failpoints import failpoint
from mlship.registry_ops import alias_version, registry_errors, require_registered_model
from mlship.tracking import check_server

log = logging.getLogger(__name__)

AUDIT_EXPERIMENT = "mlship-audit"
TAG_AUDIT_MODEL = "mlship.audit.model"
RECORDS_FOLDER = "records"
VERSION_TAG_PREFIX = "mlship.audit."
ACTIONS = ("register", "promote", "rollback")
# MLflow 3.17 accepts model version tag values of up to 100,000 characters
# (MAX_MODEL_REGISTRY_TAG_VALUE_LENGTH). The tag keeps the first 1000 characters of the
# reason so tags stay readable, and the log keeps the whole reason.
MAX_TAG_REASON_CHARS = 1000


@dataclass(frozen=True)
class AuditRecord:
    """One registration, promotion or rollback: which alias moved to which version, and who did it."""

    id: str
    time: str  # ISO 8601, UTC
    action: str
    actor: str
    model: str
    version: str
    from_alias: str
    to_alias: str
    previous_version: str  # the version that held to_alias before, "" when none did
    run_id: str
    git_commit: str
    reason: str = ""
    approved_by: str = ""

    def to_json(self) -> str:
        return json.dumps(dataclasses.asdict(self), sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> AuditRecord:
        raw = json.loads(text)
        known = {field.name for field in dataclasses.fields(cls)}
        return cls(**{key: str(value) for key, value in raw.items() if key in known})


def new_record(
    action: str,
    actor: str,
    model: str,
    version: str,
    from_alias: str,
    to_alias: str,
    previous_version: str | None,
    run_id: str,
    git_commit: str,
    reason: str = "",
    approved_by: str = "",
) -> AuditRecord:
    """Build a record stamped with the current UTC time and a unique id."""
    if action not in ACTIONS:
        raise ValueError(f"unknown audit action {action!r}")
    now = datetime.now(UTC)
    return AuditRecord(
        id=f"{now.strftime('%Y%m%dT%H%M%S%fZ')}-{uuid.uuid4().hex[:12]}",
        time=now.isoformat(timespec="microseconds").replace("+00:00", "Z"),
        action=action,
        actor=actor,
        model=model,
        version=str(version),
        from_alias=from_alias,
        to_alias=to_alias,
        previous_version=str(previous_version or ""),
        run_id=run_id,
        git_commit=git_commit,
        reason=reason,
        approved_by=approved_by,
    )


def _audit_experiment_id(client: mlflow.MlflowClient) -> str:
    experiment = client.get_experiment_by_name(AUDIT_EXPERIMENT)
    if experiment is None:
        try:
            return str(client.create_experiment(AUDIT_EXPERIMENT))
        except MlflowException as error:
            # Another writer created it first.
            if error.error_code != "RESOURCE_ALREADY_EXISTS":
                raise
            experiment = client.get_experiment_by_name(AUDIT_EXPERIMENT)
            assert experiment is not None
    if experiment.lifecycle_stage != "active":
        raise InvalidInputError(
            f"the MLflow experiment {AUDIT_EXPERIMENT} is deleted; restore it (mlflow experiments restore "
            f"--experiment-id {experiment.experiment_id}) so the audit log stays in one place"
        )
    return str(experiment.experiment_id)


def audit_run_ids(client: mlflow.MlflowClient, model: str) -> list[str]:
    """Return the ids of the model's audit runs, oldest first."""
    experiment = client.get_experiment_by_name(AUDIT_EXPERIMENT)
    if experiment is None:
        return []
    runs = client.search_runs(
        [experiment.experiment_id],
        filter_string=f"tags.`{TAG_AUDIT_MODEL}` = '{model}'",
        order_by=["attributes.start_time ASC"],
        max_results=100,
    )
    return [run.info.run_id for run in sorted(runs, key=lambda run: (run.info.start_time, run.info.run_id))]


def _writer_run_id(client: mlflow.MlflowClient, model: str) -> str:
    existing = audit_run_ids(client, model)
    if existing:
        return existing[0]
    experiment_id = _audit_experiment_id(client)
    created = client.create_run(experiment_id, tags={TAG_AUDIT_MODEL: model}, run_name=f"audit-{model}")
    log.info("created audit run %s for model %s", created.info.run_id, model)
    return str(created.info.run_id)


def append_record(client: mlflow.MlflowClient, record: AuditRecord) -> None:
    """Upload ``record`` to the model's audit log, then tag the model version with it."""
    with registry_errors(f"appending audit record {record.id}"):
        run_id = _writer_run_id(client, record.model)
        client.log_text(run_id, record.to_json() + "\n", f"{RECORDS_FOLDER}/{record.id}.jsonl")
        failpoint("after-audit-log")
        tag_value = dataclasses.replace(record, reason=record.reason[:MAX_TAG_REASON_CHARS]).to_json()
        client.set_model_version_tag(record.model, record.version, f"{VERSION_TAG_PREFIX}{record.id}", tag_value)
    log.info(
        "audit %s: %s %s version %s %s -> %s by %s",
        record.id,
        record.action,
        record.model,
        record.version,
        record.from_alias or "-",
        record.to_alias,
        record.actor,
    )


def read_records(client: mlflow.MlflowClient, model: str) -> list[AuditRecord]:
    """Return every record of ``model``'s audit log, merged from all its audit runs and sorted by time."""
    records: dict[str, AuditRecord] = {}
    with registry_errors(f"reading the audit log of {model}"):
        for run_id in audit_run_ids(client, model):
            if not client.list_artifacts(run_id, RECORDS_FOLDER):
                continue
            with tempfile.TemporaryDirectory(prefix="mlship-audit-") as folder:
                local = mlflow.artifacts.download_artifacts(
                    run_id=run_id,
                    artifact_path=RECORDS_FOLDER,
                    dst_path=folder,
                    tracking_uri=mlflow.get_tracking_uri(),
                )
                for path in sorted(Path(local).glob("*.jsonl")):
                    for line in path.read_text(encoding="utf-8").splitlines():
                        if line.strip():
                            record = AuditRecord.from_json(line)
                            records[record.id] = record
    return sort_records(records.values())


def move_alias(
    client: mlflow.MlflowClient,
    model: str,
    alias: str,
    version: str,
    build_record: Callable[[str], AuditRecord],
) -> bool:
    """Point ``alias`` at ``version`` and append the record that ``build_record(previous)`` returns.

    Safe to repeat after a crash: when the alias already points at ``version``, the
    record is appended only if the log's newest record for the alias names another
    version (the crash came between the move and the record). Returns whether the
    alias moved.
    """
    with registry_errors(f"moving {model}@{alias} to version {version}"):
        holder = alias_version(client, model, alias)
        if holder is None or str(holder.version) != str(version):
            failpoint("before-set-alias")
            client.set_registered_model_alias(model, alias, str(version))
            log.info(
                "alias %s@%s now points at version %s (was %s)",
                model,
                alias,
                version,
                holder.version if holder else "unset",
            )
            failpoint("after-set-alias")
            append_record(client, build_record(str(holder.version) if holder else ""))
            return True

    latest = latest_for_alias(read_records(client, model), alias)
    if latest is not None and latest.version == str(version):
        log.info("alias %s@%s already points at version %s and the audit log records it", model, alias, version)
        return False
    log.warning(
        "alias %s@%s already points at version %s but the audit log does not record it; recording it now",
        model,
        alias,
        version,
    )
    append_record(client, build_record(latest.version if latest else ""))
    return False


def sort_records(records: Iterable[AuditRecord]) -> list[AuditRecord]:
    return sorted(records, key=lambda record: (record.time, record.id))


def latest_for_alias(records: Sequence[AuditRecord], alias: str) -> AuditRecord | None:
    """Return the newest record that moved ``alias``, or None."""
    matching = [record for record in records if record.to_alias == alias]
    return matching[-1] if matching else None


def alias_holders(records: Sequence[AuditRecord], alias: str) -> list[str]:
    """Return the stack of versions that ``alias`` was moved to, oldest first.

    Registrations and promotions push a version. A rollback pops versions until the
    one it restored is on top, so a second rollback goes one step further back
    instead of returning to the version the first one left.
    """
    stack: list[str] = []
    for record in sort_records(records):
        if record.to_alias != alias:
            continue
        if record.action == "rollback":
            while stack and stack[-1] != record.version:
                stack.pop()
            if not stack:
                stack.append(record.version)
        elif not stack or stack[-1] != record.version:
            stack.append(record.version)
    return stack


COLUMNS = (
    ("TIME (UTC)", "time"),
    ("ACTION", "action"),
    ("VERSION", "version"),
    ("FROM", "from_alias"),
    ("TO", "to_alias"),
    ("PREVIOUS", "previous_version"),
    ("ACTOR", "actor"),
    ("APPROVED BY", "approved_by"),
    ("RUN", "run_id"),
    ("COMMIT", "git_commit"),
    ("REASON", "reason"),
)


def format_table(records: Sequence[AuditRecord]) -> str:
    """Lay the records out as a plain-text table, one row per record, oldest first."""
    rows = [[header for header, _ in COLUMNS]]
    for record in records:
        row = []
        for _, attribute in COLUMNS:
            value = getattr(record, attribute) or "-"
            if attribute in ("run_id", "git_commit") and value != "-":
                value = value[:12]
            if attribute == "time":
                value = value.replace("T", " ")[:19]
            row.append(value.replace("\n", " "))
        rows.append(row)
    widths = [max(len(row[column]) for row in rows) for column in range(len(COLUMNS))]
    lines = ["  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip() for row in rows]
    return "\n".join(lines)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--model", required=True, help="registered model name")
    parser.add_argument("--json", action="store_true", help="print the records as JSON Lines instead of a table")


def run(args: argparse.Namespace) -> int:
    check_server()
    client = mlflow.MlflowClient()
    with registry_errors(f"reading model {args.model}"):
        require_registered_model(client, args.model)
    records = read_records(client, args.model)
    if args.json:
        for record in records:
            print(record.to_json())
    elif records:
        print(format_table(records))
    else:
        print(f"no audit records for model {args.model}")
    return 0
