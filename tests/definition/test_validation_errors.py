"""`tempeh validate` problems: each at its line:col, saying what is wrong and what is expected."""

from __future__ import annotations

import pytest

from tests.definition.support import SOURCE, assert_problem, load, problems_in, the_problem

# --- unknown keys ---------------------------------------------------------------------------


def test_a_misspelt_step_key_suggests_the_closest_key() -> None:
    problem = the_problem(
        """
        name: shop
        steps:
          - name: build
            run: make
            timout: 5m
        """
    )
    assert_problem(problem, 5, 5, "unknown key 'timout'", "step 'build'", "did you mean 'timeout'")


def test_an_unknown_step_key_with_no_close_match_lists_the_allowed_keys() -> None:
    problem = the_problem(
        """
        name: shop
        steps:
          - name: build
            run: make
            colour: blue
        """
    )
    assert_problem(problem, 5, 5, "unknown key 'colour'", "allowed:")
    assert "did you mean" not in problem.message
    for key in ("run", "needs", "command", "dependencies", "parallel", "max_iterations"):
        assert key in problem.message.split("allowed:")[1]


def test_an_unknown_top_level_key_suggests_the_closest_key() -> None:
    problem = the_problem(
        """
        name: shop
        stpes: []
        steps:
          - {name: build, run: make}
        """
    )
    assert_problem(problem, 2, 1, "unknown key 'stpes'", "the workflow", "did you mean 'steps'")


def test_an_unknown_top_level_key_with_no_close_match_lists_the_allowed_keys() -> None:
    problem = the_problem(
        """
        name: shop
        owner: alice
        steps:
          - {name: build, run: make}
        """
    )
    assert_problem(problem, 2, 1, "unknown key 'owner'", "allowed:", "max_concurrency", "steps")


def test_an_unknown_retry_key_names_the_retry_and_suggests_the_closest_key() -> None:
    problem = the_problem(
        """
        name: shop
        steps:
          - name: build
            run: make
            retry: {attempts: 3, delya: 1s}
        """
    )
    assert_problem(
        problem, 5, 26, "unknown key 'delya'", "retry of step 'build'", "did you mean 'delay'"
    )


def test_an_unknown_retry_key_lists_the_retry_keys_not_the_step_keys() -> None:
    problem = the_problem(
        """
        name: shop
        steps:
          - name: build
            run: make
            retry: {zzz: 1}
        """
    )
    assert_problem(problem, 5, 13, "unknown key 'zzz'", "retry of step 'build'")
    allowed = problem.message.split("allowed:")[1]
    assert "attempts" in allowed
    assert "needs" not in allowed


def test_an_unknown_rollback_key_lists_the_rollback_keys() -> None:
    problem = the_problem(
        """
        name: shop
        steps:
          - name: migrate
            run: ./migrate.sh
            rollback: {run: ./migrate.sh --down, bogus: 1}
        """
    )
    assert_problem(problem, 5, 42, "unknown key 'bogus'", "rollback of step 'migrate'")
    assert "run, timeout, verify" in problem.message


def test_an_unknown_defaults_key_suggests_the_closest_step_key() -> None:
    problem = the_problem(
        """
        name: shop
        defaults:
          timeot: 5s
        steps:
          - {name: build, run: make}
        """
    )
    assert_problem(problem, 3, 3, "unknown key 'timeot'", "defaults", "did you mean 'timeout'")


def test_an_unknown_param_key_suggests_the_closest_param_key() -> None:
    problem = the_problem(
        """
        name: shop
        params:
          version: {defualt: "1.4.2"}
        steps:
          - {name: build, run: make}
        """
    )
    assert_problem(
        problem, 3, 13, "unknown key 'defualt'", "param 'version'", "did you mean 'default'"
    )


# --- needs, names and cycles ----------------------------------------------------------------


