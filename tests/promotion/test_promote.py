"""`mlship promote` against a real MLflow server (SQLite), with candidates from the real steps.

Each test uses its own registered model name, so the tests share one server and one
set of trained runs without seeing each other's aliases.
"""

from __future__ import annotations

from pathlib import Path

import yaml

from tests.promotion.conftest import Candidates, alias_holder, audit_records, client_for, model_steps


def test_promote_dry_run_then_real(candidates: Candidates, tmp_path: Path) -> None:
    model = "iris-promote"
    steps = model_steps(candidates, tmp_path, model)
    client = client_for(steps.tracking_uri)
    steps.register(candidates.good[0])
    staging_file = steps.values_dir / "staging.yaml"
    before = staging_file.read_text()

    dry = steps.promote("dev", "staging", "--dry-run")

    assert "dry run: would point iris-promote@staging at version 1" in dry.stdout
    assert '+    version: "1"' in dry.stdout
    assert staging_file.read_text() == before
    assert alias_holder(client, "staging", model) is None

    real = steps.promote("dev", "staging", "--reason", "first release")

    assert alias_holder(client, "staging", model) == "1"
    assert steps.pinned_version("staging") == "1"
    assert '+    version: "1"' in real.stdout
    changed = [line for line in staging_file.read_text().splitlines() if line not in before.splitlines()]
    assert changed == ['    version: "1"']
    promotions = [record for record in audit_records(steps, model) if record["action"] == "promote"]
    assert len(promotions) == 1
    assert promotions[0]["version"] == "1"
    assert promotions[0]["from_alias"] == "dev"
    assert promotions[0]["to_alias"] == "staging"
    assert promotions[0]["actor"] == "ci-tests"
    assert promotions[0]["reason"] == "first release"
    assert promotions[0]["run_id"] == candidates.good[0]
    tags = client.get_model_version(model, "1").tags
    assert any(key.startswith("mlship.audit.") for key in tags)

    again = steps.promote("dev", "staging")

    assert "already pins this version" in again.stdout
    assert len([record for record in audit_records(steps, model) if record["action"] == "promote"]) == 1


def test_prod_requires_approval(candidates: Candidates, tmp_path: Path) -> None:
    model = "iris-approval"
    steps = model_steps(candidates, tmp_path, model)
    client = client_for(steps.tracking_uri)
    steps.register(candidates.good[0])
    steps.promote("dev", "staging")
    prod_before = (steps.values_dir / "prod.yaml").read_text()

    rejected = steps.promote("staging", "prod", expect=1)

    assert "requires an approval" in rejected.stderr
    assert "--approved-by" in rejected.stderr
    assert alias_holder(client, "prod", model) is None
    assert (steps.values_dir / "prod.yaml").read_text() == prod_before

    steps.promote("staging", "prod", "--approved-by", "bob", "--reason", "weekly release")

    assert alias_holder(client, "prod", model) == "1"
    tags = client.get_model_version(model, "1").tags
    assert tags["approved-by"] == "bob"
    assert tags["approval-reason"] == "weekly release"
    assert steps.pinned_version("prod") == "1"


def test_values_turn_approval_off(candidates: Candidates, tmp_path: Path) -> None:
    model = "iris-no-approval"
    steps = model_steps(candidates, tmp_path, model, {"prod": {"promotion": {"requireApproval": False}}})
    client = client_for(steps.tracking_uri)
    steps.register(candidates.good[0])

    steps.promote("dev", "prod")

    assert alias_holder(client, "prod", model) == "1"
    assert "approved-by" not in client.get_model_version(model, "1").tags


def test_failing_gate_keeps_alias(candidates: Candidates, tmp_path: Path) -> None:
    model = "iris-strict"
    strict = {"pipeline": {"validation": {"thresholds": {"accuracy": 0.999}}}}
    steps = model_steps(candidates, tmp_path, model, {"staging": strict})
    client = client_for(steps.tracking_uri)
    steps.register(candidates.good[0])
    before = (steps.values_dir / "staging.yaml").read_text()

    failed = steps.promote("dev", "staging", expect=1)

    assert "cannot be promoted to staging" in failed.stderr
    assert "accuracy" in failed.stderr
    assert alias_holder(client, "staging", model) is None
    assert (steps.values_dir / "staging.yaml").read_text() == before
    assert [record for record in audit_records(steps, model) if record["action"] == "promote"] == []


def test_stale_evidence_is_rescored(candidates: Candidates, tmp_path: Path) -> None:
    model = "iris-resplit"
    steps = model_steps(candidates, tmp_path, model, {"staging": {"pipeline": {"split": {"testSize": 0.3}}}})
    client = client_for(steps.tracking_uri)
    steps.register(candidates.good[0])

    missing = steps.promote("dev", "staging", expect=1)

    assert "test_size=0.25" in missing.stderr
    assert "--data" in missing.stderr
    assert alias_holder(client, "staging", model) is None

    rescored = steps.promote("dev", "staging", "--data", str(steps.data))

    assert f"re-scored on {steps.data}" in rescored.stdout
    assert alias_holder(client, "staging", model) == "1"
    tags = client.get_model_version(model, "1").tags
    assert tags["mlship.gate.staging.passed"] == "true"
    assert float(tags["mlship.gate.staging.metric.accuracy"]) >= 0.9


def test_failed_validation_is_never_registered(candidates: Candidates, tmp_path: Path) -> None:
    model = "iris-dummy"
    steps = model_steps(candidates, tmp_path, model)
    client = client_for(steps.tracking_uri)

    rejected = steps.register(candidates.failed_validation, expect=1)

    assert "has not passed its gates" in rejected.stderr
    assert client.search_model_versions(f"name = '{model}'") == []
    assert alias_holder(client, "dev", model) is None


def test_promote_config_mismatch(candidates: Candidates, tmp_path: Path) -> None:
    steps = model_steps(candidates, tmp_path, "iris-mismatch")

    wrong_model = steps.run(
        "promote",
        "--model",
        "other-model",
        "--from",
        "dev",
        "--to",
        "staging",
        "--values-dir",
        str(steps.values_dir),
        expect=1,
    )
    wrong_config = steps.run(
        "promote",
        "--model",
        "iris-mismatch",
        "--from",
        "dev",
        "--to",
        "staging",
        "--config",
        str(steps.config("prod")),
        "--no-values-file",
        expect=1,
    )

    assert "not 'other-model'" in wrong_model.stderr
    assert "is for environment 'prod'" in wrong_config.stderr
    assert yaml.safe_load((steps.values_dir / "staging.yaml").read_text())["model"]["name"] == "iris-mismatch"
