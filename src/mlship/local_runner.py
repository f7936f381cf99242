"""Run the chart's Argo WorkflowTemplate on this machine, container command by command.

The runner renders the WorkflowTemplate and the pipeline ConfigMap with `helm template`
for one environment, orders the DAG by its dependencies, substitutes Argo's
``{{...}}`` expressions, evaluates ``when`` gates and runs each container's command
with the steps virtual environment. Container paths that the chart mounts
(``/workspace``, ``/data``, ``/etc/mlship``, ``/tmp``) map to folders of a run directory, so the
local run executes the same steps, in the same order, with the same arguments as Argo.

The runner supports the Argo features that the chart uses. These are a DAG entry point,
``dependencies`` or ``depends`` (task names joined by ``&&``), and ``when`` with ``==``,
``!=``, ``&&`` and ``||``. It also handles input and output parameters, container
``command``, ``args`` and ``env``, and a ``retryStrategy`` whose ``limit`` applies to exit
code 75 only, because that is the one exit code the chart's retry expressions retry.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import re
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mlship.chart_render import environment_values_file, find_object, render_chart
from mlship.errors import EXIT_TEMPORARY, GateFailedError, InvalidInputError

log = logging.getLogger(__name__)

WORKFLOW_TEMPLATE = "templates/pipeline/workflowtemplate.yaml"
PIPELINE_CONFIGMAP = "templates/pipeline/configmap.yaml"
EXPRESSION = re.compile(r"\{\{\s*([^{}]+?)\s*\}\}")
RETRY_BACKOFF_SECONDS = 2.0


@dataclass
class TaskPlan:
    """One DAG task resolved against its template: what will run and where."""

    name: str
    template: str
    dependencies: list[str]
    when: str | None
    arguments: dict[str, str]
    command: list[str]
    args: list[str]
    env: dict[str, str]
    outputs: dict[str, str]  # output parameter -> container path
    retry_limit: int = 0


@dataclass
class TaskResult:
    name: str
    status: str  # Succeeded, Failed, Skipped
    seconds: float = 0.0
    outputs: dict[str, str] = field(default_factory=dict)
    command: list[str] = field(default_factory=list)
    exit_code: int | None = None
    message: str = ""


@dataclass
class PipelineRun:
    """The outcome of a local run, in execution order."""

    workflow_name: str
    run_dir: Path
    results: list[TaskResult]

    @property
    def succeeded(self) -> bool:
        return all(result.status in ("Succeeded", "Skipped") for result in self.results)

    def outputs(self, task: str) -> dict[str, str]:
        for result in self.results:
            if result.name == task:
                return result.outputs
        return {}


def substitute(text: str, lookup: Callable[[str], str]) -> str:
    """Replace every ``{{ key }}`` in ``text`` with ``lookup(key)``."""
    return EXPRESSION.sub(lambda match: lookup(match.group(1)), text)


def evaluate_when(expression: str) -> bool:
    """Evaluate a substituted ``when`` expression made of comparisons, ``&&`` and ``||``."""

    def literal(token: str) -> str:
        return token.strip().strip("'\"")

    def comparison(text: str) -> bool:
        for operator in ("!=", "=="):
            if operator in text:
                left, right = text.split(operator, 1)
                equal = literal(left) == literal(right)
                return equal if operator == "==" else not equal
        value = literal(text).lower()
        if value in ("true", "false"):
            return value == "true"
        raise InvalidInputError(f"unsupported when expression {expression!r}")

    return any(all(comparison(part) for part in alternative.split("&&")) for alternative in expression.split("||"))


def dependencies_of(task: dict[str, Any]) -> list[str]:
    if "dependencies" in task:
        return list(task["dependencies"])
    if "depends" in task:
        names = re.findall(r"[A-Za-z0-9][A-Za-z0-9-]*(?:\.[A-Za-z]+)?", task["depends"])
        return [name.split(".")[0] for name in names]
    return []


def order_tasks(tasks: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """Topologically sort DAG tasks, keeping the template's order among ready tasks."""
    by_name = {task["name"]: task for task in tasks}
    for task in tasks:
        unknown = [name for name in dependencies_of(task) if name not in by_name]
        if unknown:
            raise InvalidInputError(f"task {task['name']} depends on unknown task(s) {', '.join(unknown)}")

    ordered: list[dict[str, Any]] = []
    done: set[str] = set()
    while len(ordered) < len(tasks):
        ready = [task for task in tasks if task["name"] not in done and set(dependencies_of(task)) <= done]
        if not ready:
            raise InvalidInputError("the DAG has a dependency cycle")
        ordered.append(ready[0])
        done.add(ready[0]["name"])
    return ordered


