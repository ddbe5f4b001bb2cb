"""Expressions (`when`, `until`) and `{{ }}` templates: parsed at load time, run in a sandbox."""

from __future__ import annotations

import pytest

from tempeh_tui.definition.expressions import (
    ExpressionError,
    evaluate,
    parse_expression,
    parse_template,
    render_template,
)
from tests.definition.support import assert_problem, load, the_problem


def test_an_expression_lists_the_params_and_steps_it_reads() -> None:
    refs = parse_expression("steps['build'].outputs.url and params.region == 'eu'")
    assert refs.params == {"region"}
    assert refs.steps == {"build"}
    assert {"steps", "params"} <= refs.names


def test_an_expression_may_be_written_inside_braces() -> None:
    assert parse_expression("{{ params.x }}") == parse_expression("params.x")
    assert evaluate("{{ params.x == 'a' }}", {"params": {"x": "a"}}) is True


@pytest.mark.parametrize("source", ["1 +", "a b", "", "   ", "params.", "{% if x %}"])
def test_an_expression_that_does_not_parse_is_refused(source: str) -> None:
    with pytest.raises(ExpressionError, match=r"does not parse|empty expression"):
        parse_expression(source)


def test_a_template_with_an_unclosed_expression_is_refused() -> None:
    with pytest.raises(ExpressionError, match="does not parse"):
        parse_template("Ship {{ params.version ?")


def test_an_expression_is_evaluated_with_the_run_context() -> None:
    context = {"params": {"region": "eu"}, "steps": {"build": {"status": "succeeded"}}}
    assert evaluate("steps['build'].status == 'succeeded' and params.region == 'eu'", context)
    assert evaluate("params.region in ['us', 'asia']", context) is False


def test_a_template_renders_its_values() -> None:
    rendered = render_template("Roll out {{ params.version }}?", {"params": {"version": "1.4.2"}})
    assert rendered == "Roll out 1.4.2?"


def test_a_missing_value_in_an_expression_is_an_error_not_false() -> None:
    with pytest.raises(ExpressionError, match="has no attribute 'healthy'"):
        evaluate("outputs.healthy", {"outputs": {}})


def test_a_missing_value_in_a_template_is_an_error_not_empty_text() -> None:
    with pytest.raises(ExpressionError, match="has no attribute 'nope'"):
        render_template("v={{ params.nope }}", {"params": {}})


def test_the_sandbox_refuses_python_internals() -> None:
    with pytest.raises(ExpressionError, match="unsafe"):
        evaluate("''.__class__.__mro__[1].__subclasses__()", {})
    with pytest.raises(ExpressionError, match="unsafe"):
        evaluate("params.__class__", {"params": {}})


def test_the_sandbox_refuses_a_huge_range() -> None:
    with pytest.raises(ExpressionError, match="Range too big"):
        evaluate("range(10**9) | list | length", {})


def test_the_sandbox_does_not_let_an_expression_change_the_context() -> None:
    params = {"items": ["a"]}
    with pytest.raises(ExpressionError, match="unsafe"):
        evaluate("params['items'].append('b')", {"params": params})
    assert params == {"items": ["a"]}


# --- expression problems in a workflow ------------------------------------------------------


def test_an_unknown_name_in_when_suggests_the_closest_context_name() -> None:
    problem = the_problem(
        """
        name: shop
        params: {region: eu}
        steps:
          - name: build
            run: make
            when: "parms.region == 'eu'"
        """
    )
    assert_problem(
        problem, 6, 11, "step 'build': when", "unknown name 'parms'", "did you mean 'params'"
    )


def test_outputs_in_when_is_refused_because_they_do_not_exist_yet() -> None:
    problem = the_problem(
        """
        name: shop
        steps:
          - name: build
            run: make
            when: "outputs.ok == 'true'"
        """
    )
    assert_problem(problem, 5, 11, "'outputs' (this step's) is not known before the step runs")


def test_iteration_outside_until_is_refused() -> None:
    problem = the_problem(
        """
        name: shop
        steps:
          - name: build
            run: make --try {{ iteration }}
        """
    )
    assert_problem(problem, 4, 10, "'iteration' is only defined in a step with until")


def test_a_step_cannot_read_its_own_status() -> None:
    problem = the_problem(
        """
        name: shop
        steps:
          - name: build
            run: make
            until: "steps['build'].status == 'succeeded'"
            max_iterations: 3
        """
    )
    assert_problem(problem, 5, 12, "cannot read its own status", "use 'outputs'")


