"""Waves, priorities, the critical path and redundant needs, as `tempeh plan` reports them."""

from __future__ import annotations

import textwrap

from tempeh_tui.definition import parse_workflow
from tempeh_tui.graph import WorkflowGraph, build_graph
from tempeh_tui.graph.analysis import critical_path, parallel_groups, priorities, redundant_needs


def graph_of(yaml: str) -> WorkflowGraph:
    return build_graph(parse_workflow(textwrap.dedent(yaml)))


CHAIN = """
    name: chain
    steps:
      - {name: a, run: "true"}
      - {name: b, needs: [a], run: "true"}
      - {name: c, needs: [b], run: "true"}
"""

DIAMOND = """
    name: diamond
    steps:
      - {name: top, run: "true"}
      - {name: left, needs: [top], run: "true"}
      - {name: right, needs: [top], run: "true"}
      - {name: bottom, needs: [left, right], run: "true"}
"""


def test_a_chain_runs_one_step_per_wave() -> None:
    assert parallel_groups(graph_of(CHAIN)) == [["a"], ["b"], ["c"]]


def test_the_sides_of_a_diamond_run_together() -> None:
    assert parallel_groups(graph_of(DIAMOND)) == [["top"], ["left", "right"], ["bottom"]]


def test_fan_out_instances_share_a_wave_between_their_need_and_the_fan_in() -> None:
    wg = graph_of(
        """
        name: fan
        steps:
          - {name: build, run: make}
          - {name: deploy, needs: [build], for_each: [a, b, c], run: ./deploy.sh}
          - {name: smoke, needs: [deploy], run: ./smoke.sh}
        """
    )

    assert parallel_groups(wg) == [["build"], ["deploy[a]", "deploy[b]", "deploy[c]"], ["smoke"]]


def test_independent_steps_all_start_in_the_first_wave() -> None:
    wg = graph_of(
        """
        name: independent
        steps:
          - {name: x, run: "true"}
          - {name: y, run: "true"}
          - {name: z, run: "true"}
        """
    )

    assert parallel_groups(wg) == [["x", "y", "z"]]


def test_a_wave_lists_the_critical_step_first() -> None:
    wg = graph_of(
        """
        name: uneven
        steps:
          - {name: quick, run: "true", estimate: 1s}
          - {name: slow, run: "true", estimate: 1m}
          - {name: after-quick, needs: [quick], run: "true", estimate: 1s}
        """
    )

    assert parallel_groups(wg) == [["slow", "quick"], ["after-quick"]]


def test_priorities_decrease_along_a_chain() -> None:
    rank = priorities(graph_of(CHAIN))

    assert rank["a"] > rank["b"] > rank["c"] > 0


def test_critical_path_counts_steps_when_nothing_has_an_estimate() -> None:
    path = critical_path(graph_of(DIAMOND))

    assert path.units == ["top", "left", "bottom"]
    assert path.seconds == 3
    assert not path.estimated


def test_critical_path_follows_estimates_so_a_long_side_branch_beats_a_short_main_chain() -> None:
    wg = graph_of(
        """
        name: long-branch
        steps:
          - {name: checkout, run: "true", estimate: 1s}
          - {name: lint, needs: [checkout], run: "true", estimate: 2s}
          - {name: typecheck, needs: [lint], run: "true", estimate: 2s}
          - {name: unit-tests, needs: [typecheck], run: "true", estimate: 2s}
          - {name: integration, needs: [checkout], run: "true", estimate: 10m}
          - {name: publish, needs: [unit-tests, integration], run: "true", estimate: 1s}
        """
    )

    path = critical_path(wg)

    assert path.units == ["checkout", "integration", "publish"]
    assert path.seconds == 1 + 600 + 1
    assert path.estimated


def test_critical_path_runs_through_one_fan_out_instance() -> None:
    wg = graph_of(
        """
        name: fan
        steps:
          - {name: build, run: make, estimate: 5s}
          - {name: deploy, needs: [build], for_each: [eu, us], run: ./deploy.sh, estimate: 30s}
          - {name: smoke, needs: [deploy], run: ./smoke.sh, estimate: 5s}
        """
    )

    path = critical_path(wg)

    assert path.units == ["build", "deploy[eu]", "smoke"]
    assert path.seconds == 40


def test_a_direct_need_implied_by_a_longer_chain_is_reported() -> None:
    wg = graph_of(
        """
        name: redundant
        steps:
          - {name: a, run: "true"}
          - {name: b, needs: [a], run: "true"}
          - {name: c, needs: [a, b], run: "true"}
        """
    )

    assert [str(r) for r in redundant_needs(wg)] == ["needs a→c is implied by a→b→c"]


def test_a_need_implied_through_a_fan_out_is_reported() -> None:
    wg = graph_of(
        """
        name: fan
        steps:
          - {name: build, run: make}
          - {name: deploy, needs: [build], for_each: [eu, us], run: ./deploy.sh}
          - {name: smoke, needs: [deploy, build], run: ./smoke.sh}
        """
    )

    assert [str(r) for r in redundant_needs(wg)] == [
        "needs build→smoke is implied by build→deploy→smoke"
    ]


def test_needs_that_are_all_necessary_are_not_reported() -> None:
    assert redundant_needs(graph_of(DIAMOND)) == []


def test_a_need_on_one_instance_is_not_implied_by_a_chain_through_another_instance() -> None:
    wg = graph_of(
        """
        name: canary
        steps:
          - {name: deploy, for_each: [eu-1, eu-2], run: ./deploy.sh}
          - {name: probe, needs: ["deploy[eu-2]"], run: ./probe.sh}
          - {name: report, needs: ["deploy[eu-1]", probe], run: ./report.sh}
        """
    )

    assert redundant_needs(wg) == []