class LocalRunner:
    """Executes the rendered WorkflowTemplate's DAG with local paths and processes."""

    def __init__(
        self,
        workflow_template: dict[str, Any],
        config_map: dict[str, Any],
        run_dir: Path,
        bin_dir: Path,
        tracking_uri: str,
        parameters: dict[str, str] | None = None,
        workflow_name: str | None = None,
        progress: Callable[[str], None] | None = None,
    ) -> None:
        self.spec = workflow_template["spec"]
        self.templates = {template["name"]: template for template in self.spec["templates"]}
        self.config_map = config_map
        self.run_dir = run_dir
        self.bin_dir = bin_dir
        self.tracking_uri = tracking_uri
        self.workflow_name = workflow_name or f"{workflow_template['metadata']['name']}-local-{uuid.uuid4().hex[:5]}"
        self.progress = progress or (lambda line: print(line, file=sys.stderr, flush=True))

        defaults = {
            item["name"]: str(item.get("value", "")) for item in self.spec.get("arguments", {}).get("parameters", [])
        }
        unknown = sorted(set(parameters or {}) - set(defaults))
        if unknown:
            raise InvalidInputError(
                f"unknown workflow parameter(s) {', '.join(unknown)}; "
                f"the template declares {', '.join(sorted(defaults))}"
            )
        self.parameters = {**defaults, **(parameters or {})}

    # -- paths ---------------------------------------------------------------------

    def mounts(self, task: str) -> dict[str, Path]:
        """Container path -> local folder, for the paths the chart mounts in pipeline pods."""
        return {
            "/workspace": self.run_dir / "workspace",
            "/data": self.run_dir / "data",
            "/etc/mlship": self.run_dir / "config",
            "/tmp": self.run_dir / "tasks" / task / "tmp",  # noqa: S108 (a container path, mapped here)
        }

    def to_local(self, value: str, task: str) -> str:
        for container_path, local_path in self.mounts(task).items():
            if value == container_path or value.startswith(container_path + "/"):
                return str(local_path) + value[len(container_path) :]
        return value

    def write_config_files(self) -> None:
        folder = self.run_dir / "config"
        folder.mkdir(parents=True, exist_ok=True)
        for key, content in (self.config_map.get("data") or {}).items():
            (folder / key).write_text(content, encoding="utf-8")

    # -- planning ------------------------------------------------------------------

    def entry_tasks(self) -> list[dict[str, Any]]:
        entry = self.templates.get(self.spec["entrypoint"])
        if entry is None or "dag" not in entry:
            raise InvalidInputError(f"entry point {self.spec['entrypoint']!r} is not a DAG template")
        return order_tasks(entry["dag"]["tasks"])

    def plan(self, outputs: dict[str, dict[str, str]] | None = None) -> list[TaskPlan]:
        """Resolve every task; outputs of earlier tasks stay as placeholders when unknown."""
        known = outputs or {}
        plans = []
        for task in self.entry_tasks():
            plans.append(self.plan_task(task, known))
        return plans

    def workflow_lookup(self, outputs: dict[str, dict[str, str]]) -> Callable[[str], str]:
        def lookup(key: str) -> str:
            parts = key.split(".")
            if parts[:2] == ["workflow", "parameters"] and parts[2] in self.parameters:
                return self.parameters[parts[2]]
            if key == "workflow.name":
                return self.workflow_name
            if key == "workflow.namespace":
                return "local"
            if len(parts) == 5 and parts[0] == "tasks" and parts[2:4] == ["outputs", "parameters"]:
                return outputs.get(parts[1], {}).get(parts[4], "{{" + key + "}}")
            raise InvalidInputError(f"unsupported Argo expression {{{{{key}}}}} in the WorkflowTemplate")

        return lookup

    def plan_task(self, task: dict[str, Any], outputs: dict[str, dict[str, str]]) -> TaskPlan:
        lookup = self.workflow_lookup(outputs)
        template = self.templates[task["template"]]
        container = template.get("container")
        if container is None:
            raise InvalidInputError(f"template {template['name']} has no container; only container steps run locally")

        arguments = {
            item["name"]: substitute(str(item.get("value", "")), lookup)
            for item in task.get("arguments", {}).get("parameters", [])
        }
        declared = {item["name"]: item for item in template.get("inputs", {}).get("parameters", [])}
        inputs = {name: str(item.get("value", item.get("default", ""))) for name, item in declared.items()}
        inputs.update(arguments)

        def template_lookup(key: str) -> str:
            parts = key.split(".")
            if parts[:2] == ["inputs", "parameters"]:
                if parts[2] not in inputs:
                    raise InvalidInputError(f"template {template['name']} uses undeclared input {parts[2]}")
                return inputs[parts[2]]
            return lookup(key)

        env = {
            item["name"]: self.to_local(substitute(str(item["value"]), template_lookup), task["name"])
            for item in container.get("env", [])
            if "value" in item
        }
        retry = template.get("retryStrategy") or {}
        return TaskPlan(
            name=task["name"],
            template=template["name"],
            dependencies=dependencies_of(task),
            when=substitute(task["when"], lookup) if task.get("when") else None,
            arguments=arguments,
            command=[substitute(str(part), template_lookup) for part in container.get("command", [])],
            args=[substitute(str(part), template_lookup) for part in container.get("args", [])],
            env=env,
            outputs={
                item["name"]: item["valueFrom"]["path"]
                for item in template.get("outputs", {}).get("parameters", [])
                if "path" in item.get("valueFrom", {})
            },
            retry_limit=int(str(retry.get("limit", 0))),
        )

    # -- execution -----------------------------------------------------------------

    def run(self) -> PipelineRun:
        self.run_dir.mkdir(parents=True, exist_ok=True)
        self.write_config_files()
        outputs: dict[str, dict[str, str]] = {}
        results: list[TaskResult] = []
        tasks = self.entry_tasks()
        record = (self.run_dir / "commands.jsonl").open("w", encoding="utf-8")

        for index, task in enumerate(tasks, start=1):
            plan = self.plan_task(task, outputs)
            prefix = f"[{index}/{len(tasks)}] {plan.name}"

            if plan.when is not None and not evaluate_when(plan.when):
                self.progress(f"{prefix}: skipped (when: {plan.when})")
                results.append(TaskResult(plan.name, "Skipped", message=f"when {plan.when} is false"))
                continue

            self.progress(f"{prefix}: running")
            result = self.execute(plan)
            results.append(result)
            outputs[plan.name] = result.outputs
            record.write(json.dumps({"task": plan.name, "command": result.command}) + "\n")
            record.flush()

            if result.status != "Succeeded":
                self.progress(f"{prefix}: failed after {result.seconds:.1f} s (exit code {result.exit_code})")
                break
            self.progress(f"{prefix}: succeeded in {result.seconds:.1f} s")

        record.close()
        return PipelineRun(self.workflow_name, self.run_dir, results)

    def execute(self, plan: TaskPlan) -> TaskResult:
        for folder in self.mounts(plan.name).values():
            folder.mkdir(parents=True, exist_ok=True)
        argv = [self.to_local(part, plan.name) for part in [*plan.command, *plan.args]]
        if argv and "/" not in argv[0] and (self.bin_dir / argv[0]).exists():
            argv[0] = str(self.bin_dir / argv[0])

        # Pods have a read-only root file system and a writable /tmp, so HOME and TMPDIR
        # point at the task's /tmp folder here as well.
        scratch = self.run_dir / "tasks" / plan.name / "tmp"
        environment = {
            **os.environ,
            **plan.env,
            "MLFLOW_TRACKING_URI": self.tracking_uri,
            "TMPDIR": str(scratch),
            "HOME": str(scratch),
        }
        log_path = self.run_dir / "logs" / f"{plan.name}.log"
        log_path.parent.mkdir(parents=True, exist_ok=True)

        started = time.monotonic()
        exit_code = self.run_with_retries(argv, environment, log_path, plan)
        seconds = time.monotonic() - started

        result = TaskResult(
            plan.name, "Succeeded" if exit_code == 0 else "Failed", seconds, command=argv, exit_code=exit_code
        )
        for name, container_path in plan.outputs.items():
            local = Path(self.to_local(container_path, plan.name))
            if local.is_file():
                result.outputs[name] = local.read_text(encoding="utf-8")
        if exit_code != 0:
            result.message = last_error_line(log_path)
        return result

    def run_with_retries(self, argv: list[str], environment: dict[str, str], log_path: Path, plan: TaskPlan) -> int:
        delay = RETRY_BACKOFF_SECONDS
        for attempt in range(plan.retry_limit + 1):
            with log_path.open("a", encoding="utf-8") as log_file:
                process = subprocess.Popen(
                    argv, env=environment, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
                )
                assert process.stdout is not None
                for line in process.stdout:
                    log_file.write(line)
                    self.progress(f"    {plan.name} | {line.rstrip()}")
                exit_code = process.wait()
            if exit_code != EXIT_TEMPORARY or attempt == plan.retry_limit:
                return exit_code
            self.progress(
                f"    {plan.name}: exit code {exit_code}, retry {attempt + 1} of {plan.retry_limit} in {delay:.0f} s"
            )
            time.sleep(delay)
            delay *= 2
        return exit_code


