"""Properties of the graph layer on random DAGs (the issue's Hypothesis ask)."""

from __future__ import annotations

from itertools import pairwise
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from tempeh_tui.definition import load_workflow
from tempeh_tui.graph import build_graph
from tempeh_tui.graph.analysis import critical_path, parallel_groups, redundant_needs


@st.composite
def random_dags(draw: st.DrawFn) -> list[dict[str, Any]]:
    """Steps that each need a random subset of earlier ones, some fanned out, in shuffled order."""
    count = draw(st.integers(min_value=1, max_value=10))
    names = draw(
        st.lists(
            st.from_regex(r"[a-z][a-z0-9-]{0,6}", fullmatch=True),
            min_size=count,
            max_size=count,
            unique=True,
        )
    )
    steps: list[dict[str, Any]] = []
    for index, name in enumerate(names):
        step: dict[str, Any] = {"name": name, "run": "true"}
        if index:
            step["needs"] = draw(st.lists(st.sampled_from(names[:index]), unique=True))
        if draw(st.booleans()):
            step["estimate"] = f"{draw(st.integers(min_value=1, max_value=90))}s"
        if draw(st.integers(min_value=0, max_value=4)) == 0:
            width = draw(st.integers(min_value=1, max_value=3))
            step["for_each"] = [f"r{i}" for i in range(width)]
        steps.append(step)
    return draw(st.permutations(steps))


def units_of(step: dict[str, Any]) -> list[str]:
    items = step.get("for_each")
    return [step["name"]] if items is None else [f"{step['name']}[{i}]" for i in items]


def longest_run(steps: list[dict[str, Any]]) -> float:
    """The longest sum of estimates along any chain of needs (1 s per unit without one)."""
    by_name = {s["name"]: s for s in steps}
    memo: dict[str, float] = {}

    def finish(name: str) -> float:
        if name not in memo:
            step = by_name[name]
            own = float(step["estimate"].removesuffix("s")) if "estimate" in step else 1.0
            memo[name] = own + max((finish(n) for n in step.get("needs", [])), default=0.0)
        return memo[name]

    return max(finish(name) for name in by_name)


@settings(max_examples=60, deadline=None)
@given(random_dags())
def test_parallel_groups_never_place_a_step_before_what_it_needs(
    steps: list[dict[str, Any]],
) -> None:
    groups = parallel_groups(build_graph(load_workflow({"name": "random", "steps": steps})))

    placed = [name for group in groups for name in group]
    expected = [unit for step in steps for unit in units_of(step)]
    assert sorted(placed) == sorted(expected), "every unit appears exactly once"
    wave = {name: number for number, group in enumerate(groups) for name in group}
    by_name = {s["name"]: s for s in steps}
    for step in steps:
        for need in step.get("needs", []):
            for unit in units_of(step):
                for needed in units_of(by_name[need]):
                    assert wave[needed] < wave[unit], f"{unit} is not after {needed}"
    assert all(groups), "no empty wave"


@settings(max_examples=60, deadline=None)
@given(random_dags())
def test_the_critical_path_is_a_chain_of_needs_with_the_longest_duration(
    steps: list[dict[str, Any]],
) -> None:
    wg = build_graph(load_workflow({"name": "random", "steps": steps}))

    path = critical_path(wg)

    assert path.units
    assert not wg.needs(path.units[0]), "it starts at a unit that needs nothing"
    assert not wg.dependents(path.units[-1]), "it ends at a unit nothing needs"
    step_of = {unit: s for s in steps for unit in units_of(s)}
    for before, after in pairwise(path.units):
        assert step_of[before]["name"] in step_of[after].get("needs", [])
    assert path.seconds == longest_run(steps)
    assert path.estimated == all("estimate" in step_of[u] for u in path.units)


@settings(max_examples=60, deadline=None)
@given(random_dags())
def test_a_need_is_reported_redundant_exactly_when_another_need_already_implies_it(
    steps: list[dict[str, Any]],
) -> None:
    wg = build_graph(load_workflow({"name": "random", "steps": steps}))
    by_name = {s["name"]: s for s in steps}

    def upstream(name: str) -> set[str]:
        found: set[str] = set()
        for need in by_name[name].get("needs", []):
            found |= {need, *upstream(need)}
        return found

    expected = {
        (step["name"], need)
        for step in steps
        for need in step.get("needs", [])
        if any(need in upstream(other) for other in step["needs"] if other != need)
    }
    reported = redundant_needs(wg)
    assert {(r.step, r.need) for r in reported} == expected
    for r in reported:
        assert r.via[0] == r.need
        assert r.via[-1] == r.step
        assert len(r.via) > 2
        for before, after in pairwise(r.via):
            assert before in by_name[after].get("needs", [])
