"""An independent reading of the rendered WorkflowTemplate, to check the local runner against.

It substitutes Argo expressions the way the Argo controller documents them, with plain
string replacement, so a bug in the runner's own substitution shows up as a difference.
"""

from __future__ import annotations

from typing import Any


def expression(key: str) -> str:
    return "{{" + key + "}}"


def dag_tasks(workflow_template: dict[str, Any]) -> list[dict[str, Any]]:
    spec = workflow_template["spec"]
    [entry] = [template for template in spec["templates"] if template["name"] == spec["entrypoint"]]
    return list(entry["dag"]["tasks"])


def expected_argv(
    workflow_template: dict[str, Any],
    task_name: str,
    workflow_parameters: dict[str, str],
    workflow_name: str,
    task_outputs: dict[str, dict[str, str]],
) -> list[str]:
    """The container command and args Argo would run for ``task_name``."""
    spec = workflow_template["spec"]
    [task] = [task for task in dag_tasks(workflow_template) if task["name"] == task_name]
    [template] = [template for template in spec["templates"] if template["name"] == task["template"]]

    def workflow_level(text: str) -> str:
        for name, value in workflow_parameters.items():
            text = text.replace(expression(f"workflow.parameters.{name}"), value)
        text = text.replace("{{workflow.name}}", workflow_name)
        for task_name_, outputs in task_outputs.items():
            for output, value in outputs.items():
                text = text.replace(expression(f"tasks.{task_name_}.outputs.parameters.{output}"), value)
        return text

    arguments = task.get("arguments", {}).get("parameters", [])
    inputs = {item["name"]: workflow_level(str(item["value"])) for item in arguments}
    container = template["container"]
    argv = []
    for part in [*container.get("command", []), *container.get("args", [])]:
        text = str(part)
        for name, value in inputs.items():
            text = text.replace(expression(f"inputs.parameters.{name}"), value)
        argv.append(workflow_level(text))
    return argv
