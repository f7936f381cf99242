"""``mlship promote``: move the version that one environment's alias points at to the next.

The version must pass the target environment's gates (its thresholds, latency limits
and current version, see ``mlship.promotion_gates``), and a target that requires
approval (prod by default, ``promotion.requireApproval`` in its values) needs
``--approved-by`` and ``--reason``, which are recorded as version tags. Then the
target's alias moves, the move is appended to the audit trail, and
``serving.model.version`` is pinned in ``values/<target>.yaml``. A failed check changes
nothing, and ``--dry-run`` only prints what would change. Aliases are named after
their environments.

The target's effective pipeline config comes from rendering the chart with
``values/<target>.yaml``; the promotion WorkflowTemplate passes the config file mounted
in its pod with ``--config`` instead, and ``--no-values-file``.
"""

from __future__ import annotations

import argparse
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import mlflow
from mlflow.exceptions import MlflowException

from mlship import audit
from mlship.chart_render import CHART_DIR, VALUES_DIR, render_pipeline_config
from mlship.config import PipelineConfig, load_config
from mlship.errors import GateFailedError, InvalidInputError, NotFoundError
from mlship.registry_ops import alias_version, registry_errors, require_registered_model, resolve_actor
from mlship.tracking import check_server
from mlship.values_file import ValuesChange, effective_values, lookup, plan_version_pin

log = logging.getLogger(__name__)

TAG_APPROVED_BY = "approved-by"
TAG_APPROVAL_REASON = "approval-reason"
TAG_APPROVAL_ENVIRONMENT = "approval-environment"
APPROVAL_BY_DEFAULT = ("prod",)
MAX_REASON_CHARS = 4000