def test_an_unknown_need_suggests_the_closest_step_name() -> None:
    problem = the_problem(
        """
        name: shop
        steps:
          - name: validate-config
            run: ./validate.sh
          - name: migrate-db
            needs: [validate-cfg]
            run: ./migrate.sh
        """
    )
    assert_problem(
        problem,
        6,
        13,
        "step 'migrate-db' needs unknown step 'validate-cfg'",
        "did you mean 'validate-config'",
    )


def test_an_unknown_seed_dependency_points_at_the_dependencies_entry() -> None:
    problem = the_problem(
        """
        name: shop
        steps:
          - name: validate-config
            command: ./validate.sh
          - name: migrate-db
            dependencies: [validate-config, migrat]
            command: ./migrate.sh
        """
    )
    assert_problem(problem, 6, 37, "needs unknown step 'migrat'")


def test_a_duplicate_step_name_points_at_the_second_and_names_the_first() -> None:
    problem = the_problem(
        """
        name: shop
        steps:
          - name: build
            run: make
          - name: build
            run: make again
        """
    )
    assert_problem(problem, 5, 11, "duplicate step name 'build'", "also step 1", "unique")


def test_a_step_that_needs_itself_is_an_error() -> None:
    problem = the_problem(
        """
        name: shop
        steps:
          - name: build
            needs: [build]
            run: make
        """
    )
    assert_problem(problem, 4, 13, "step 'build' needs itself")


def test_a_two_step_cycle_is_spelled_out() -> None:
    problem = the_problem(
        """
        name: shop
        steps:
          - name: a
            needs: [b]
            run: "true"
          - name: b
            needs: [a]
            run: "true"
        """
    )
    assert_problem(problem, 4, 13, "dependency cycle: a → b → a")


def test_a_three_step_cycle_is_spelled_out_in_needs_order() -> None:
    problem = the_problem(
        """
        name: shop
        steps:
          - name: a
            needs: [c]
            run: "true"
          - name: b
            needs: [a]
            run: "true"
          - name: c
            needs: [b]
            run: "true"
        """
    )
    # a needs c, c needs b, b needs a
    assert_problem(problem, 4, 13, "dependency cycle: a → c → b → a", "each step needs the next")


def test_a_cycle_is_reported_once_even_with_other_steps_around_it() -> None:
    problems = problems_in(
        """
        name: shop
        steps:
          - {name: start, run: "true"}
          - {name: x, needs: [start, y], run: "true"}
          - {name: y, needs: [x], run: "true"}
          - {name: end, needs: [y], run: "true"}
        """
    )
    assert [p.message.split(" (")[0] for p in problems] == ["dependency cycle: x → y → x"]


# --- durations ------------------------------------------------------------------------------


@pytest.mark.parametrize(("written", "seconds"), [("1m30s", 90.0), ("500ms", 0.5), ("12", 12.0)])
def test_durations_in_the_documented_forms_are_read_as_seconds(
    written: str, seconds: float
) -> None:
    workflow = load(
        f"""
        name: shop
        steps:
          - name: build
            run: make
            timeout: {written}
        """
    )
    assert workflow.steps[0].timeout == seconds


@pytest.mark.parametrize("written", ["5x", "-1s", "ten", "5 minutes", "1s5"])
def test_a_bad_duration_says_which_forms_are_expected(written: str) -> None:
    problem = the_problem(
        f"""
        name: shop
        steps:
          - name: build
            run: make
            timeout: {written}
        """
    )
    assert_problem(problem, 5, 14, "step 'build'", "timeout", f"'{written}'", "500ms", "30s")


def test_a_negative_number_of_seconds_is_refused() -> None:
    problem = the_problem(
        """
        name: shop
        defaults:
          timeout: -5
        steps:
          - {name: build, run: make}
        """
    )
    assert_problem(problem, 3, 12, "defaults.timeout", "0 or more")


# --- resources ------------------------------------------------------------------------------


def test_an_unknown_resource_pool_suggests_the_closest_pool() -> None:
    problem = the_problem(
        """
        name: shop
        resources: {db: 1, api: 3}
        steps:
          - name: migrate
            run: ./migrate.sh
            resources: {dbb: 1}
        """
    )
    assert_problem(
        problem, 6, 17, "step 'migrate' claims unknown resource pool 'dbb'", "did you mean 'db'"
    )


