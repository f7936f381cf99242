"""promtool checks of exactly the alerting rules that the chart renders.

The spec of the rendered PrometheusRule is written to a rules file, then
`promtool check rules` checks its syntax and `promtool test rules` runs the unit tests in
tests/promtool/ against it.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.chart.conftest import ENVIRONMENTS, REPO_ROOT, environment_file, render

PROMTOOL_TESTS = REPO_ROOT / "tests" / "promtool"
EXPECTED_ALERTS = {
    "MlshipModelErrorRateHigh",
    "MlshipModelLatencyHigh",
    "MlshipModelNoPredictions",
    "MlshipRegistryDown",
}


def rendered_rules(helm: str, environment: str, *set_values: str) -> dict[str, Any]:
    objects = render(
        helm, [environment_file(environment)], ["monitoring.prometheusRule.enabled=true", *set_values]
    ).objects
    rules = [item for item in objects if item["kind"] == "PrometheusRule"]
    assert len(rules) == 1
    spec: dict[str, Any] = rules[0]["spec"]
    return spec


def run_promtool(promtool: str, *arguments: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([promtool, *arguments], capture_output=True, text=True, check=False, cwd=cwd, timeout=120)


@pytest.mark.parametrize("environment", ENVIRONMENTS)
def test_rules_pass_check(helm3: str, promtool: str, tmp_path: Path, environment: str) -> None:
    spec = rendered_rules(helm3, environment)
    (tmp_path / "rules.yaml").write_text(yaml.safe_dump(spec), encoding="utf-8")
    result = run_promtool(promtool, "check", "rules", "rules.yaml", cwd=tmp_path)
    print(result.stdout)
    assert result.returncode == 0, result.stdout + result.stderr
    assert re.search(r"SUCCESS: 4 rules found", result.stdout)
    alerts = {rule["alert"] for group in spec["groups"] for rule in group["rules"]}
    assert alerts == EXPECTED_ALERTS


def test_rules_pass_unit_tests(helm3: str, promtool: str, tmp_path: Path) -> None:
    (tmp_path / "rules.yaml").write_text(yaml.safe_dump(rendered_rules(helm3, "dev")), encoding="utf-8")
    for test_file in sorted(PROMTOOL_TESTS.glob("*_test.yaml")):
        shutil.copy(test_file, tmp_path / test_file.name)
        result = run_promtool(promtool, "test", "rules", test_file.name, cwd=tmp_path)
        print(result.stdout)
        assert result.returncode == 0, result.stdout + result.stderr
        assert "SUCCESS" in result.stdout


def test_unit_tests_catch_a_changed_threshold(helm3: str, promtool: str, tmp_path: Path) -> None:
    """With a higher error-rate threshold the chart's rules no longer meet the unit tests."""
    spec = rendered_rules(helm3, "dev", "monitoring.prometheusRule.errorRateThreshold=0.5")
    (tmp_path / "rules.yaml").write_text(yaml.safe_dump(spec), encoding="utf-8")
    shutil.copy(PROMTOOL_TESTS / "alerts_test.yaml", tmp_path / "alerts_test.yaml")
    result = run_promtool(promtool, "test", "rules", "alerts_test.yaml", cwd=tmp_path)
    assert result.returncode != 0
    assert "MlshipModelErrorRateHigh" in result.stdout + result.stderr


def test_rules_follow_components(helm3: str) -> None:
    spec = rendered_rules(helm3, "dev", "registry.enabled=false", 'mlflow.trackingUri="http://mlflow:5000"')
    assert [group["name"] for group in spec["groups"]] == ["mlship-serving"]
    spec = rendered_rules(helm3, "dev", "serving.enabled=false")
    assert [group["name"] for group in spec["groups"]] == ["mlship-registry"]
