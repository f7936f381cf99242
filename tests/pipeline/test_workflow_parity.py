"""The local runner runs the rendered WorkflowTemplate's steps, in its order, with its arguments."""

from __future__ import annotations

from pathlib import Path

import pytest

from mlship.chart_render import VALUES_DIR, find_object, render_chart
from mlship.local_runner import PIPELINE_CONFIGMAP, WORKFLOW_TEMPLATE, LocalRunner, dependencies_of
from tests.pipeline.workflow_reading import dag_tasks, expected_argv

ENVIRONMENTS = sorted(path.stem for path in VALUES_DIR.glob("*.yaml"))


def render(environment: str) -> tuple[dict, dict]:
    objects = render_chart([VALUES_DIR / f"{environment}.yaml"], show_only=[WORKFLOW_TEMPLATE, PIPELINE_CONFIGMAP])
    return find_object(objects, "WorkflowTemplate", "-pipeline"), find_object(objects, "ConfigMap", "-pipeline-config")


def test_every_environment_is_checked() -> None:
    assert ENVIRONMENTS == ["dev", "prod", "staging"]


@pytest.mark.parametrize("environment", ENVIRONMENTS)
def test_plan_matches_rendered_template(environment: str, tmp_path: Path) -> None:
    workflow_template, config_map = render(environment)
    runner = LocalRunner(workflow_template, config_map, tmp_path, tmp_path / "bin", "http://127.0.0.1:1",
                         parameters={"git-commit": "0123abc"}, workflow_name="parity")  # fmt: skip
    plans = runner.plan()

    rendered = dag_tasks(workflow_template)
    assert [plan.name for plan in plans] == [task["name"] for task in rendered]
    position = {plan.name: index for index, plan in enumerate(plans)}
    for task in rendered:
        for dependency in dependencies_of(task):
            assert position[dependency] < position[task["name"]], f"{task['name']} ran before {dependency}"

    parameters = {item["name"]: str(item["value"]) for item in workflow_template["spec"]["arguments"]["parameters"]}
    parameters["git-commit"] = "0123abc"
    for plan in plans:
        expected = expected_argv(workflow_template, plan.name, parameters, "parity", {})
        assert plan.command + plan.args == expected, plan.name


@pytest.mark.parametrize("environment", ENVIRONMENTS)
def test_pipeline_steps_cover_the_lifecycle(environment: str) -> None:
    workflow_template, _ = render(environment)
    names = [task["name"] for task in dag_tasks(workflow_template)]

    core = [name for name in names if name != "example-data"]
    assert core == ["validate-data", "train", "validate-model", "benchmark", "register"]


def test_unknown_workflow_parameter_rejected(tmp_path: Path) -> None:
    workflow_template, config_map = render("dev")

    with pytest.raises(Exception, match="unknown workflow parameter"):
        LocalRunner(
            workflow_template, config_map, tmp_path, tmp_path, "http://127.0.0.1:1", parameters={"data-sorce": "x"}
        )