def test_an_unknown_resource_pool_with_no_close_match_lists_the_pools() -> None:
    problem = the_problem(
        """
        name: shop
        resources: {db: 1, api: 3}
        steps:
          - {name: migrate, run: ./migrate.sh, resources: {gpu: 1}}
        """
    )
    assert_problem(problem, 4, 52, "unknown resource pool 'gpu'", "pools: api, db")


def test_a_resource_claim_without_any_pools_says_where_to_declare_them() -> None:
    problem = the_problem(
        """
        name: shop
        steps:
          - {name: migrate, run: ./migrate.sh, resources: {db: 1}}
        """
    )
    assert_problem(problem, 3, 52, "unknown resource pool 'db'", "resources:")


def test_a_claim_above_the_pools_capacity_could_never_start() -> None:
    problem = the_problem(
        """
        name: shop
        resources: {db: 1, api: 3}
        steps:
          - name: deploy
            run: ./deploy.sh
            resources: {api: 5}
        """
    )
    assert_problem(problem, 6, 22, "claims 5 of 'api'", "more than its capacity 3", "never start")


# --- expressions ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("key", "value", "col"),
    [("when", '"params.x ==="', 11), ("until", '"outputs.ok =="', 12)],
)
def test_an_expression_that_does_not_parse_is_an_error(key: str, value: str, col: int) -> None:
    problems = problems_in(
        f"""
        name: shop
        params: {{x: 1}}
        steps:
          - name: build
            run: make
            {key}: {value}
            max_iterations: 3
        """
    )
    problem = next(p for p in problems if key in p.message)
    assert_problem(problem, 6, col, f"step 'build': {key}", "does not parse")


def test_a_template_in_run_that_does_not_parse_is_an_error() -> None:
    problem = the_problem(
        """
        name: shop
        steps:
          - name: build
            run: make VERSION={{ params. }}
        """
    )
    assert_problem(problem, 4, 10, "step 'build': run", "does not parse", "params.")


def test_a_template_in_confirm_that_does_not_parse_is_an_error() -> None:
    problem = the_problem(
        """
        name: shop
        steps:
          - name: approve
            confirm: "Ship {{ params.version ) }}?"
        """
    )
    assert_problem(problem, 4, 14, "step 'approve': confirm", "does not parse")


def test_template_braces_inside_single_quotes_in_run_are_refused() -> None:
    problem = the_problem(
        """
        name: shop
        params: {version: "1"}
        steps:
          - name: build
            run: echo '{{ params.version }}'
        """
    )
    assert_problem(
        problem,
        5,
        10,
        "step 'build': run",
        "inside single quotes",
        "use double quotes or no quotes",
    )


def test_template_braces_inside_single_quotes_in_rollback_are_refused() -> None:
    problem = the_problem(
        """
        name: shop
        params: {version: "1"}
        steps:
          - name: build
            run: make
            rollback: {run: "undo '{{ params.version }}'"}
        """
    )
    assert_problem(problem, 6, 21, "step 'build': rollback.run", "inside single quotes")


def test_an_unknown_param_in_a_template_suggests_the_closest_param() -> None:
    problem = the_problem(
        """
        name: shop
        params: {version: "1.4.2"}
        steps:
          - name: build
            run: make VERSION={{ params.verison }}
        """
    )
    assert_problem(problem, 5, 10, "unknown param 'verison'", "did you mean 'version'")


def test_an_unknown_param_with_no_params_declared_says_so() -> None:
    problem = the_problem(
        """
        name: shop
        steps:
          - name: build
            run: make VERSION={{ params.version }}
        """
    )
    assert_problem(problem, 4, 10, "unknown param 'version'", "no params are declared")


