"""Plan, pick, apply on the command line: `tempeh plan --out`, then `tempeh run --plan PLAN
[--only a,b] [--skip c]`, kept by `tempeh resume`; and cache hits in `tempeh plan`."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

TEMPEH = [sys.executable, "-m", "tempeh_tui"]

RELEASE = """\
name: release
params:
  version: {default: "1.0"}
steps:
  - name: build
    run: echo build >> ledger
  - name: migrate
    needs: [build]
    run: echo migrate >> ledger
  - name: deploy
    needs: [migrate]
    for_each: [eu, us]
    run: echo "deploy-{{ item }}-{{ params.version }}" >> ledger
  - name: smoke
    needs: [deploy]
    run: echo smoke >> ledger
  - name: docs
    run: echo docs >> ledger
"""


class Folder:
    """A workflow folder with its own store (TEMPEH_DB), driven by the real `tempeh`."""

    def __init__(self, root: Path, workflow: str = RELEASE) -> None:
        self.root = root
        self.db = root / "store" / "tempeh.db"
        self.flow = root / "release.yaml"
        self.flow.write_text(workflow)
        self.plan = root / "release.plan.json"

    def tempeh(self, *args: str | Path) -> subprocess.CompletedProcess[str]:
        env = {**os.environ, "TEMPEH_DB": str(self.db), "COLUMNS": "200", "NO_COLOR": "1"}
        return subprocess.run(
            [*TEMPEH, *map(str, args)],
            capture_output=True,
            text=True,
            cwd=self.root,
            env=env,
            timeout=60,
            check=False,
        )

    def ledger(self) -> list[str]:
        path = self.root / "ledger"
        return path.read_text().split() if path.exists() else []

    def show(self) -> dict[str, Any]:
        runs = self.tempeh("runs", "--json")
        newest = json.loads(runs.stdout)[0]["id"]
        data: dict[str, Any] = json.loads(self.tempeh("show", newest, "--json").stdout)
        return data

    def steps(self) -> dict[str, dict[str, Any]]:
        return {s["name"]: s for s in self.show()["steps"]}

    def saved(self) -> dict[str, Any]:
        data: dict[str, Any] = json.loads(self.plan.read_text())
        return data


@pytest.fixture
def folder(tmp_path: Path) -> Folder:
    return Folder(tmp_path)


def test_a_saved_plan_runs_exactly_with_the_params_it_was_planned_with(folder: Folder) -> None:
    planned = folder.tempeh("plan", folder.flow, "-p", "version=2.0", "--out", folder.plan)
    assert planned.returncode == 0, planned.stderr
    saved = folder.saved()
    assert {"workflow", "groups", "critical_path"} <= set(saved)
    assert saved["file"] == str(folder.flow)
    assert saved["params"] == {"version": "2.0"}

    done = folder.tempeh("run", "--plan", folder.plan)

    assert done.returncode == 0, done.stderr
    assert sorted(folder.ledger()) == sorted(
        ["build", "migrate", "deploy-eu-2.0", "deploy-us-2.0", "smoke", "docs"]
    )
    assert folder.show()["params"] == {"version": "2.0"}


def test_an_edited_plan_runs_only_the_units_it_still_selects(folder: Folder) -> None:
    assert folder.tempeh("plan", folder.flow, "--out", folder.plan).returncode == 0
    saved = folder.saved()
    saved["groups"] = [[u for u in group if u != "deploy[us]"] for group in saved["groups"]]
    for step in saved["steps"]:
        if step["name"] == "docs":
            step["selected"] = False
    folder.plan.write_text(json.dumps(saved))

    done = folder.tempeh("run", "--plan", folder.plan)

    assert done.returncode == 0, done.stderr
    assert sorted(folder.ledger()) == ["build", "deploy-eu-1.0", "migrate", "smoke"]
    steps = folder.steps()
    for unit in ("deploy[us]", "docs"):
        assert steps[unit]["status"] == "skipped"
        assert steps[unit]["reason"] == f"not selected in the plan ({folder.plan})"
    assert steps["smoke"]["status"] == "succeeded"  # what was left out counts as done


def test_a_plan_whose_selected_is_not_a_boolean_is_refused(folder: Folder) -> None:
    """`"selected": "no"` used to read as selected: the unit the operator meant to leave out
    ran."""
    assert folder.tempeh("plan", folder.flow, "--out", folder.plan).returncode == 0
    saved = folder.saved()
    for step in saved["steps"]:
        if step["name"] == "docs":
            step["selected"] = "no"
    folder.plan.write_text(json.dumps(saved))

    refused = folder.tempeh("run", "--plan", folder.plan)

    assert refused.returncode == 2
    assert "unit 'docs': 'selected' is 'no'; expected true or false" in refused.stderr
    assert folder.ledger() == []


def test_only_runs_those_steps_and_what_they_need(folder: Folder) -> None:
    assert folder.tempeh("plan", folder.flow, "--out", folder.plan).returncode == 0

    done = folder.tempeh("run", "--plan", folder.plan, "--only", "deploy")

    assert done.returncode == 0, done.stderr
    assert sorted(folder.ledger()) == ["build", "deploy-eu-1.0", "deploy-us-1.0", "migrate"]
    steps = folder.steps()
    why = "not selected in the plan (only deploy and what they need)"
    assert (steps["smoke"]["status"], steps["smoke"]["reason"]) == ("skipped", why)
    assert (steps["docs"]["status"], steps["docs"]["reason"]) == ("skipped", why)
    assert folder.show()["status"] == "succeeded"


def test_skip_toggles_off_a_subtree_also_when_running_a_file(folder: Folder) -> None:
    done = folder.tempeh("run", folder.flow, "--skip", "migrate", "--skip", "docs", "--json")

    assert done.returncode == 0, done.stderr
    assert folder.ledger() == ["build"]
    shown = folder.show()
    assert shown["not_selected"] == {
        "migrate": "not selected in the plan (skip migrate)",
        "deploy[eu]": "not selected in the plan (needs 'migrate', which is not selected)",
        "deploy[us]": "not selected in the plan (needs 'migrate', which is not selected)",
        "smoke": "not selected in the plan (needs 'deploy[eu]', which is not selected)",
        "docs": "not selected in the plan (skip docs)",
    }
    statuses = {s["name"]: s["status"] for s in shown["steps"]}
    assert statuses == {**dict.fromkeys(shown["not_selected"], "skipped"), "build": "succeeded"}


def test_a_workflow_changed_since_planning_is_refused_with_exit_2(folder: Folder) -> None:
    assert folder.tempeh("plan", folder.flow, "--out", folder.plan).returncode == 0
    folder.flow.write_text(RELEASE.replace("echo smoke", "echo smoke-tests"))

    done = folder.tempeh("run", "--plan", folder.plan)

    assert done.returncode == 2
    assert str(folder.plan) in done.stderr
    assert f"the workflow {folder.flow} changed since it was planned" in done.stderr
    assert "Traceback" not in done.stderr
    assert folder.ledger() == []


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (["--only", "deplyo"], "--only: workflow 'release' has no step 'deplyo' (did you mean"),
        (["--skip", "smoek"], "--skip: workflow 'release' has no step 'smoek' (did you mean"),
    ],
)
def test_an_unknown_step_exits_2_with_a_close_match(
    folder: Folder, args: list[str], expected: str
) -> None:
    assert folder.tempeh("plan", folder.flow, "--out", folder.plan).returncode == 0

    for run in (["run", "--plan", str(folder.plan)], ["run", str(folder.flow)]):
        done = folder.tempeh(*run, *args)

        assert done.returncode == 2
        assert expected in done.stderr
        assert "Traceback" not in done.stderr
    assert folder.ledger() == []


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (["release.yaml", "--plan", "release.plan.json"], "not both"),
        (["--plan", "release.plan.json", "-p", "version=3"], "planned with"),
        ([], "give a workflow FILE, or --plan PLAN"),
        (["--plan", "missing.json"], "missing.json: cannot read the plan"),
    ],
)
def test_a_plan_run_asked_for_wrongly_exits_2(
    folder: Folder, args: list[str], expected: str
) -> None:
    assert folder.tempeh("plan", folder.flow, "--out", folder.plan).returncode == 0

    done = folder.tempeh("run", *args)

    assert done.returncode == 2
    assert expected in done.stderr
    assert folder.ledger() == []


def test_resume_keeps_the_units_a_plan_toggled_off(folder: Folder) -> None:
    flaky = RELEASE.replace(
        "run: echo migrate >> ledger",
        "run: test -e fixed && echo migrate >> ledger",
    )
    folder.flow.write_text(flaky)
    assert folder.tempeh("plan", folder.flow, "--out", folder.plan).returncode == 0
    failed = folder.tempeh("run", "--plan", folder.plan, "--skip", "smoke,docs")
    assert failed.returncode == 1
    run_id = folder.show()["id"]
    (folder.root / "fixed").touch()

    resumed = folder.tempeh("resume", run_id)

    assert resumed.returncode == 0, resumed.stderr
    assert "not selected" in resumed.stdout  # the explanation, before it acts
    assert sorted(folder.ledger()) == ["build", "deploy-eu-1.0", "deploy-us-1.0", "migrate"]
    steps = folder.steps()
    assert steps["smoke"]["status"] == steps["docs"]["status"] == "skipped"
    assert steps["smoke"]["reason"] == "not selected in the plan (skip smoke)"


CACHED = """\
name: cached
params:
  version: {default: "1.0"}
