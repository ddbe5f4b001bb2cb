"""The Python API: `load_workflow` from a path, a str, a dict or a Workflow; frozen models."""

from __future__ import annotations

import textwrap
from pathlib import Path
from typing import Any

import pydantic
import pytest

import tempeh_tui
from tempeh_tui import Workflow, WorkflowError, load_workflow
from tempeh_tui.definition import parse_workflow
from tempeh_tui.definition.params import parse_param_assignments, resolve_params
from tempeh_tui.errors import TempehError
from tests.definition.support import assert_problem, load

SAMPLES = sorted((Path(__file__).parents[2] / "sample_workflows").glob("*.yaml"))

# The example of the seed's README (tempeh-workflow-README.md), as a Python dict.
SEED_EXAMPLE: dict[str, Any] = {
    "name": "production-deployment",
    "description": "Deploy to production environment",
    "steps": [
        {"name": "validate-config", "command": "validate", "dependencies": []},
        {
            "name": "deploy-database",
            "command": "deploy",
            "dependencies": ["validate-config"],
            "parallel": True,
        },
        {
            "name": "deploy-application",
            "command": "deploy",
            "dependencies": ["deploy-database"],
            "parallel": False,
        },
    ],
}

SEED_EXAMPLE_YAML = """\
name: production-deployment
description: Deploy to production environment
steps:
  - name: validate-config
    command: validate
    dependencies: []
  - name: deploy-database
    command: deploy
    dependencies: [validate-config]
    parallel: true
  - name: deploy-application
    command: deploy
    dependencies: [deploy-database]
    parallel: false
"""


@pytest.fixture
def seed_file(tmp_path: Path) -> Path:
    path = tmp_path / "production-deployment.yaml"
    path.write_text(SEED_EXAMPLE_YAML, encoding="utf-8")
    return path


def test_the_package_exports_load_workflow_and_workflow() -> None:
    assert tempeh_tui.load_workflow is load_workflow
    assert tempeh_tui.Workflow is Workflow
    assert {"load_workflow", "Workflow", "WorkflowError"} <= set(tempeh_tui.__all__)


def test_the_seeds_step_form_is_read_as_run_needs_and_exclusive() -> None:
    workflow = load_workflow(SEED_EXAMPLE)
    steps = {s.name: s for s in workflow.steps}
    assert steps["validate-config"].run == "validate"
    assert steps["validate-config"].needs == ()
    assert steps["deploy-database"].needs == ("validate-config",)
    assert steps["deploy-database"].exclusive is False
    assert steps["deploy-application"].exclusive is True


def test_the_seeds_dict_and_the_same_yaml_file_give_equal_workflows(seed_file: Path) -> None:
    from_dict = load_workflow(SEED_EXAMPLE)
    from_file = load_workflow(seed_file)
    assert from_dict == from_file
    assert from_dict.fingerprint() == from_file.fingerprint()
    assert hash(from_dict) == hash(from_file)


def test_a_path_given_as_str_or_path_loads_the_same(seed_file: Path) -> None:
    assert load_workflow(str(seed_file)) == load_workflow(seed_file)


def test_a_workflow_is_returned_as_it_is() -> None:
    workflow = load_workflow(SEED_EXAMPLE)
    assert load_workflow(workflow) is workflow


def test_loading_leaves_the_callers_dict_unchanged() -> None:
    data = {"name": "w", "steps": [{"name": "a", "command": "x", "parallel": False}]}
    load_workflow(data)
    assert data == {"name": "w", "steps": [{"name": "a", "command": "x", "parallel": False}]}


def test_a_workflow_and_its_steps_are_frozen() -> None:
    workflow = load_workflow(SEED_EXAMPLE)
    with pytest.raises(pydantic.ValidationError, match="frozen"):
        workflow.name = "other"  # type: ignore[misc]
    with pytest.raises(pydantic.ValidationError, match="frozen"):
        workflow.steps[0].run = "rm -rf /"  # type: ignore[misc]
    assert isinstance(workflow.steps, tuple)


def test_a_workflow_remembers_where_it_was_read_from(seed_file: Path) -> None:
    workflow = load_workflow(seed_file)
    assert workflow.source_map is not None
    assert workflow.source_map.source == str(seed_file)
    assert workflow.source_map.values[("steps", 2, "parallel")] == (14, 15)


def test_errors_from_a_dict_name_the_path_of_the_culprit() -> None:
    data = {
        "name": "w",
        "steps": [
            {"name": "a", "command": "x"},
            {"name": "b", "dependencies": ["aa"], "command": "x", "timeout": "5x"},
        ],
    }
    with pytest.raises(WorkflowError) as caught:
        load_workflow(data)
    problems = caught.value.problems
    assert [(p.source, p.line, p.path) for p in problems] == [
        ("<dict>", None, "steps[1].dependencies[0]"),
        ("<dict>", None, "steps[1].timeout"),
    ]
    assert "needs unknown step 'aa' (did you mean 'a'?)" in problems[0].message
    assert str(problems[0]).startswith("<dict>: steps[1].dependencies[0]: step 'b' needs")