def test_reading_a_step_that_is_not_needed_asks_to_add_it_to_needs() -> None:
    problem = the_problem(
        """
        name: shop
        steps:
          - name: x
            run: "true"
          - name: notify
            run: ./notify.sh
            when: "steps['x'].status == 'succeeded'"
        """
    )
    assert_problem(problem, 7, 11, "reads steps['x'] but does not need 'x'", "add it to needs")


def test_reading_a_step_needed_through_another_step_is_fine() -> None:
    workflow = load(
        """
        name: shop
        steps:
          - {name: x, run: "true"}
          - {name: y, needs: [x], run: "true"}
          - name: notify
            needs: [y]
            run: ./notify.sh {{ steps['x'].outputs.url }}
        """
    )
    assert workflow.step("notify").needs == ("y",)


def test_item_outside_for_each_is_an_error() -> None:
    problem = the_problem(
        """
        name: shop
        steps:
          - name: deploy
            run: ./deploy.sh {{ item }}
        """
    )
    assert_problem(problem, 4, 10, "'item' is only defined in a step with for_each")


def test_item_inside_for_each_is_fine() -> None:
    workflow = load(
        """
        name: shop
        steps:
          - name: deploy
            for_each: [eu-1, us-1]
            run: ./deploy.sh {{ item }}
        """
    )
    assert workflow.steps[0].for_each == ("eu-1", "us-1")


# --- step shape -----------------------------------------------------------------------------


def test_until_without_max_iterations_is_an_error() -> None:
    problem = the_problem(
        """
        name: shop
        steps:
          - name: smoke
            run: ./smoke.sh
            until: "outputs.healthy == 'true'"
        """
    )
    assert_problem(problem, 3, 5, "step 'smoke'", "until needs max_iterations")


def test_a_step_with_nothing_to_do_names_the_three_choices() -> None:
    problem = the_problem(
        """
        name: shop
        steps:
          - name: idle
            description: does nothing
        """
    )
    assert_problem(problem, 3, 5, "step 'idle'", "nothing to do", "run", "python", "confirm")


def test_a_step_with_run_and_python_is_an_error() -> None:
    problem = the_problem(
        """
        name: shop
        steps:
          - name: notify
            run: ./notify.sh
            python: shop.notify:send
        """
    )
    assert_problem(problem, 3, 5, "step 'notify'", "has both run and python", "only one")


def test_a_step_with_command_and_python_is_an_error() -> None:
    problem = the_problem(
        """
        name: shop
        steps:
          - name: notify
            command: ./notify.sh
            python: shop.notify:send
        """
    )
    assert_problem(problem, 3, 5, "has both run and python")


def test_a_confirm_step_may_also_run_a_command() -> None:
    workflow = load(
        """
        name: shop
        steps:
          - name: approve
            confirm: Ship it?
            run: ./ship.sh
        """
    )
    step = workflow.steps[0]
    assert (step.kind, step.confirm, step.run) == ("confirm", "Ship it?", "./ship.sh")


def test_a_step_that_gives_both_run_and_command_is_an_error() -> None:
    problem = the_problem(
        """
        name: shop
        steps:
          - name: build
            run: make
            command: make
        """
    )
    assert_problem(problem, 3, 5, "either 'run' or 'command'")


# --- duplicate YAML keys --------------------------------------------------------------------


def test_a_duplicate_yaml_key_points_at_the_second_and_names_the_first_line() -> None:
    problem = the_problem(
        """
        name: shop
        steps:
          - name: build
            run: make
            timeout: 5m
            run: make all
        """
    )
    assert_problem(problem, 6, 5, "duplicate key 'run'", "first at line 4")


def test_a_duplicate_top_level_key_is_an_error() -> None:
    problem = the_problem(
        """
        name: shop
        name: shop2
        steps:
          - {name: build, run: make}
        """
    )
    assert_problem(problem, 2, 1, "duplicate key 'name'", "first at line 1")


# --- every problem in one pass --------------------------------------------------------------


