"""`tempeh decide` as an operator uses it from another terminal: a retry with changed env and
params (`-e`, `-p`) for that run of the step only (SPEC 5.2)."""

from __future__ import annotations

import json
from pathlib import Path

from .processes import WAITING, answer, finish, query, tempeh, wait_for

RELEASE = """\
name: release
on_failure: pause
params:
  version: {default: "1.0"}
steps:
  - name: migrate
    run: printf '%s|%s\\n' "{{ params.version }}" "${LEVEL:-}" >> OUT; test "${LEVEL:-}" = debug
  - name: deploy
    needs: [migrate]
    run: printf 'deploy %s|%s\\n' "{{ params.version }}" "${LEVEL:-}" >> OUT
"""


def write(tmp_path: Path, text: str) -> tuple[Path, Path]:
    out = tmp_path / "out.txt"
    path = tmp_path / "wf.yaml"
    path.write_text(text.replace("OUT", str(out)))
    return path, out


def test_a_retry_changes_env_and_params_for_that_run_of_the_step_only(tmp_path: Path) -> None:
    db = tmp_path / "tempeh.db"
    marker = tmp_path / "pwned"
    workflow, out = write(tmp_path, RELEASE)
    run = tempeh("run", "--wait-for-decision", str(workflow), db=db)  # the option before FILE
    ((run_id, *_),) = wait_for(db, WAITING, run)
    refused = {
        ("retry", "-e", "TEMPEH_STEP=x"): "TEMPEH_* variables are tempeh's own",
        ("retry", "-p", "versoin=2"): "has no param 'versoin' (did you mean 'version'?)",
        ("retry", "-e", "LEVEL"): "-e LEVEL: expected NAME=VALUE",
        ("skip", "-e", "LEVEL=debug"): "go with retry only, not with skip",
    }
    for words, why in refused.items():
        wrong = answer("decide", str(run_id), "migrate", *words, db=db)
        assert (wrong.returncode, why in wrong.stderr) == (2, True), wrong.stderr
    assert query(db, WAITING)  # nothing was stored: it still waits
    injected = f"$(touch {marker})"
    done = answer(
        "decide", str(run_id), "migrate", "retry", "-e", "LEVEL=debug", "-p", f"version={injected}",
        db=db,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert f"migrate: retry with params version={injected}; env LEVEL=debug" in done.stdout
    assert finish(run) == 0
    assert out.read_text().splitlines() == ["1.0|", f"{injected}|debug", "deploy 1.0|"]
    assert not marker.exists()  # the value reached bash as data, never as code
    shown = answer("show", str(run_id), db=db)
    assert "decisions:" in shown.stdout
    assert f"migrate failure: retry with params version={injected}; env LEVEL=debug" in (
        " ".join(shown.stdout.split())
    )
    (decision,) = json.loads(answer("show", str(run_id), "--json", db=db).stdout)["decisions"]
    assert (decision["answer"], decision["env"]) == ("retry", {"LEVEL": "debug"})
    assert decision["params"] == {"version": injected}