def test_every_problem_is_a_workflow_error_which_is_a_tempeh_error(tmp_path: Path) -> None:
    with pytest.raises(TempehError):
        load_workflow(tmp_path / "missing.yaml")
    with pytest.raises(WorkflowError):
        load_workflow({"name": "w"})


def test_a_workflow_built_directly_is_still_checked_across_values() -> None:
    with pytest.raises(WorkflowError, match="needs unknown step 'b'"):
        Workflow.model_validate({"name": "w", "steps": [{"name": "a", "needs": ["b"], "run": "x"}]})


def test_the_error_text_is_one_file_line_col_line_per_problem(tmp_path: Path) -> None:
    path = tmp_path / "deploy.yaml"
    path.write_text(
        textwrap.dedent(
            """\
            name: shop
            steps:
              - {name: a, needs: [zz], run: "true"}
              - {name: b, run: "true", timeout: 5x}
            """
        )
    )
    with pytest.raises(WorkflowError) as caught:
        load_workflow(path)
    lines = str(caught.value).splitlines()
    assert len(lines) == 2
    assert lines[0] == f"{path}:3:23: step 'a' needs unknown step 'zz' (steps: b)"
    assert lines[1].startswith(f"{path}:4:37: step 'b': timeout: '5x' is not a duration")


# --- defaults -------------------------------------------------------------------------------


def test_defaults_apply_to_steps_that_do_not_set_the_key_and_not_to_those_that_do() -> None:
    workflow = load(
        """
        name: shop
        defaults:
          timeout: 10m
          retry: {attempts: 3}
          exclusive: true
          max_parallel: 2
        steps:
          - name: plain
            run: make
          - name: own
            run: make
            timeout: 30s
            retry: {attempts: 1}
            exclusive: false
          - name: fan
            for_each: [a, b, c]
            run: make {{ item }}
        """
    )
    plain, own, fan = workflow.steps
    assert (plain.timeout, plain.exclusive) == (600.0, True)
    assert plain.retry is not None
    assert plain.retry.attempts == 3
    assert (own.timeout, own.exclusive) == (30.0, False)
    assert own.retry is not None
    assert own.retry.attempts == 1
    assert plain.max_parallel is None  # only for_each steps take max_parallel
    assert fan.max_parallel == 2


def test_defaults_may_give_any_step_key_and_keys_that_go_together_go_together() -> None:
    workflow = load(
        """
        name: shop
        params: {go: {default: "yes"}}
        defaults:
          needs: [preflight]
          run: ./default.sh
          rollback: ./undo.sh
          verify: ./check.sh
          when: "params.go == 'yes'"
          until: "outputs.ok == '1'"
          max_iterations: 3
          interval: 1s
          cache: {key: "{{ params.go }}"}
        steps:
          - {name: preflight, run: ./preflight.sh}
          - {name: plain}
          - {name: py, python: "tools.mod:fn", until: null}
          - {name: gate, confirm: "Ship?"}
        """
    )
    preflight, plain, py, gate = workflow.steps
    assert preflight.needs == ()  # not a need of its own
    assert (plain.needs, plain.run, plain.verify) == (("preflight",), "./default.sh", "./check.sh")
    assert plain.rollback is not None
    assert plain.rollback.run == "./undo.sh"
    assert (plain.until, plain.max_iterations, plain.interval) == ("outputs.ok == '1'", 3, 1.0)
    assert plain.cache is not None
    assert (py.run, py.until, py.max_iterations, py.interval) == (None, None, None, None)
    assert (gate.run, gate.confirm, gate.when) == (None, "Ship?", "params.go == 'yes'")


def test_the_seeds_parallel_true_is_not_overridden_by_exclusive_defaults() -> None:
    workflow = load(
        """
        name: shop
        defaults: {exclusive: true}
        steps:
          - {name: a, command: make, parallel: true}
        """
    )
    assert workflow.steps[0].exclusive is False


# --- params ---------------------------------------------------------------------------------

PARAMS = """
    name: shop
    params:
      version: {default: "1.4.2", description: Release to deploy}
      region:  {required: true, choices: [eu, us]}
    steps:
      - {name: deploy, run: "./deploy.sh {{ params.version }} {{ params.region }}"}
"""


def test_params_take_given_values_and_fall_back_to_defaults() -> None:
    values = resolve_params(load(PARAMS), {"region": "eu"})
    assert values == {"version": "1.4.2", "region": "eu"}


def test_a_required_param_without_a_value_says_how_to_give_it() -> None:
    with pytest.raises(WorkflowError) as caught:
        resolve_params(load(PARAMS), {})
    [problem] = caught.value.problems
    assert_problem(problem, 4, 3, "param 'region' is required", "-p region=VALUE", "one of eu, us")


