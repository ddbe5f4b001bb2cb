"""Helpers for the definition tests: load YAML text and look at the problems it has."""

from __future__ import annotations

import textwrap

import pytest

from tempeh_tui.definition import Workflow, parse_workflow
from tempeh_tui.errors import Problem, WorkflowError

SOURCE = "deploy.yaml"


def load(yaml: str) -> Workflow:
    """The workflow in `yaml` (dedented), read as if from deploy.yaml."""
    return parse_workflow(textwrap.dedent(yaml).lstrip("\n"), SOURCE)


def problems_in(yaml: str) -> tuple[Problem, ...]:
    """Every problem loading `yaml` reports; fails the test if it loads."""
    with pytest.raises(WorkflowError) as caught:
        load(yaml)
    return caught.value.problems


def the_problem(yaml: str) -> Problem:
    """The one problem in `yaml`; fails the test if there are none or several."""
    problems = problems_in(yaml)
    assert len(problems) == 1, "\n".join(str(p) for p in problems)
    return problems[0]


def assert_problem(problem: Problem, line: int, col: int, *words: str) -> None:
    """`problem` stands at line:col of deploy.yaml and says each of `words`."""
    assert (problem.source, problem.line, problem.col) == (SOURCE, line, col), str(problem)
    for word in words:
        assert word in problem.message, f"{word!r} not in {problem.message!r}"