def test_an_unknown_step_in_an_expression_suggests_the_closest_step() -> None:
    problem = the_problem(
        """
        name: shop
        steps:
          - name: build
            run: make
          - name: notify
            needs: [build]
            run: ./notify.sh
            when: "steps['biuld'].status == 'failed'"
        """
    )
    assert_problem(problem, 8, 11, "unknown step 'biuld'", "did you mean 'build'")


def test_a_bad_template_in_an_env_value_is_an_error() -> None:
    problem = the_problem(
        """
        name: shop
        steps:
          - name: build
            run: make
            env: {VERSION: "{{ params.version"}
        """
    )
    assert_problem(problem, 5, 20, "step 'build': env.VERSION", "does not parse")


def test_a_bad_template_in_a_cache_key_is_an_error() -> None:
    problem = the_problem(
        """
        name: shop
        steps:
          - name: build
            run: make
            cache: {key: "{{ params.version + }}"}
        """
    )
    assert_problem(problem, 5, 18, "step 'build': cache.key", "does not parse")


def test_the_specs_expressions_all_load() -> None:
    workflow = load(
        """
        name: shop
        params: {version: "1.4.2"}
        steps:
          - name: deploy-region
            for_each: [eu-1, us-1]
            run: ./deploy.sh --region {{ item }} --version {{ params.version }}
          - name: smoke
            needs: [deploy-region]
            run: ./smoke.sh {{ run.id }} {{ workflow.name }} {{ env.HOME }}
            until: "outputs.healthy == 'true' or iteration > 3"
            max_iterations: 10
            interval: 5s
          - name: notify
            needs: [smoke]
            when: "steps['smoke'].status == 'succeeded'"
            confirm: "Tell everyone about {{ params.version }}?"
            run: ./notify.sh {{ steps['smoke'].outputs.url }}
        """
    )
    assert [s.name for s in workflow.steps] == ["deploy-region", "smoke", "notify"]


@pytest.mark.parametrize(
    ("value", "words"),
    [
        ("{{ params.x ++ }}", ["env.P", "does not parse"]),
        ("{{ params.nope }}", ["env.P", "unknown param 'nope'", "declared: region"]),
        ("{{ item }}", ["env.P", "'item' is not known when the workflow's env is made"]),
        ("{{ steps['a'].status }}", ["'steps' is not known"]),
    ],
)
def test_the_workflows_env_is_checked_before_anything_runs(value: str, words: list[str]) -> None:
    problem = the_problem(
        f"""
        name: w
        params: {{region: {{default: eu}}}}
        env:
          P: "{value}"
        steps:
          - {{name: a, run: make}}
        """
    )
    assert_problem(problem, 4, 6, *words)


def test_the_workflows_env_may_read_params_env_run_and_the_workflow() -> None:
    load(
        """
        name: w
        params: {region: {default: eu}}
        env:
          R: "{{ params.region }}-{{ run.id }}"
          S: "{{ env.R }}/{{ workflow.name }}/{{ env.HOME | default('') }}"
        steps:
          - {name: a, run: make}
        """
    )


@pytest.mark.parametrize(
    ("when", "words"),
    [
        ("params.x | nope", "No filter named 'nope'"),
        ("params.x is nope", "No test named 'nope'"),
        ("1 if params.x is nope else 2", "No test named 'nope'"),  # Jinja defers this one
        ("[params.x] | map('nope') | first", "No filter named 'nope' (in map)"),
        ("[1] | select('nope') | list", "No test named 'nope' (in select)"),
    ],
)
def test_an_unknown_filter_or_test_is_a_problem_not_a_crash(when: str, words: str) -> None:
    problem = the_problem(
        f"""
        name: w
        params: {{x: {{default: "1"}}}}
        steps:
          - {{name: a, run: make, when: "{when}"}}
        """
    )
    assert_problem(problem, 4, 32, "when: expression does not parse", words)


def test_filters_and_tests_named_as_text_that_exist_are_fine() -> None:
    load(
        """
        name: w
        params: {x: {default: "1"}}
        steps:
          - {name: a, run: make, when: "[params.x] | map('int') | select('odd') | list"}
        """
    )


@pytest.mark.parametrize(
    "source",
    ["(" * 200 + "true" + ")" * 200, " or ".join(["true"] * 800), "-" * 5000 + "1"],
)
def test_an_expression_too_deep_to_parse_is_an_error_not_a_crash(source: str) -> None:
    """Python's recursion limit ended the parse with a traceback (validate exited 1)."""
    with pytest.raises(ExpressionError, match="nested too deeply"):
        parse_expression(source)
    with pytest.raises(ExpressionError, match="nested too deeply"):
        parse_template("{{ " + source + " }}")
