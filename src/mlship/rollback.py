"""``mlship rollback``: move an environment's alias back to the version that held it before.

The previous holder comes from the audit log (see ``audit.alias_holders``): each
rollback steps one version further back. The command pins that version in
``values/<env>.yaml``, unless that file serves the alias itself (dev), and records the
reason. When the registry and the log disagree
about the current holder, for example after the alias was set by hand, the command
stops unless ``--to-version`` names the version to go back to.
"""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

import mlflow

from mlship import audit
from mlship.errors import InvalidInputError, NotFoundError
from mlship.promote import add_common_arguments, check_reason
from mlship.registry_ops import alias_version, model_version, registry_errors, require_registered_model, resolve_actor
from mlship.tracking import check_server
from mlship.values_file import ValuesChange, environment_follows_alias, plan_version_pin

log = logging.getLogger(__name__)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_common_arguments(parser)
    parser.add_argument("--env", required=True, help="environment whose alias moves back, e.g. prod")
    parser.add_argument(
        "--to-version",
        help="go back to this version instead of the previous holder; it must have held the alias before",
    )


def choose_version(holders: list[str], current: str | None, requested: str | None, alias: str) -> str:
    """Return the version to roll ``alias`` back to, given the log's holders and the registry's current one."""
    if requested is not None:
        if requested not in holders:
            raise InvalidInputError(
                f"version {requested} never held the alias {alias!r} according to the audit "
                f"log (holders: {', '.join(holders) or 'none'}); pick one of those"
            )
        if requested == current:
            raise InvalidInputError(f"version {requested} already has the alias {alias!r}")
        return requested
    if current is None:
        raise NotFoundError(f"no version has the alias {alias!r}; there is nothing to roll back")
    if holders and holders[-1] == current:
        if len(holders) < 2:
            raise InvalidInputError(
                f"version {current} is the first version that held {alias!r}; there is no earlier one to roll back to"
            )
        return holders[-2]
    if len(holders) >= 2 and holders[-2] == current:
        # A rollback moved the alias and stopped before recording it; finish that one.
        return current
    raise InvalidInputError(
        f"the alias {alias!r} points at version {current}, but the audit log's last holder is "
        f"{holders[-1] if holders else 'none'}, so the previous version is not known; pass --to-version"
    )


def run(args: argparse.Namespace) -> int:
    actor = resolve_actor(args.actor)
    reason = check_reason(args.reason)
    alias = args.env
    values_file = Path(args.values_dir) / f"{args.env}.yaml"
    if not args.no_values_file and not values_file.is_file():
        raise InvalidInputError(f"values file {values_file} not found; pass --values-dir or --no-values-file")

    check_server()
    client = mlflow.MlflowClient()
    with registry_errors(f"reading {args.model}@{alias}"):
        require_registered_model(client, args.model)
        holder = alias_version(client, args.model, alias)
    records = audit.read_records(client, args.model)
    current = str(holder.version) if holder else None
    version = choose_version(audit.alias_holders(records, alias), current, args.to_version, alias)
    with registry_errors(f"reading version {version} of {args.model}"):
        chosen = model_version(client, args.model, version)

    change: ValuesChange | None = None
    if args.no_values_file:
        pass
    elif environment_follows_alias(values_file, Path(args.chart_dir) / "values.yaml", alias):
        print(f"{values_file} serves models:/{args.model}@{alias}, so moving the alias is enough")
    else:
        change = plan_version_pin(values_file, version)

    if args.dry_run:
        print(f"dry run: would point {args.model}@{alias} back at version {version} (now {current})")
    else:

        def build_record(previous: str) -> audit.AuditRecord:
            return audit.new_record(
                "rollback",
                actor,
                args.model,
                version,
                alias,
                alias,
                previous,
                run_id=str(chosen.run_id or ""),
                git_commit=chosen.tags.get("git_commit", "unknown"),
                reason=reason,
            )

        audit.move_alias(client, args.model, alias, version, build_record)
        print(f"{args.model}@{alias} points back at version {version} (was {current})")

    if change is not None and change.old != change.new:
        print(change.diff, end="")
        if args.dry_run:
            print(f"dry run: {change.path} not written")
        else:
            change.apply()
    return 0
