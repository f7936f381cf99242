"""Register, promote dev -> staging -> prod twice, then roll prod back, on MLflow with PostgreSQL.

The PostgreSQL cluster comes from Debian's postgresql package and runs in a temporary
folder on a loopback port for this module only.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.promotion.conftest import Steps, alias_holder, client_for, write_values
from tests.support.mlflow_server import MlflowServer
from tests.support.postgres import PostgresServer, missing_reason

pytestmark = [
    pytest.mark.postgres,
    pytest.mark.slow,
    pytest.mark.skipif(missing_reason() is not None, reason=str(missing_reason())),
]


@pytest.fixture(scope="module")
def postgres_mlflow(tmp_path_factory: pytest.TempPathFactory) -> Iterator[MlflowServer]:
    with PostgresServer() as postgres:
        backend = postgres.create_database("mlflow")
        with MlflowServer(tmp_path_factory.mktemp("mlflow-postgres"), backend_store_uri=backend) as server:
            yield server


def test_promote_and_rollback_on_postgres(postgres_mlflow: MlflowServer, tmp_path: Path) -> None:
    steps = Steps(tmp_path, postgres_mlflow.url).setup()
    for environment in ("staging", "prod"):
        write_values(steps.values_dir, environment, {"serving": {"model": {"version": ""}}})
    client = client_for(postgres_mlflow.url)
    approval = ("--approved-by", "bob", "--reason", "release")

    first = steps.candidate()
    steps.register(first)
    steps.promote("dev", "staging")
    steps.promote("staging", "prod", *approval)

    assert alias_holder(client, "prod") == "1"
    assert steps.pinned_version("prod") == "1"

    second = steps.candidate()
    steps.register(second)
    steps.promote("dev", "staging")
    steps.promote("staging", "prod", *approval)

    assert alias_holder(client, "staging") == "2"
    assert alias_holder(client, "prod") == "2"
    assert steps.pinned_version("staging") == "2"
    assert steps.pinned_version("prod") == "2"

    steps.rollback("prod", "--reason", "error rate up after release", "--actor", "carol")

    assert alias_holder(client, "prod") == "1"
    assert alias_holder(client, "staging") == "2"
    assert steps.pinned_version("prod") == "1"

    rejected = steps.rollback("prod", expect=1)
    assert "no earlier one" in rejected.stderr
    assert alias_holder(client, "prod") == "1"

    records = [json.loads(line) for line in steps.run("audit", "--model", steps.model, "--json").stdout.splitlines()]
    moves = [(record["action"], record["to_alias"], record["version"]) for record in records]
    assert moves == [
        ("register", "dev", "1"),
        ("promote", "staging", "1"),
        ("promote", "prod", "1"),
        ("register", "dev", "2"),
        ("promote", "staging", "2"),
        ("promote", "prod", "2"),
        ("rollback", "prod", "1"),
    ]
    rollback = records[-1]
    assert rollback["actor"] == "carol"
    assert rollback["reason"] == "error rate up after release"
    assert rollback["previous_version"] == "2"
    assert records[2]["approved_by"] == "bob"

    table = steps.run("audit", "--model", steps.model).stdout.splitlines()
    assert table[0].startswith("TIME (UTC)")
    assert len(table) == 1 + len(records)
    assert "rollback" in table[-1]
    assert "carol" in table[-1]
