"""Pinning serving.model.version in a values file keeps everything else byte for byte."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from mlship.errors import InvalidInputError
from mlship.values_file import (
    environment_follows_alias,
    follows_alias,
    merge_values,
    pin_version,
    plan_version_pin,
)
from tests.support.paths import REPO

STAGING = """\
# staging: comments at the top stay
environment: staging

serving:
  # the model that the server loads
  model:
    alias: staging
    # Pinned version; rewritten by `mlship promote`.
    version: "1"   # trailing comment
  replicas: 2
  canary:
    enabled: false
    model:
      version: '7'

networkPolicy:
  metricsNamespaces:
    - monitoring
"""


def changed_lines(old: str, new: str) -> list[tuple[str, str]]:
    return [
        (before, after) for before, after in zip(old.splitlines(), new.splitlines(), strict=True) if before != after
    ]


def test_pin_changes_only_version_line() -> None:
    pinned = pin_version(STAGING, "12")

    # ruamel.yaml keeps the comment in its column.
    assert changed_lines(STAGING, pinned) == [
        ('    version: "1"   # trailing comment', '    version: "12"  # trailing comment')
    ]
    assert yaml.safe_load(pinned)["serving"]["model"]["version"] == "12"
    assert yaml.safe_load(pinned)["serving"]["canary"]["model"]["version"] == "7"


def test_pin_keeps_unindented_sequences() -> None:
    text = STAGING.replace("    - monitoring", "  - monitoring")

    pinned = pin_version(text, "3")

    assert len(changed_lines(text, pinned)) == 1
    assert "\n  - monitoring\n" in pinned


def test_pin_adds_missing_keys_at_end() -> None:
    text = "# dev\nenvironment: dev\nserving:\n  replicas: 1\n"

    pinned = pin_version(text, "5")

    assert pinned.startswith("# dev\nenvironment: dev\nserving:\n  replicas: 1\n")
    assert yaml.safe_load(pinned)["serving"] == {"replicas": 1, "model": {"version": "5"}}


def test_pin_empty_file() -> None:
    assert yaml.safe_load(pin_version("", "2")) == {"serving": {"model": {"version": "2"}}}


def test_pin_rejects_non_mapping_serving() -> None:
    with pytest.raises(InvalidInputError, match="serving must be a mapping"):
        pin_version("serving: [1, 2]\n", "2")


def test_pin_repository_values_files() -> None:
    for environment in ("staging", "prod"):
        original = (REPO / "values" / f"{environment}.yaml").read_text(encoding="utf-8")

        pinned = pin_version(original, "42")

        assert len(changed_lines(original, pinned)) == 1, environment
        assert yaml.safe_load(pinned)["serving"]["model"]["version"] == "42"


def test_follows_alias() -> None:
    assert follows_alias({"serving": {"model": {"alias": "dev", "version": ""}}}, "dev")
    assert not follows_alias({"serving": {"model": {"alias": "dev", "version": "3"}}}, "dev")
    assert not follows_alias({"serving": {"model": {"alias": "dev", "version": ""}}}, "prod")
    assert not follows_alias({}, "prod")


def test_merge_values_overrides_nested() -> None:
    base = {"serving": {"model": {"alias": "dev", "version": ""}, "replicas": 1}}

    merged = merge_values(base, {"serving": {"model": {"version": "4"}}})

    assert merged == {"serving": {"model": {"alias": "dev", "version": "4"}, "replicas": 1}}
    assert base["serving"]["model"]["version"] == ""


def test_environment_follows_alias(tmp_path: Path) -> None:
    chart_values = tmp_path / "values.yaml"
    chart_values.write_text('serving:\n  model:\n    alias: dev\n    version: ""\n', encoding="utf-8")
    dev = tmp_path / "dev.yaml"
    dev.write_text("environment: dev\n", encoding="utf-8")
    prod = tmp_path / "prod.yaml"
    prod.write_text('serving:\n  model:\n    alias: prod\n    version: "4"\n', encoding="utf-8")

    assert environment_follows_alias(dev, chart_values, "dev")
    assert not environment_follows_alias(prod, chart_values, "prod")
    assert not environment_follows_alias(dev, None, "dev")


def test_plan_apply_writes_and_keeps_mode(tmp_path: Path) -> None:
    values = tmp_path / "staging.yaml"
    values.write_text(STAGING, encoding="utf-8")
    values.chmod(0o640)

    change = plan_version_pin(values, "9")
    change.apply()

    assert yaml.safe_load(values.read_text())["serving"]["model"]["version"] == "9"
    assert values.stat().st_mode & 0o777 == 0o640
    assert '-    version: "1"   # trailing comment' in change.diff
    assert '+    version: "9"   # trailing comment' in change.diff


def test_plan_apply_rejects_concurrent_edit(tmp_path: Path) -> None:
    values = tmp_path / "staging.yaml"
    values.write_text(STAGING, encoding="utf-8")
    change = plan_version_pin(values, "9")
    values.write_text(STAGING + "extra: true\n", encoding="utf-8")

    with pytest.raises(InvalidInputError, match="changed while the command ran"):
        change.apply()
    assert values.read_text().endswith("extra: true\n")


def test_pin_keeps_single_quotes() -> None:
    text = "serving:\n  model:\n    version: '1'\n"

    assert pin_version(text, "2") == "serving:\n  model:\n    version: '2'\n"
