"""`tempeh plan FILE [-p K=V]... [--json] [--out PLAN]`: the dry run on the command line."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from tempeh_tui.cli import main
from tests.cli.process import SAMPLES, run_tempeh

RELEASE = """\
name: release
params:
  region: {default: eu, choices: [eu, us]}
resources: {db: 1}
steps:
  - name: build
    run: make
  - name: migrate
    needs: [build]
    run: ./migrate.sh
    resources: {db: 1}
  - name: eu-banner
    needs: [build]
    when: "params.region == 'eu'"
    run: ./banner.sh
  - name: deploy
    needs: [migrate]
    for_each: [eu-1, us-1]
    run: ./deploy.sh
  - name: smoke
    needs: [deploy, build]
    run: ./smoke.sh
  - name: announce
    needs: [smoke]
    when: "steps['smoke'].status == 'succeeded'"
    run: ./announce.sh
"""

REQUIRED = """\
name: needs-region
params:
  region: {required: true, choices: [eu, us]}
steps:
  - name: deploy
    run: ./deploy.sh {{ params.region }}
"""


@pytest.fixture
def release(tmp_path: Path) -> Path:
    path = tmp_path / "release.yaml"
    path.write_text(RELEASE)
    return path


def plan_json(capsys: pytest.CaptureFixture[str], *args: str) -> dict[str, Any]:
    assert main(["plan", "--json", *args]) == 0
    data: dict[str, Any] = json.loads(capsys.readouterr().out)
    return data


def decision(data: dict[str, Any], step: str) -> str:
    decisions: dict[str, str] = {s["name"]: s["decision"] for s in data["steps"]}
    return decisions[step]


def test_plan_json_prints_the_spec_fields_and_saves_the_same_plan_with_out(
    release: Path, tmp_path: Path
) -> None:
    saved = tmp_path / "release.plan.json"

    result = run_tempeh("plan", release, "--json", "--out", saved)

    assert result.returncode == 0, result.stderr
    data = json.loads(result.stdout)
    assert data["workflow"] == "release"
    assert data["groups"] == [
        ["build"],
        ["migrate", "eu-banner"],
        ["deploy[eu-1]", "deploy[us-1]"],
        ["smoke"],
        ["announce"],
    ]
    assert data["critical_path"] == ["build", "migrate", "deploy[eu-1]", "smoke", "announce"]
    assert json.loads(saved.read_text()) == data


def test_a_param_on_the_command_line_changes_a_plan_time_decision(
    release: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert decision(plan_json(capsys, str(release)), "eu-banner") == "run"
    assert decision(plan_json(capsys, str(release), "-p", "region=us"), "eu-banner") == "skip"
    assert decision(plan_json(capsys, str(release), "-p", "region=us"), "announce") == (
        "at run time"
    )


def test_a_missing_required_param_exits_2_and_names_it(tmp_path: Path) -> None:
    workflow = tmp_path / "needs-region.yaml"
    workflow.write_text(REQUIRED)

    result = run_tempeh("plan", workflow)

    assert result.returncode == 2
    assert result.stdout == ""
    assert "-p region=VALUE" in result.stderr
    assert result.stderr.startswith(f"{workflow}:3:")
    assert "Traceback" not in result.stderr


def test_a_required_param_given_with_p_plans(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    workflow = tmp_path / "needs-region.yaml"
    workflow.write_text(REQUIRED)

    assert plan_json(capsys, str(workflow), "-p", "region=us")["params"] == {"region": "us"}


@pytest.mark.parametrize(
    ("given", "expected"),
    [
        ("region", "expected NAME=VALUE"),
        ("regoin=us", "did you mean 'region'"),
        ("region=mars", "expected one of eu, us"),
    ],
)
def test_a_bad_param_exits_2_and_says_what_is_wrong(
    release: Path, capsys: pytest.CaptureFixture[str], given: str, expected: str
) -> None:
    assert main(["plan", str(release), "-p", given]) == 2

    out, err = capsys.readouterr()
    assert out == ""
    assert expected in err


def test_the_plan_table_shows_waves_decisions_path_fan_outs_and_hints(
    release: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("COLUMNS", "200")

    assert main(["plan", str(release), "-p", "region=us"]) == 0

    out = capsys.readouterr().out
    assert "Plan release" in out
    for unit in ["build", "migrate", "eu-banner", "deploy[eu-1]", "deploy[us-1]", "announce"]:
        assert unit in out
    assert "when is false at plan time" in out
    assert "at run time" in out
    assert "build → migrate → deploy[eu-1] → smoke → announce" in out
    assert "fan-out deploy: 2 instances" in out
    assert "needs build→smoke is implied by build→migrate→deploy→smoke" in out


def test_out_saves_the_plan_beside_the_table(
    release: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    saved = tmp_path / "plan.json"

    assert main(["plan", str(release), "--out", str(saved)]) == 0

    assert f"plan saved to {saved}" in capsys.readouterr().out
    assert json.loads(saved.read_text())["workflow"] == "release"


def test_out_to_a_place_that_cannot_be_written_exits_2_without_a_traceback(
    release: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    target = tmp_path / "no-such-dir" / "plan.json"

    assert main(["plan", str(release), "--json", "--out", str(target)]) == 2

    out, err = capsys.readouterr()
    assert out == ""
    assert str(target) in err


@pytest.mark.parametrize("sample", sorted(SAMPLES.glob("*.yaml")), ids=lambda p: p.stem)
def test_every_sample_plans(sample: Path, capsys: pytest.CaptureFixture[str]) -> None:
    data = plan_json(capsys, str(sample))

    assert data["workflow"] == sample.stem
    assert data["critical_path"]
    assert {u for group in data["groups"] for u in group} == {s["name"] for s in data["steps"]}