def last_error_line(log_path: Path) -> str:
    lines = [line for line in log_path.read_text(encoding="utf-8").splitlines() if "error" in line.lower()]
    return lines[-1] if lines else ""


def build_runner(
    environment: str,
    run_dir: Path,
    tracking_uri: str,
    bin_dir: Path,
    extra_values: Sequence[Path] = (),
    set_values: Sequence[str] = (),
    parameters: dict[str, str] | None = None,
    progress: Callable[[str], None] | None = None,
) -> LocalRunner:
    """Render the chart for ``environment`` and return a runner for its pipeline."""
    values = [environment_values_file(environment), *extra_values]
    objects = render_chart(values, show_only=[WORKFLOW_TEMPLATE, PIPELINE_CONFIGMAP], set_values=set_values)
    workflow_template = find_object(objects, "WorkflowTemplate", "-pipeline")
    config_map = find_object(objects, "ConfigMap", "-pipeline-config")
    return LocalRunner(workflow_template, config_map, run_dir, bin_dir, tracking_uri, parameters, progress=progress)


def git_commit() -> str:
    """Return the current commit of the repository, or ``unknown`` outside a checkout."""
    result = subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True, check=False)
    return result.stdout.strip() if result.returncode == 0 else "unknown"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--env", default="dev", help="environment: the name of a file in values/ (default: dev)")
    parser.add_argument("--values", action="append", default=[], type=Path, help="extra values file (repeatable)")
    parser.add_argument("--set", action="append", default=[], dest="set_values", help="extra helm --set (repeatable)")
    parser.add_argument("--run-dir", type=Path, default=Path(".run/pipeline"), help="folder for mounts and logs")
    parser.add_argument("--param", action="append", default=[], help="workflow parameter NAME=VALUE (repeatable)")
    parser.add_argument(
        "--bin-dir",
        type=Path,
        default=Path(sys.prefix) / "bin",
        help="folder with the mlship command of the steps environment",
    )


def run(args: argparse.Namespace) -> int:
    parameters = dict(item.split("=", 1) for item in args.param)
    parameters.setdefault("git-commit", git_commit())
    tracking_uri = os.environ.get("MLFLOW_TRACKING_URI", "")
    if not tracking_uri:
        raise InvalidInputError("MLFLOW_TRACKING_URI is not set; point it at a running MLflow server")
    runner = build_runner(
        args.env, args.run_dir.resolve(), tracking_uri, args.bin_dir, args.values, args.set_values, parameters
    )
    result = runner.run()
    for task in result.results:
        print(f"{task.name:<16} {task.status:<10} {task.seconds:6.1f} s  {task.message}")
    if not result.succeeded:
        raise GateFailedError(f"pipeline {result.workflow_name} failed; logs in {result.run_dir / 'logs'}")
    return 0
