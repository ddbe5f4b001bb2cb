"""`build_plan`: the dry run behind `tempeh plan`, with decisions, JSON and hints."""

from __future__ import annotations

import json
import textwrap
from typing import Any

import pytest

from tempeh_tui.definition import Workflow, parse_workflow
from tempeh_tui.errors import WorkflowError
from tempeh_tui.graph import Plan, build_plan


def workflow(yaml: str) -> Workflow:
    return parse_workflow(textwrap.dedent(yaml), "release.yaml")


CONDITIONAL = """
    name: conditional
    params:
      region: {default: eu, choices: [eu, us]}
    env: {TIER: prod}
    steps:
      - {name: build, run: make}
      - name: eu-only
        needs: [build]
        when: "params.region == 'eu'"
        run: ./eu.sh
      - name: prod-only
        needs: [build]
        when: "env.TIER == 'prod'"
        run: ./prod.sh
      - name: notify
        needs: [eu-only]
        when: "steps['eu-only'].status == 'succeeded'"
        run: ./notify.sh
      - name: deploy
        needs: [build]
        for_each: [eu-1, us-1]
        when: "item.startswith(params.region)"
        run: ./deploy.sh
"""


def decisions(plan: Plan) -> dict[str, tuple[str, str | None]]:
    return {name: (u.decision, u.reason) for name, u in plan.units.items()}


def test_a_when_that_reads_only_params_is_decided_at_plan_time() -> None:
    plan = build_plan(workflow(CONDITIONAL))

    assert decisions(plan)["eu-only"] == ("run", "when is true at plan time")
    assert decisions(plan)["prod-only"] == ("run", "when is true at plan time")


def test_a_param_given_on_the_command_line_changes_a_plan_time_decision() -> None:
    plan = build_plan(workflow(CONDITIONAL), {"region": "us"})

    assert decisions(plan)["eu-only"] == ("skip", "when is false at plan time")
    assert plan.params["region"] == "us"


def test_a_when_that_reads_other_steps_is_left_for_run_time() -> None:
    plan = build_plan(workflow(CONDITIONAL))

    decision, reason = decisions(plan)["notify"]
    assert decision == "at run time"
    assert reason is not None
    assert "steps" in reason


def test_a_step_without_when_simply_runs() -> None:
    assert decisions(build_plan(workflow(CONDITIONAL)))["build"] == ("run", None)


def test_each_fan_out_instance_gets_its_own_decision() -> None:
    plan = build_plan(workflow(CONDITIONAL), {"region": "us"})

    assert plan.units["deploy[eu-1]"].decision == "skip"
    assert plan.units["deploy[us-1]"].decision == "run"


def test_a_required_param_without_a_value_says_how_to_give_it() -> None:
    wf = workflow(
        """
        name: needs-region
        params:
          region: {required: true, choices: [eu, us]}
        steps:
          - name: deploy
            run: ./deploy.sh {{ params.region }}
        """
    )

    with pytest.raises(WorkflowError) as caught:
        build_plan(wf)

    message = str(caught.value)
    assert "region" in message
    assert "-p region=VALUE" in message
    assert message.startswith("release.yaml:4:")


def test_a_required_param_given_a_value_plans() -> None:
    wf = workflow(
        """
        name: needs-region
        params:
          region: {required: true}
        steps:
          - name: deploy
            run: ./deploy.sh {{ params.region }}
        """
    )

    assert build_plan(wf, {"region": "eu"}).params == {"region": "eu"}


def test_plan_json_has_the_fields_spec_promises_and_is_serializable() -> None:
    plan = build_plan(workflow(CONDITIONAL))

    data: dict[str, Any] = json.loads(json.dumps(plan.to_json()))

    assert data["workflow"] == "conditional"
    assert data["groups"] == [
        ["build"],
        ["eu-only", "prod-only", "deploy[eu-1]", "deploy[us-1]"],
        ["notify"],
    ]
    assert all(isinstance(name, str) for group in data["groups"] for name in group)
    assert data["critical_path"] == ["build", "eu-only", "notify"]
    assert data["expansions"] == {"deploy": ["deploy[eu-1]", "deploy[us-1]"]}


def test_plan_json_lists_each_unit_with_its_decision() -> None:
    steps = build_plan(workflow(CONDITIONAL), {"region": "us"}).to_json()["steps"]

    by_name = {s["name"]: s for s in steps}
    assert by_name["eu-only"]["decision"] == "skip"
    assert by_name["deploy[us-1]"]["step"] == "deploy"
    assert by_name["deploy[us-1]"]["item"] == "us-1"
    assert by_name["notify"]["needs"] == ["eu-only"]


HINTED = """
    name: hinted
    max_concurrency: 2
    resources: {db: 1}
    steps:
      - {name: migrate-users, run: ./m1.sh, resources: {db: 1}}
      - {name: migrate-orders, run: ./m2.sh, resources: {db: 1}}
      - {name: warm-cache, run: ./warm.sh}
      - {name: switch-traffic, needs: [migrate-users, migrate-orders], run: ./s.sh, exclusive: true}
"""


def test_hints_name_an_exclusive_step() -> None:
    hints = build_plan(workflow(HINTED)).hints

    assert any("switch-traffic" in h and "exclusive" in h for h in hints)


def test_hints_warn_when_one_wave_claims_more_of_a_pool_than_it_holds() -> None:
    hints = build_plan(workflow(HINTED)).hints

    assert any("claims 2 of 'db'" in h and "capacity 1" in h for h in hints)


def test_hints_warn_when_a_wave_is_wider_than_max_concurrency() -> None:
    hints = build_plan(workflow(HINTED)).hints

    assert any("3 steps could run at once" in h and "max_concurrency is 2" in h for h in hints)


def test_hints_suggest_dropping_a_redundant_need() -> None:
    wf = workflow(
        """
        name: redundant
        steps:
          - {name: a, run: "true"}
          - {name: b, needs: [a], run: "true"}
          - {name: c, needs: [a, b], run: "true"}
        """
    )

    assert any("needs a→c is implied by a→b→c" in h for h in build_plan(wf).hints)


def test_a_step_skipped_at_plan_time_claims_nothing() -> None:
    wf = workflow(
        """
        name: skipped-claim
        params:
          full: {default: "no"}
        resources: {db: 1}
        steps:
          - {name: migrate, run: ./m.sh, resources: {db: 1}}
          - {name: backfill, run: ./b.sh, resources: {db: 1}, when: "params.full == 'yes'"}
        """
    )

    assert not any("'db'" in h for h in build_plan(wf).hints)
    assert any("claims 2 of 'db'" in h for h in build_plan(wf, {"full": "yes"}).hints)


def test_a_workflow_without_problems_has_no_hints() -> None:
    wf = workflow(
        """
        name: clean
        steps:
          - {name: a, run: "true"}
          - {name: b, needs: [a], run: "true"}
        """
    )

    assert build_plan(wf).hints == []


def test_a_step_skipped_at_plan_time_takes_no_concurrency_slot() -> None:
    wf = workflow(
        """
        name: skipped-slot
        max_concurrency: 2
        params:
          extra: {default: "no"}
        steps:
          - {name: a, run: "true"}
          - {name: b, run: "true"}
          - {name: c, run: "true", when: "params.extra == 'yes'"}
        """
    )

    assert build_plan(wf).hints == []
    assert any("3 steps could run at once" in h for h in build_plan(wf, {"extra": "yes"}).hints)