def test_every_problem_of_a_file_is_reported_at_once_in_file_order() -> None:
    problems = problems_in(
        """
        name: shop
        resources: {db: 1}
        steps:
          - name: build
            run: make
            timeout: 5x
          - name: test
            needs: [biuld]
            run: make test
          - name: deploy
            bogus: 1
            run: ./deploy.sh
            resources: {db: 2}
          - name: smoke
            run: ./smoke.sh
            until: "outputs.ok == 'true'"
            run: again
        """
    )
    assert [(p.line, p.col) for p in problems] == [
        (6, 14),
        (8, 13),
        (11, 5),
        (13, 21),
        (14, 5),
        (17, 5),
    ]
    words = [
        "timeout",
        "unknown step 'biuld'",
        "unknown key 'bogus'",
        "capacity 1",
        "until needs max_iterations",
        "duplicate key 'run'",
    ]
    for problem, word in zip(problems, words, strict=True):
        assert problem.source == SOURCE
        assert word in problem.message, problem


def test_problems_print_as_file_line_col_message_one_per_line() -> None:
    problems = problems_in(
        """
        name: shop
        steps:
          - {name: a, needs: [b], run: "true"}
          - {name: a, run: "true"}
        """
    )
    assert [str(p) for p in problems] == [
        "deploy.yaml:3:23: step 'a' needs unknown step 'b' (it is the only step)",
        "deploy.yaml:4:12: duplicate step name 'a' (also step 1); step names must be unique",
    ]


# --- YAML 1.2, not 1.1 ----------------------------------------------------------------------


def test_on_off_yes_no_stay_strings_as_keys_and_values() -> None:
    workflow = load(
        """
        name: shop
        env: {on: yes, off: no, YES: on, NO: off}
        params:
          on: {default: off, choices: [on, off]}
        steps:
          - name: no
            description: yes
            run: echo
        """
    )
    assert workflow.env == {"on": "yes", "off": "no", "YES": "on", "NO": "off"}
    assert workflow.params["on"].default == "off"
    assert workflow.params["on"].choices == ("on", "off")
    assert (workflow.steps[0].name, workflow.steps[0].description) == ("no", "yes")


def test_a_leading_zero_number_in_an_env_value_asks_for_quotes() -> None:
    problem = the_problem(
        """
        name: shop
        env: {ZIP: 010}
        steps:
          - {name: build, run: make}
        """
    )
    assert_problem(problem, 2, 12, "env.ZIP", "010", "number 10", 'write it in quotes ("010")')


def test_a_version_like_number_in_a_description_asks_for_quotes() -> None:
    problem = the_problem(
        """
        name: shop
        description: 1.10
        steps:
          - {name: build, run: make}
        """
    )
    assert_problem(problem, 2, 14, "description", "1.10", "1.1", 'write it in quotes ("1.10")')


def test_a_version_like_number_as_a_param_default_asks_for_quotes() -> None:
    problem = the_problem(
        """
        name: shop
        params:
          version: 1.10
        steps:
          - {name: build, run: make}
        """
    )
    assert_problem(problem, 3, 12, "param 'version'", 'write it in quotes ("1.10")')


@pytest.mark.parametrize(
    ("items", "position", "raw"),
    [
        ("[1.10, 1.9]", 1, "1.10"),
        ("[eu, 010]", 2, "010"),
        ("[0o17]", 1, "0o17"),
    ],
)
def test_a_number_in_for_each_that_yaml_reads_otherwise_asks_for_quotes(
    items: str, position: int, raw: str
) -> None:
    problem = the_problem(
        f"""
        name: shop
        steps:
          - {{name: deploy, for_each: {items}, run: 'echo "{{{{ item }}}}"'}}
        """
    )
    assert f"for_each[{position - 1}]: YAML reads {raw}" in problem.message
    assert f'write it in quotes ("{raw}")' in problem.message


def test_numbers_in_for_each_that_read_back_as_written_are_items() -> None:
    workflow = load(
        """
        name: shop
        steps:
          - {name: deploy, for_each: [1, 2.5, eu], run: make}
        """
    )
    assert workflow.steps[0].for_each == ("1", "2.5", "eu")


