"""Plan, pick, apply: which units a selection toggles off, and why each one."""

from __future__ import annotations

import textwrap

import pytest

from tempeh_tui.definition import Workflow, parse_workflow
from tempeh_tui.graph import Selection, SelectionError, build_graph, build_plan
from tempeh_tui.graph.selection import not_selected

RELEASE = """
name: release
steps:
  - {name: build, run: make}
  - {name: migrate, needs: [build], run: ./migrate.sh}
  - {name: deploy, needs: [migrate], for_each: [eu, us], run: ./deploy.sh}
  - {name: smoke, needs: [deploy], run: ./smoke.sh}
  - {name: docs, run: ./docs.sh}
  - {name: publish-docs, needs: [docs], run: ./publish.sh}
"""


@pytest.fixture
def release() -> Workflow:
    return parse_workflow(textwrap.dedent(RELEASE), "release.yaml")


def off(workflow: Workflow, selection: Selection) -> dict[str, str]:
    return not_selected(build_graph(workflow), selection)


def test_no_selection_toggles_nothing_off(release: Workflow) -> None:
    assert off(release, Selection()) == {}
    assert not_selected(build_graph(release), None) == {}


def test_only_keeps_the_steps_and_everything_they_need(release: Workflow) -> None:
    toggled = off(release, Selection(only=["deploy"]))

    assert list(toggled) == ["smoke", "docs", "publish-docs"]
    assert set(toggled.values()) == {"not selected in the plan (only deploy and what they need)"}


def test_only_one_instance_of_a_fan_out_keeps_the_others_off(release: Workflow) -> None:
    toggled = off(release, Selection(only=["deploy[us]"]))

    assert "deploy[eu]" in toggled
    assert {"build", "migrate", "deploy[us]"}.isdisjoint(toggled)


def test_skip_toggles_off_the_step_and_its_subtree_and_says_why(release: Workflow) -> None:
    toggled = off(release, Selection(skip=["migrate"]))

    assert toggled == {
        "migrate": "not selected in the plan (skip migrate)",
        "deploy[eu]": "not selected in the plan (needs 'migrate', which is not selected)",
        "deploy[us]": "not selected in the plan (needs 'migrate', which is not selected)",
        "smoke": "not selected in the plan (needs 'deploy[eu]', which is not selected)",
    }


def test_units_of_a_plan_toggle_off_only_what_was_left_out(release: Workflow) -> None:
    kept = {"build", "migrate", "deploy[eu]", "smoke", "docs", "publish-docs"}

    toggled = off(release, Selection(units=frozenset(kept), plan="p.json"))

    assert toggled == {"deploy[us]": "not selected in the plan (p.json)"}


def test_only_and_skip_narrow_each_other(release: Workflow) -> None:
    toggled = off(release, Selection(only=["smoke", "publish-docs"], skip=["docs"]))

    assert set(toggled) == {"docs", "publish-docs"}
    assert (
        toggled["publish-docs"] == "not selected in the plan (needs 'docs', which is not selected)"
    )


@pytest.mark.parametrize(
    ("selection", "message"),
    [
        (Selection(only=["deplyo"]), "--only: workflow 'release' has no step 'deplyo' (did you"),
        (Selection(skip=["smoek"]), "--skip: workflow 'release' has no step 'smoek' (did you mean"),
        (Selection(units=frozenset({"buidl"}), plan="p.json"), "the plan p.json: workflow"),
    ],
)
def test_an_unknown_step_is_refused_with_a_close_match(
    release: Workflow, selection: Selection, message: str
) -> None:
    with pytest.raises(SelectionError, match=r"^" + message.replace("(", r"\(")):
        off(release, selection)


def test_the_plan_marks_toggled_off_units_not_selected(release: Workflow) -> None:
    plan = build_plan(release, {}, Selection(skip=["docs"]))

    steps = {s["name"]: s for s in plan.to_json()["steps"]}
    assert steps["publish-docs"]["decision"] == "not selected"
    assert steps["publish-docs"]["selected"] is False
    assert steps["build"]["selected"] is True
