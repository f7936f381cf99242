"""Crashes, races and outages during register and promote, against a real MLflow server.

After every fault the invariants hold: one version per run, aliases only on versions
whose run passed its gates, and the audit log records each alias move.
"""

from __future__ import annotations

import signal
import subprocess
import time
from pathlib import Path

import mlflow
import pytest

from tests.promotion.conftest import (
    STEP_TIMEOUT_SECONDS,
    Candidates,
    Steps,
    alias_holder,
    audit_records,
    client_for,
    model_steps,
)
from tests.support.mlflow_server import MlflowServer
from tests.support.paths import venv_bin

KILL_POINTS = ("after-create-version", "before-set-alias", "after-set-alias", "after-audit-log")


def assert_invariants(client: mlflow.MlflowClient, model: str, run_ids: list[str]) -> None:
    versions = client.search_model_versions(f"name = '{model}'")
    for run_id in run_ids:
        assert len([version for version in versions if version.run_id == run_id]) == 1, run_id
    for version in versions:
        for alias in version.aliases:
            run = client.get_run(version.run_id)
            assert run.data.tags.get("mlship.validation.passed") == "true", (alias, version.version)
            assert run.data.tags.get("mlship.benchmark.passed") == "true", (alias, version.version)


@pytest.mark.parametrize("point", KILL_POINTS)
def test_register_killed_at_point(candidates: Candidates, tmp_path: Path, point: str) -> None:
    model = f"iris-kill-{point}"
    steps = model_steps(candidates, tmp_path, model)
    client = client_for(steps.tracking_uri)
    run_id = candidates.good[0]

    killed = steps.register(run_id, expect=None, extra_env={"MLSHIP_FAILPOINT": f"{point}:kill"})
    assert killed.returncode == -signal.SIGKILL, killed.stderr[-2000:]

    steps.register(run_id)

    assert_invariants(client, model, [run_id])
    assert alias_holder(client, "dev", model) == "1"
    registrations = [record for record in audit_records(steps, model) if record["action"] == "register"]
    assert [record["version"] for record in registrations] == ["1"]


@pytest.mark.parametrize("delay_seconds", [2.0, 6.0])
def test_register_killed_after_delay(candidates: Candidates, tmp_path: Path, delay_seconds: float) -> None:
    model = f"iris-timer-{int(delay_seconds)}"
    steps = model_steps(candidates, tmp_path, model)
    client = client_for(steps.tracking_uri)
    run_id = candidates.good[1]

    process = steps.start("register", "--config", str(steps.config("dev")), "--run-id", run_id)
    time.sleep(delay_seconds)
    process.send_signal(signal.SIGKILL)
    process.communicate(timeout=STEP_TIMEOUT_SECONDS)

    steps.register(run_id)

    assert_invariants(client, model, [run_id])
    assert alias_holder(client, "dev", model) == "1"


def pipeline_command(steps: Steps, run_id: str) -> list[str]:
    """Register ``run_id`` and promote dev to staging, as one shell pipeline."""
    mlship = str(venv_bin("steps", "mlship"))
    register = [mlship, "register", "--config", str(steps.config("dev")), "--run-id", run_id]
    promote = [
        mlship,
        "promote",
        "--model",
        steps.model,
        "--from",
        "dev",
        "--to",
        "staging",
        "--values-dir",
        str(steps.values_dir),
    ]
    return ["bash", "-c", f"{subprocess.list2cmdline(register)} && {subprocess.list2cmdline(promote)}"]


def test_two_pipelines_at_once(candidates: Candidates, tmp_path: Path) -> None:
    model = "iris-race"
    steps = model_steps(candidates, tmp_path, model)
    client = client_for(steps.tracking_uri)

    processes = [
        subprocess.Popen(
            pipeline_command(steps, run_id),
            env=steps.environment(),
            cwd=steps.root,
            text=True,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
        for run_id in candidates.good
    ]
    outputs = [process.communicate(timeout=STEP_TIMEOUT_SECONDS) for process in processes]

    for process, (_, stderr) in zip(processes, outputs, strict=True):
        assert process.returncode == 0, stderr[-3000:]
    assert_invariants(client, model, candidates.good)
    versions = {version.run_id: str(version.version) for version in client.search_model_versions(f"name = '{model}'")}
    assert alias_holder(client, "dev", model) in versions.values()
    assert alias_holder(client, "staging", model) in versions.values()
    assert steps.pinned_version("staging") in versions.values()
    records = audit_records(steps, model)
    registered = sorted(record["run_id"] for record in records if record["action"] == "register")
    assert registered == sorted(candidates.good)
    assert len([record for record in records if record["action"] == "promote"]) >= 1


def wait_for_file(path: Path, timeout: float = STEP_TIMEOUT_SECONDS) -> None:
    deadline = time.monotonic() + timeout
    while not path.exists():
        assert time.monotonic() < deadline, f"{path} did not appear within {timeout} s"
        time.sleep(0.2)


def test_server_down_mid_step(candidates: Candidates, sqlite_server: MlflowServer, tmp_path: Path) -> None:
    register_steps = model_steps(candidates, tmp_path / "register", "iris-outage-register")
    promote_steps = model_steps(candidates, tmp_path / "promote", "iris-outage-promote")
    client = client_for(sqlite_server.url)
    run_id = candidates.good[0]
    promote_steps.register(run_id)
    pause = {"MLSHIP_FAILPOINT": "before-set-alias:pause", "MLSHIP_FAILPOINT_TIMEOUT": "600"}

    register = register_steps.start(
        "register",
        "--config",
        str(register_steps.config("dev")),
        "--run-id",
        run_id,
        extra_env={**pause, "MLSHIP_FAILPOINT_DIR": str(register_steps.root)},
    )
    promote = promote_steps.start(
        "promote",
        "--model",
        promote_steps.model,
        "--from",
        "dev",
        "--to",
        "staging",
        "--values-dir",
        str(promote_steps.values_dir),
        extra_env={**pause, "MLSHIP_FAILPOINT_DIR": str(promote_steps.root)},
    )
    wait_for_file(register_steps.root / "before-set-alias.reached")
    wait_for_file(promote_steps.root / "before-set-alias.reached")
    sqlite_server.stop()
    try:
        (register_steps.root / "before-set-alias.continue").touch()
        (promote_steps.root / "before-set-alias.continue").touch()
        _, register_err = register.communicate(timeout=STEP_TIMEOUT_SECONDS)
        promote_out, promote_err = promote.communicate(timeout=STEP_TIMEOUT_SECONDS)
    finally:
        sqlite_server.start()

    assert register.returncode == 75, register_err[-3000:]
    assert promote.returncode == 75, promote_err[-3000:]
    for stderr in (register_err, promote_err):
        assert "became unreachable" in stderr
        assert "re-run the command" in stderr
    assert "points at version" not in promote_out
    assert promote_steps.pinned_version("staging") == ""
    assert alias_holder(client, "dev", register_steps.model) is None
    assert alias_holder(client, "staging", promote_steps.model) is None

    register_steps.register(run_id)
    promote_steps.promote("dev", "staging")

    assert_invariants(client, register_steps.model, [run_id])
    assert alias_holder(client, "dev", register_steps.model) == "1"
    assert alias_holder(client, "staging", promote_steps.model) == "1"
    assert promote_steps.pinned_version("staging") == "1"