def test_a_number_that_reads_back_as_written_is_accepted_as_text() -> None:
    workflow = load(
        """
        name: shop
        env: {PORT: 8080, RATIO: 0.5}
        steps:
          - {name: build, run: make, env: {RETRIES: 3}}
        """
    )
    assert workflow.env == {"PORT": "8080", "RATIO": "0.5"}
    assert workflow.steps[0].env == {"RETRIES": "3"}


def test_a_boolean_in_a_text_field_asks_for_quotes() -> None:
    problem = the_problem(
        """
        name: shop
        env: {DEBUG: true}
        steps:
          - {name: build, run: make}
        """
    )
    assert_problem(problem, 2, 14, "env.DEBUG", 'write it in quotes: "true"')


def test_a_leading_zero_count_is_refused_as_ambiguous() -> None:
    problem = the_problem(
        """
        name: shop
        max_concurrency: 010
        steps:
          - {name: build, run: make}
        """
    )
    assert_problem(problem, 2, 18, "max_concurrency", "010", "without the leading zero")


def test_a_plain_count_is_read_as_a_number() -> None:
    workflow = load(
        """
        name: shop
        max_concurrency: 8
        steps:
          - {name: build, run: make}
        """
    )
    assert workflow.max_concurrency == 8


def test_a_quoted_leading_zero_string_is_kept_as_written() -> None:
    workflow = load(
        """
        name: shop
        env: {ZIP: "010", VERSION: '1.10'}
        steps:
          - {name: build, run: make}
        """
    )
    assert workflow.env == {"ZIP": "010", "VERSION": "1.10"}


def test_a_step_with_a_bad_value_still_counts_as_a_step_for_needs() -> None:
    problem = the_problem(
        """
        name: shop
        steps:
          - name: build
            run: make
            timeout: 5x
          - name: test
            needs: [build]
            when: "steps['build'].status == 'succeeded'"
            run: make test
        """
    )
    assert_problem(problem, 5, 14, "step 'build': timeout")


def test_the_other_problems_of_a_step_with_a_bad_value_are_still_found() -> None:
    problems = problems_in(
        """
        name: shop
        steps:
          - name: a
            command: echo '{{ params.x }}'
            dependencies: [b]
          - name: b
            dependencies: [a]
            command: echo
            parallel: maybe
        """
    )
    assert [(p.line, p.col) for p in problems] == [(4, 14), (5, 20), (6, 5)]
    assert "inside single quotes" in problems[0].message
    assert "dependency cycle: a → b → a" in problems[1].message
    assert "step 'b': parallel: expected true or false" in problems[2].message


def test_an_empty_steps_list_is_refused() -> None:
    problem = the_problem(
        """
        name: shop
        steps: []
        """
    )
    assert_problem(problem, 2, 8, "steps", "must not be empty")


def test_a_missing_name_and_steps_are_both_reported() -> None:
    problems = problems_in("description: nothing\n")
    assert [str(p) for p in problems] == [
        "deploy.yaml:1:1: the workflow is missing required key 'name'",
        "deploy.yaml:1:1: the workflow is missing required key 'steps'",
    ]


def test_a_step_without_a_name_is_reported_by_its_position_in_the_list() -> None:
    problems = problems_in(
        """
        name: shop
        steps:
          - {name: a, run: echo}
          - run: echo
        """
    )
    assert [str(p) for p in problems] == ["deploy.yaml:4:5: step 2 is missing required key 'name'"]


def test_an_upper_case_workflow_name_says_what_names_may_hold() -> None:
    problem = the_problem(
        """
        name: Shop
        steps:
          - {name: a, run: echo}
        """
    )
    assert_problem(problem, 1, 7, "'Shop' is not a valid workflow name", "lower-case")


