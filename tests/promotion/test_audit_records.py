"""Audit records, the alias history derived from them, and the rollback target."""

from __future__ import annotations

import pytest

from mlship.audit import AuditRecord, alias_holders, format_table, new_record, sort_records
from mlship.errors import InvalidInputError, NotFoundError
from mlship.rollback import choose_version


def record(action: str, version: str, alias: str = "prod", second: int = 0) -> AuditRecord:
    template = new_record(action, "alice", "iris", version, "staging", alias, "", run_id="r" * 32, git_commit="c" * 40)
    stamp = f"2026-01-01T00:00:{second:02d}.000000Z"
    return AuditRecord(**{**template.__dict__, "time": stamp, "id": f"20260101T0000{second:02d}000000Z-{version}"})


def test_record_json_round_trip() -> None:
    original = new_record(
        "promote",
        "alice",
        "iris",
        "3",
        "staging",
        "prod",
        "2",
        run_id="abc",
        git_commit="def",
        reason="weekly release",
        approved_by="bob",
    )

    assert AuditRecord.from_json(original.to_json()) == original
    assert original.time.endswith("Z")
    assert original.id.startswith(original.time[:4])


def test_new_record_rejects_unknown_action() -> None:
    with pytest.raises(ValueError, match="unknown audit action"):
        new_record("delete", "alice", "iris", "1", "", "dev", None, run_id="", git_commit="")


def test_sort_records_by_time() -> None:
    late, early = record("promote", "2", second=5), record("promote", "1", second=1)

    assert [item.version for item in sort_records([late, early])] == ["1", "2"]


def test_alias_holders_pushes_promotions() -> None:
    records = [record("promote", "1", second=1), record("promote", "2", second=2), record("promote", "3", second=3)]

    assert alias_holders(records, "prod") == ["1", "2", "3"]
    assert alias_holders(records, "staging") == []


def test_alias_holders_rollback_pops() -> None:
    records = [
        record("promote", "1", second=1),
        record("promote", "2", second=2),
        record("promote", "3", second=3),
        record("rollback", "2", second=4),
    ]

    assert alias_holders(records, "prod") == ["1", "2"]
    assert alias_holders([*records, record("promote", "4", second=5)], "prod") == ["1", "2", "4"]


def test_alias_holders_ignores_repeats() -> None:
    records = [record("register", "1", second=1), record("register", "1", second=2)]

    assert alias_holders(records, "prod") == ["1"]


def test_choose_previous_holder() -> None:
    assert choose_version(["1", "2", "3"], "3", None, "prod") == "2"


def test_choose_finishes_unrecorded_rollback() -> None:
    assert choose_version(["1", "2", "3"], "2", None, "prod") == "2"


def test_choose_rejects_first_version() -> None:
    with pytest.raises(InvalidInputError, match="first version"):
        choose_version(["1"], "1", None, "prod")


def test_choose_rejects_unset_alias() -> None:
    with pytest.raises(NotFoundError, match="nothing to roll back"):
        choose_version(["1", "2"], None, None, "prod")


def test_choose_rejects_unknown_holder() -> None:
    with pytest.raises(InvalidInputError, match="pass --to-version"):
        choose_version(["1", "2"], "5", None, "prod")


def test_choose_explicit_version() -> None:
    assert choose_version(["1", "2", "3"], "7", "1", "prod") == "1"
    with pytest.raises(InvalidInputError, match="never held"):
        choose_version(["1", "2"], "2", "9", "prod")
    with pytest.raises(InvalidInputError, match="already has"):
        choose_version(["1", "2"], "2", "2", "prod")


def test_format_table_columns() -> None:
    table = format_table([record("promote", "1", second=1), record("rollback", "2", second=2)])
    lines = table.splitlines()

    assert lines[0].split()[:4] == ["TIME", "(UTC)", "ACTION", "VERSION"]
    assert "2026-01-01 00:00:01" in lines[1]
    assert "promote" in lines[1]
    assert "rollback" in lines[2]
    assert "r" * 12 in lines[1]
    assert "r" * 13 not in lines[1]
