"""Fan-out expansion: a `for_each` step becomes one unit per item, and needs connect units."""

from __future__ import annotations

import textwrap

from tempeh_tui.definition import parse_workflow
from tempeh_tui.graph import WorkflowGraph, build_graph


def graph_of(yaml: str) -> WorkflowGraph:
    return build_graph(parse_workflow(textwrap.dedent(yaml)))


FAN_OUT = """
    name: release
    steps:
      - {name: build, run: make}
      - name: deploy
        needs: [build]
        for_each: [us-1, eu-2, eu-1]
        run: ./deploy.sh {{ item }}
      - {name: smoke, needs: [deploy], run: ./smoke.sh}
"""


def test_fan_out_expands_into_one_instance_per_item_in_item_order() -> None:
    wg = graph_of(FAN_OUT)

    assert wg.instances == {"deploy": ("deploy[us-1]", "deploy[eu-2]", "deploy[eu-1]")}
    assert list(wg.units) == ["build", "deploy[us-1]", "deploy[eu-2]", "deploy[eu-1]", "smoke"]
    assert [wg.unit(n).item for n in wg.instances["deploy"]] == ["us-1", "eu-2", "eu-1"]
    assert "deploy" not in wg.graph


def test_every_instance_needs_what_the_fan_out_step_needs() -> None:
    wg = graph_of(FAN_OUT)

    for instance in wg.instances["deploy"]:
        assert wg.needs(instance) == ("build",)


def test_fan_in_waits_for_every_instance() -> None:
    wg = graph_of(FAN_OUT)

    assert wg.needs("smoke") == ("deploy[us-1]", "deploy[eu-2]", "deploy[eu-1]")


def test_mapping_items_name_their_instances_by_position() -> None:
    wg = graph_of(
        """
        name: matrix
        steps:
          - name: test
            for_each: [{py: "3.11"}, {py: "3.12"}]
            run: tox -e {{ item.py }}
        """
    )

    assert wg.instances["test"] == ("test[0]", "test[1]")
    assert wg.unit("test[1]").item == {"py": "3.12"}


def test_a_need_on_one_instance_connects_only_that_instance() -> None:
    wg = graph_of(
        """
        name: canary
        steps:
          - {name: deploy, for_each: [eu-1, eu-2], run: ./deploy.sh}
          - {name: probe-eu-1, needs: ["deploy[eu-1]"], run: ./probe.sh}
        """
    )

    assert wg.needs("probe-eu-1") == ("deploy[eu-1]",)
    assert wg.dependents("deploy[eu-2]") == ()