@pytest.mark.parametrize(("where", "line"), [("env", 2), ("step", 4)])
def test_env_may_not_set_tempehs_own_variables(where: str, line: int) -> None:
    workflow_env = "env: {TEMPEH_RUN_ID: fake}" if where == "env" else "env: {}"
    step_env = ", env: {TEMPEH_PARAM_X: fake}" if where == "step" else ""
    problem = the_problem(
        f"""
        name: shop
        {workflow_env}
        steps:
          - {{name: build, run: make{step_env}}}
        """
    )
    assert problem.line == line
    assert "TEMPEH_* variables are tempeh's own" in problem.message


def test_problems_inside_a_run_block_point_at_their_own_line_and_column() -> None:
    problems = problems_in(
        """
        name: shop
        params: {version: {default: "1"}}
        steps:
          - name: build
            run: |
              echo start
              ./build.sh "{{ params.versoin }}"
              echo again {{ params.versoin }} {{ params.nope }}
        """
    )
    assert [(p.line, p.col) for p in problems] == [(7, 19), (8, 39)]
    assert "unknown param 'versoin' (did you mean 'version'?)" in problems[0].message
    assert "unknown param 'nope'" in problems[1].message


def test_a_quoting_problem_inside_a_run_block_points_at_its_line() -> None:
    problem = the_problem(
        """
        name: shop
        params: {version: {default: "1"}}
        steps:
          - name: build
            run: |
              echo start
              echo '{{ params.version }}'
        """
    )
    assert_problem(problem, 7, 13, "inside single quotes")


@pytest.mark.parametrize(
    ("yaml", "line", "col", "words"),
    [
        (  # it failed every attempt at once
            "name: w\nsteps:\n  - {name: a, run: x, timeout: 0}\n",
            3,
            32,
            ("timeout: must be greater than 0",),
        ),
        (
            "name: w\nsteps:\n  - {name: a, run: x, rollback: {run: y, timeout: 0s}}\n",
            3,
            51,
            ("rollback.timeout: must be greater than 0",),
        ),
        (  # a pool of `true` read as 1
            "name: w\nresources: {db: true}\nsteps:\n  - {name: a, run: x}\n",
            2,
            17,
            ("resources.db: expected a whole number, got the boolean true",),
        ),
        (  # it failed only at run time, exit 126
            'name: w\nenv: {X: "a\\0b"}\nsteps:\n  - {name: a, run: x}\n',
            2,
            10,
            ("env.X: holds a NUL byte",),
        ),
        (
            'name: w\nparams:\n  p: {default: "x\\0y"}\nsteps:\n  - {name: a, run: x}\n',
            3,
            16,
            ("default: holds a NUL byte",),
        ),
    ],
)
def test_values_no_step_could_run_with_are_refused_before_the_run(
    yaml: str, line: int, col: int, words: tuple[str, ...]
) -> None:
    assert_problem(the_problem(yaml), line, col, *words)


def test_every_bad_item_of_a_fan_out_is_reported_where_it_stands() -> None:
    """Only the first was, at the list's position."""
    problems = problems_in(
        """
        name: shop
        steps:
          - {name: deploy, for_each: [1, 010, 2.0, 1.10, [x]], run: 'echo "{{ item }}"'}
        """
    )
    assert [(p.line, p.col) for p in problems] == [(3, 34), (3, 44), (3, 50)]
    assert [p.message.split(": ", 2)[1] for p in problems] == [
        "for_each[1]",
        "for_each[3]",
        "for_each[4]",
    ]


def test_a_rollback_given_as_a_number_is_judged_as_its_command() -> None:
    """It said "expected a mapping", although a rollback may be a command's text."""
    problem = the_problem("name: w\nsteps:\n  - {name: a, run: x, rollback: 010}\n")
    assert_problem(problem, 3, 33, "rollback.run: YAML reads 010", 'write it in quotes ("010")')


def test_a_nul_byte_in_a_fan_out_item_is_refused_before_the_run() -> None:
    """It failed only when run (embedded null byte, exit 126)."""
    problem = the_problem('name: w\nsteps:\n  - {name: a, run: x, for_each: ["a\\0b"]}\n')
    assert_problem(problem, 3, 34, "for_each[0]: holds a NUL byte")