def add_common_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the options that promote and rollback share."""
    parser.add_argument("--model", required=True, help="registered model name")
    parser.add_argument(
        "--values-dir",
        type=Path,
        default=VALUES_DIR,
        help="folder of the per-environment values files (default: %(default)s)",
    )
    parser.add_argument("--chart-dir", type=Path, default=CHART_DIR, help="the mlship chart (default: %(default)s)")
    parser.add_argument("--actor", help="who runs the command, for the audit trail (default: $MLSHIP_ACTOR or $USER)")
    parser.add_argument("--reason", default="", help="why, recorded in the audit trail")
    parser.add_argument("--dry-run", action="store_true", help="check and print the changes without making them")
    parser.add_argument(
        "--no-values-file",
        action="store_true",
        help="move the alias only and leave the values file alone (the in-cluster workflow)",
    )


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_common_arguments(parser)
    parser.add_argument(
        "--from",
        dest="source",
        required=True,
        help="environment whose alias points at the version to promote, e.g. dev",
    )
    parser.add_argument("--to", dest="target", required=True, help="environment to promote to, e.g. staging")
    parser.add_argument(
        "--config", help="the target's pipeline config file (default: render the chart with values/<to>.yaml)"
    )
    parser.add_argument(
        "--data", help="data file to score the version on when its recorded scores do not fit the target's gates"
    )
    parser.add_argument("--approved-by", help="who approved the promotion (required when the target requires approval)")
    parser.add_argument(
        "--require-approval",
        choices=["true", "false"],
        help="override promotion.requireApproval of the target's values",
    )


@dataclass(frozen=True)
class Target:
    """The environment promoted to: its pipeline config, values and approval rule."""

    environment: str
    config: PipelineConfig
    values_file: Path | None  # None with --no-values-file
    require_approval: bool


def check_reason(reason: str) -> str:
    if len(reason) > MAX_REASON_CHARS:
        raise InvalidInputError(f"--reason is {len(reason)} characters long; keep it under {MAX_REASON_CHARS}")
    return reason.strip()


def load_target(args: argparse.Namespace) -> Target:
    values_file = Path(args.values_dir) / f"{args.target}.yaml"
    chart_values = Path(args.chart_dir) / "values.yaml"
    values: dict[str, Any] | None = None
    if not args.no_values_file or args.config is None:
        if not values_file.is_file():
            raise InvalidInputError(
                f"values file {values_file} not found; environments are the files in "
                f"{args.values_dir}, or pass --config and --no-values-file"
            )
        values = effective_values([path for path in (chart_values, values_file) if path.is_file()])

    if args.config:
        config = load_config(args.config)
    else:
        config = render_pipeline_config([values_file], chart_dir=Path(args.chart_dir))
    if config.environment != args.target:
        raise InvalidInputError(
            f"the pipeline config is for environment {config.environment!r}, not the "
            f"promotion target {args.target!r}; pass the target's config"
        )
    named = lookup(values or {}, "model.name")
    if named is not None and named != args.model:
        raise InvalidInputError(f"{values_file} is for model {named!r}, not {args.model!r}; check --model")
    if config.model_name != args.model:
        raise InvalidInputError(f"{args.target} serves model {config.model_name!r}, not {args.model!r}; check --model")

    if args.require_approval is not None:
        require_approval = args.require_approval == "true"
    else:
        configured = lookup(values or {}, "promotion.requireApproval")
        require_approval = bool(configured) if configured is not None else args.target in APPROVAL_BY_DEFAULT
    return Target(
        environment=args.target,
        config=config,
        values_file=None if args.no_values_file else values_file,
        require_approval=require_approval,
    )


def check_approval(target: Target, approved_by: str | None, reason: str) -> str:
    """Return the approver, or raise when the target requires an approval that is missing."""
    approver = (approved_by or "").strip()
    if not target.require_approval:
        return approver
    missing = [flag for flag, value in (("--approved-by", approver), ("--reason", reason)) if not value]
    if missing:
        raise InvalidInputError(
            f"promotion to {target.environment} requires an approval; pass {' and '.join(missing)} "
            f"(promotion.requireApproval in values/{target.environment}.yaml turns this off)"
        )
    return approver


def print_values_change(change: ValuesChange | None, dry_run: bool) -> None:
    """Print the diff of ``change``, or that the file already pins the version."""
    if change is None:
        return
    if change.old == change.new:
        print(f"{change.path} already pins this version")
        return
    print(change.diff, end="")
    if dry_run:
        print(f"dry run: {change.path} not written")


def run(args: argparse.Namespace) -> int:
    actor = resolve_actor(args.actor)
    reason = check_reason(args.reason)
    if args.source == args.target:
        raise InvalidInputError(f"--from and --to are both {args.source!r}; promote between two environments")
    target = load_target(args)
    approver = check_approval(target, args.approved_by, reason)

    # Imported here because the gates need the training stack (scikit-learn, matplotlib through
    # validate_model), which rollback and audit, importing this module, do not.
    from mlship.promotion_gates import check_gates, describe_scores

    check_server()
    client = mlflow.MlflowClient()
    with registry_errors(f"reading {args.model}@{args.source}"):
        require_registered_model(client, args.model)
        candidate = alias_version(client, args.model, args.source)
        if candidate is None:
            raise NotFoundError(
                f"no version of {args.model} has the alias {args.source!r}; "
                f"register or promote a version to {args.source} first"
            )
        run_id = str(candidate.run_id or "")
        try:
            source_run = client.get_run(run_id)
        except MlflowException:
            raise NotFoundError(
                f"run {candidate.run_id} of version {candidate.version} not found; its gates cannot be checked"
            ) from None
        current = alias_version(client, args.model, target.environment)
        result = check_gates(candidate, source_run, current, target.config, args.data)

    version = str(candidate.version)
    print(
        f"{args.model} version {version} ({args.source}) against {target.environment}'s gates, from "
        f"{result.evidence}: {describe_scores(result.scores)}"
    )
    if not result.passed:
        raise GateFailedError(
            f"version {version} cannot be promoted to {target.environment}: " + "; ".join(result.failures)
        )

    change = plan_version_pin(target.values_file, version) if target.values_file is not None else None
    now = current.version if current else "unset"
    if args.dry_run:
        print(f"dry run: would point {args.model}@{target.environment} at version {version} (now {now})")
        print_values_change(change, dry_run=True)
        return 0

    with registry_errors(f"tagging version {version} of {args.model}"):
        tags = dict(result.tags)
        if target.require_approval:
            tags.update(
                {TAG_APPROVED_BY: approver, TAG_APPROVAL_REASON: reason, TAG_APPROVAL_ENVIRONMENT: target.environment}
            )
        for key, value in tags.items():
            client.set_model_version_tag(args.model, version, key, value)

    def build_record(previous: str) -> audit.AuditRecord:
        return audit.new_record(
            "promote",
            actor,
            args.model,
            version,
            args.source,
            target.environment,
            previous,
            run_id=run_id,
            git_commit=candidate.tags.get("git_commit", "unknown"),
            reason=reason,
            approved_by=approver,
        )

    audit.move_alias(client, args.model, target.environment, version, build_record)
    print(f"{args.model}@{target.environment} points at version {version} (was {now})")
    print_values_change(change, dry_run=False)
    if change is not None:
        change.apply()
    return 0