def test_a_value_outside_the_choices_is_refused() -> None:
    with pytest.raises(WorkflowError) as caught:
        resolve_params(load(PARAMS), {"region": "asia"})
    [problem] = caught.value.problems
    assert_problem(problem, 4, 3, "param 'region' is 'asia'", "expected one of eu, us")


def test_an_unknown_param_name_suggests_the_closest_param() -> None:
    with pytest.raises(WorkflowError) as caught:
        resolve_params(load(PARAMS), {"regoin": "eu", "region": "eu"})
    [problem] = caught.value.problems
    assert "-p regoin: workflow 'shop' has no param 'regoin'" in problem.message
    assert "did you mean 'region'" in problem.message


def test_every_param_problem_is_reported_at_once() -> None:
    with pytest.raises(WorkflowError) as caught:
        resolve_params(load(PARAMS), {"verison": "2"})
    messages = [p.message for p in caught.value.problems]
    assert len(messages) == 2
    assert any("did you mean 'version'" in m for m in messages)
    assert any("param 'region' is required" in m for m in messages)


def test_a_default_outside_the_choices_is_a_load_error() -> None:
    with pytest.raises(WorkflowError, match=r"default 'asia' is not one of the choices \(eu, us\)"):
        load(
            """
            name: shop
            params:
              region: {default: asia, choices: [eu, us]}
            steps:
              - {name: a, run: echo}
            """
        )


def test_param_assignments_split_at_the_first_equals_sign() -> None:
    assert parse_param_assignments(["a=1", "b=x=y", "c="]) == {"a": "1", "b": "x=y", "c": ""}


def test_a_param_assignment_without_equals_sign_is_refused() -> None:
    with pytest.raises(WorkflowError, match="-p version: expected NAME=VALUE"):
        parse_param_assignments(["version"])


# --- samples --------------------------------------------------------------------------------


def test_the_samples_are_there() -> None:
    assert len(SAMPLES) >= 4


@pytest.mark.parametrize("sample", SAMPLES, ids=[p.name for p in SAMPLES])
def test_every_sample_workflow_validates(sample: Path) -> None:
    workflow = load_workflow(sample)
    assert workflow.steps


@pytest.mark.parametrize(
    ("given", "expected"),
    [("false", False), ("False", False), ("no", False), ("0", False), ("true", True), ("on", True)],
)
@pytest.mark.parametrize("declared", ["{default: true}", "{default: true, choices: [true, false]}"])
def test_a_boolean_param_takes_true_or_false_from_the_command_line(
    declared: str, given: str, expected: bool
) -> None:
    workflow = load(
        f"""
        name: w
        params:
          dry_run: {declared}
        steps:
          - {{name: deploy, run: make, when: "not params.dry_run"}}
        """
    )
    assert resolve_params(workflow, {"dry_run": given}) == {"dry_run": expected}


def test_a_boolean_param_refuses_other_words() -> None:
    workflow = load(
        """
        name: w
        params:
          dry_run: {default: false}
        steps:
          - {name: deploy, run: make}
        """
    )
    with pytest.raises(WorkflowError, match="param 'dry_run' is a boolean, so 'maybe'"):
        resolve_params(workflow, {"dry_run": "maybe"})


def test_a_param_holding_code_in_brackets_is_refused() -> None:
    workflow = load(
        """
        name: w
        params: {replicas: {default: "2"}, pattern: {default: "^v[0-9]+$"}}
        steps:
          - {name: scale, run: ./scale.sh}
        """
    )
    assert resolve_params(workflow, {})["pattern"] == "^v[0-9]+$"  # its $ is outside
    with pytest.raises(WorkflowError, match=r"param 'replicas' holds a '\$' or '`' in an array"):
        resolve_params(workflow, {"replicas": "a[$(touch PWNED)]"})


def test_default_needs_are_not_given_to_any_step_they_name() -> None:
    workflow = load(
        """
        name: w
        defaults: {needs: [checkout, lint]}
        steps:
          - {name: checkout, run: git pull}
          - {name: lint, run: make lint}
          - {name: build, run: make}
        """
    )
    assert [s.needs for s in workflow.steps] == [(), (), ("checkout", "lint")]


@pytest.mark.parametrize(("word", "exclusive"), [("yes", False), ("no", True), ("off", True)])
def test_the_seeds_parallel_takes_yes_and_no_as_exclusive_does(word: str, exclusive: bool) -> None:
    """YAML 1.2 reads `parallel: no` as text; `exclusive: no` was taken, `parallel: no` refused."""
    text = f"name: w\nsteps:\n  - {{name: a, command: x, parallel: {word}}}\n"
    assert parse_workflow(text, "w.yaml").steps[0].exclusive is exclusive


def test_a_parallel_that_is_no_boolean_says_what_it_got() -> None:
    with pytest.raises(WorkflowError) as caught:
        parse_workflow("name: w\nsteps:\n  - {name: a, command: x, parallel: maybe}\n", "w.yaml")
    assert "parallel: expected true or false, got 'maybe'" in str(caught.value.problems[0])
