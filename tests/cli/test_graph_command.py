"""`tempeh graph FILE --format mermaid|dot|text`: every step and every edge, in each format."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from tempeh_tui.cli import main
from tests.cli.process import run_tempeh

WORKFLOW = """\
name: shop-release
steps:
  - name: validate-config
    run: ./validate.sh
  - name: migrate-db
    needs: [validate-config]
    run: ./migrate.sh
  - name: approve
    needs: [migrate-db]
    confirm: "Roll out?"
  - name: deploy-region
    needs: [approve, validate-config]
    for_each: [eu-1, us-1]
    run: ./deploy.sh
  - name: smoke
    needs: [deploy-region]
    run: ./smoke.sh
"""

STEPS = ["validate-config", "migrate-db", "approve", "deploy-region", "smoke"]
EDGES = {
    ("validate-config", "migrate-db"),
    ("migrate-db", "approve"),
    ("approve", "deploy-region"),
    ("validate-config", "deploy-region"),
    ("deploy-region", "smoke"),
}
DOT_EDGE = re.compile(r'^\s*"(?P<need>[^"]+)"\s*->\s*"(?P<step>[^"]+)"\s*;?\s*$')
MERMAID_NODE = re.compile(r'^\s*(?P<id>\w+)(?:\["|\{\{")(?P<label>[^"]*)')
MERMAID_EDGE = re.compile(r"^\s*(?P<need>\w+)\s*-->\s*(?P<step>\w+)\s*$")


@pytest.fixture
def workflow(tmp_path: Path) -> Path:
    path = tmp_path / "shop.yaml"
    path.write_text(WORKFLOW)
    return path


def graph_output(workflow: Path, fmt: str, capsys: pytest.CaptureFixture[str]) -> str:
    assert main(["graph", str(workflow), "--format", fmt]) == 0
    out, err = capsys.readouterr()
    assert err == ""
    return out


def test_dot_output_has_every_step_and_every_edge(workflow: Path) -> None:
    result = run_tempeh("graph", workflow, "--format", "dot")

    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert out.startswith('digraph "shop-release" {')
    assert out.rstrip().endswith("}")
    edges = {(m["need"], m["step"]) for m in map(DOT_EDGE.match, out.splitlines()) if m}
    assert edges == EDGES
    for step in STEPS:
        assert f'"{step}" [' in out


def test_mermaid_output_has_every_step_and_every_edge(
    workflow: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = graph_output(workflow, "mermaid", capsys)

    lines = out.splitlines()
    assert lines[0].startswith("flowchart")
    labels = {m["id"]: m["label"] for m in map(MERMAID_NODE.match, lines) if m}
    name_of = {node: label.split(" (")[0] for node, label in labels.items()}
    assert sorted(name_of.values()) == sorted(STEPS)
    edges = {(name_of[m["need"]], name_of[m["step"]]) for m in map(MERMAID_EDGE.match, lines) if m}
    assert edges == EDGES


def test_mermaid_draws_an_approval_as_a_different_shape(
    workflow: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = graph_output(workflow, "mermaid", capsys)

    assert any(line.strip().endswith('{{"approve (approval)"}}') for line in out.splitlines())


def test_text_output_lists_every_step_in_waves_with_what_it_needs(
    workflow: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = graph_output(workflow, "text", capsys)

    lines = [line.strip() for line in out.splitlines()]
    assert lines[0] == "shop-release"
    assert lines.count("wave 1") == 1
    assert "validate-config" in lines
    assert "migrate-db  ← validate-config" in lines
    assert "deploy-region (x2)  ← validate-config, approve" in lines
    assert "smoke  ← deploy-region" in lines


def test_text_is_the_default_format(workflow: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["graph", str(workflow)]) == 0
    default = capsys.readouterr().out

    assert default == graph_output(workflow, "text", capsys)


def test_an_unknown_format_is_a_usage_error(
    workflow: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exited:
        main(["graph", str(workflow), "--format", "png"])

    assert exited.value.code == 2
    assert "mermaid" in capsys.readouterr().err


def test_graph_of_a_missing_file_exits_2_without_a_traceback(tmp_path: Path) -> None:
    missing = tmp_path / "gone.yaml"

    result = run_tempeh("graph", missing, "--format", "dot")

    assert result.returncode == 2
    assert result.stdout == ""
    assert result.stderr.strip() == f"{missing}: no such file"
    assert "Traceback" not in result.stderr


def test_mermaid_labels_show_step_names_as_written(tmp_path: Path) -> None:
    """`a<b>c` was read as HTML and `x#35;y` as an entity: the drawing named other steps."""
    from tempeh_tui.definition import load_workflow
    from tempeh_tui.graph.build import build_graph
    from tempeh_tui.graph.render import render_graph

    flow = tmp_path / "g.yaml"
    flow.write_text(
        'name: g\nsteps:\n  - {name: "a<b>c", run: x}\n'
        '  - {name: "x#35;y & z", run: x, needs: ["a<b>c"]}\n'
    )
    text = render_graph(build_graph(load_workflow(flow)), "mermaid")
    assert 's0["a#lt;b#gt;c"]' in text
    assert 's1["x#35;35;y #amp; z"]' in text