steps:
  - name: build
    run: echo build >> ledger
    cache: {key: "build-{{ params.version }}", files: ["src/**"]}
  - name: smoke
    needs: [build]
    run: echo smoke >> ledger
    cache: {key: "{{ steps['build'].outputs }}"}
"""


def plan_steps(folder: Folder, *args: str) -> dict[str, dict[str, Any]]:
    planned = folder.tempeh("plan", folder.flow, "--json", *args)
    assert planned.returncode == 0, planned.stderr
    return {s["name"]: s for s in json.loads(planned.stdout)["steps"]}


def test_plan_shows_a_cache_hit_until_a_cached_file_changes(tmp_path: Path) -> None:
    folder = Folder(tmp_path, CACHED)
    (tmp_path / "src" / "lib").mkdir(parents=True)
    source = tmp_path / "src" / "lib" / "app.py"
    source.write_text("print('v1')\n")

    before = plan_steps(folder)
    assert (before["build"]["decision"], before["build"]["cache"]) == ("run", "miss")
    assert not folder.db.exists()  # a dry run creates no store

    done = folder.tempeh("run", folder.flow)
    assert done.returncode == 0, done.stderr
    run_id = folder.show()["id"]

    hit = plan_steps(folder)["build"]
    assert (hit["decision"], hit["cache"], hit["cached_from"]) == ("cached", "hit", run_id)
    text = folder.tempeh("plan", folder.flow)
    assert f"cache hit: key {hit['cache_key']} succeeded in run {run_id}" in text.stdout
    assert plan_steps(folder, "-p", "version=2.0")["build"]["decision"] == "run"

    source.write_text("print('v2')\n")

    changed = plan_steps(folder)["build"]
    assert (changed["decision"], changed["cache"], changed["cached_from"]) == ("run", "miss", None)


def test_a_cache_key_that_reads_other_steps_is_decided_at_run_time(tmp_path: Path) -> None:
    folder = Folder(tmp_path, CACHED)

    smoke = plan_steps(folder)["smoke"]

    assert smoke["decision"] == "at run time"
    assert smoke["cache"] == "at run time"
    assert "cache key reads steps: decided at run time" in smoke["reason"]


def test_plan_with_skip_saves_a_plan_that_runs_without_those_steps(folder: Folder) -> None:
    planned = folder.tempeh("plan", folder.flow, "--skip", "smoke", "--out", folder.plan)
    assert planned.returncode == 0, planned.stderr
    assert "not selected in the plan (skip smoke)" in planned.stdout

    done = folder.tempeh("run", "--plan", folder.plan)

    assert done.returncode == 0, done.stderr
    assert "smoke" not in folder.ledger()
    assert folder.steps()["smoke"]["status"] == "skipped"


def test_a_step_whose_when_is_false_at_plan_time_is_judged_by_the_run_not_toggled_off(
    folder: Folder,
) -> None:
    banner = "  - {name: banner, when: \"params.version == '9'\", run: echo banner >> ledger}\n"
    folder.flow.write_text(RELEASE + banner)
    assert folder.tempeh("plan", folder.flow, "--out", folder.plan).returncode == 0

    done = folder.tempeh("run", "--plan", folder.plan)

    assert done.returncode == 0, done.stderr
    step = folder.steps()["banner"]
    assert step["status"] == "skipped"
    assert step["reason"].startswith("when is false")


def test_a_store_that_cannot_be_read_does_not_stop_a_plan(tmp_path: Path) -> None:
    folder = Folder(tmp_path, CACHED)
    folder.db.parent.mkdir()
    folder.db.write_text("not a database, and not tempeh's\n" * 100)

    planned = folder.tempeh("plan", folder.flow)

    assert planned.returncode == 0, planned.stderr
    assert "cache hits not shown" in planned.stderr
    assert "Traceback" not in planned.stderr
