"""Units of the local runner: `when` evaluation, DAG order, expression substitution."""

from __future__ import annotations

import pytest

from mlship.errors import InvalidInputError
from mlship.local_runner import evaluate_when, order_tasks, substitute


@pytest.mark.parametrize(
    ("expression", "expected"),
    [
        ("true == true", True),
        ("false == true", False),
        ("true == true && false == true", False),
        ("true == true && true == true", True),
        ("false == true || true == true", True),
        ("'a' != 'b'", True),
        ("true", True),
        ("false", False),
    ],
)
def test_when_expressions(expression: str, expected: bool) -> None:
    assert evaluate_when(expression) is expected


def test_when_rejects_unsupported_expression() -> None:
    with pytest.raises(InvalidInputError, match="unsupported when expression"):
        evaluate_when("{{tasks.a.outputs.result}} > 3")


def test_order_follows_dependencies() -> None:
    tasks = [
        {"name": "register", "dependencies": ["validate", "benchmark"]},
        {"name": "benchmark", "depends": "train.Succeeded"},
        {"name": "train"},
        {"name": "validate", "dependencies": ["train"]},
    ]

    names = [task["name"] for task in order_tasks(tasks)]

    assert names == ["train", "benchmark", "validate", "register"]


def test_order_rejects_cycle() -> None:
    with pytest.raises(InvalidInputError, match="cycle"):
        order_tasks([{"name": "a", "dependencies": ["b"]}, {"name": "b", "dependencies": ["a"]}])


def test_order_rejects_unknown_dependency() -> None:
    with pytest.raises(InvalidInputError, match="unknown task"):
        order_tasks([{"name": "a", "dependencies": ["ghost"]}])


def test_substitute_replaces_each_expression() -> None:
    values = {"inputs.parameters.data": "/workspace/x.csv", "workflow.name": "wf-1"}

    assert substitute("--data={{inputs.parameters.data}} {{ workflow.name }}", values.__getitem__) == (
        "--data=/workspace/x.csv wf-1"
    )
