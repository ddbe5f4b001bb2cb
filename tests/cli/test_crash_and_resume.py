"""Crashes lose nothing: kill -9 the engine at random moments, resume, and count the work."""

from __future__ import annotations

import contextlib
import json
import os
import random
import signal
import sqlite3
import subprocess
import sys
import tempfile
import textwrap
import time
from collections import Counter
from pathlib import Path

import psutil
import pytest

ROOT = Path(__file__).resolve().parents[2]
TEMPEH = [sys.executable, "-m", "tempeh_tui"]


def tempeh(*args: str, db: Path, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*TEMPEH, *args, "--db", str(db)],
        capture_output=True,
        text=True,
        timeout=timeout,
        cwd=ROOT,
        check=False,
    )


def workflow(tmp_path: Path, ledger: Path, width: int = 6, depth: int = 5) -> Path:
    """`width` parallel chains of `depth` steps; each step appends its name to the ledger."""
    steps = []
    for chain in range(width):
        for level in range(depth):
            name = f"c{chain}-{level}"
            needs = f", needs: [c{chain}-{level - 1}]" if level else ""
            run = f'sleep 0.{(chain + level) % 4 + 1}; echo {name} >> "{ledger}"'
            steps.append(f"  - {{name: {name}, run: '{run}'{needs}}}")
    path = tmp_path / "ledger.yaml"
    path.write_text("name: ledger\nmax_concurrency: 4\nsteps:\n" + "\n".join(steps) + "\n")
    return path


def succeeded(db: Path, run_id: str) -> set[str]:
    shown = json.loads(tempeh("show", run_id, "--json", db=db).stdout)
    return {s["name"] for s in shown["steps"] if s["status"] == "succeeded"}


def start(args: list[str], db: Path) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [*TEMPEH, *args, "--db", str(db), "--json"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=ROOT,
    )


def kill_after(process: subprocess.Popen[str], seconds: float) -> bool:
    """kill -9 the engine `seconds` after it started its first step, unless it finished
    first; True if it was killed. Counted from a step's start, not the process's: however
    slow a loaded machine makes tempeh's own start, every engine gets some work done."""
    assert process.stdout is not None
    for line in process.stdout:  # --json: one event per line
        if json.loads(line)["type"] == "step_started":
            break
    try:
        process.wait(timeout=seconds)
    except subprocess.TimeoutExpired:
        process.send_signal(signal.SIGKILL)
        process.communicate()
        return True
    return False


def test_kill_9_at_random_moments_then_resume_runs_each_finished_step_once(
    tmp_path: Path,
) -> None:
    rng = random.Random(20261125)
    db, ledger = tmp_path / "t.db", tmp_path / "ledger.txt"
    flow = workflow(tmp_path, ledger)
    process = start(["run", str(flow)], db)
    first_line = process.stdout.readline() if process.stdout else ""
    run_id = json.loads(first_line)["run_id"]
    promised: list[tuple[set[str], Counter[str]]] = []
    kills = 0
    while kill_after(process, rng.uniform(0.5, 1.0)):
        kills += 1
        done = succeeded(db, run_id)
        counts = Counter(ledger.read_text().split()) if ledger.exists() else Counter()
        promised.append((done, counts))
        process = start(["resume", run_id, "--yes"], db)
    _, err = process.communicate()
    assert process.returncode == 0, err[-2000:]
    assert kills >= 2, "the run finished too fast to be killed twice; slow its steps down"

    final = Counter(ledger.read_text().split())
    assert set(final) == {f"c{c}-{lv}" for c in range(6) for lv in range(5)}
    for done, counts in promised:
        for name in done:
            assert final[name] == counts[name], f"{name} ran again after it had succeeded"
    assert json.loads(tempeh("show", run_id, "--json", db=db).stdout)["status"] == "succeeded"
    with sqlite3.connect(db) as check:
        assert check.execute("PRAGMA integrity_check").fetchone() == ("ok",)


def test_a_second_driver_of_the_same_run_is_refused_while_the_first_lives(tmp_path: Path) -> None:
    db = tmp_path / "t.db"
    flow = tmp_path / "slow.yaml"
    flow.write_text(
        textwrap.dedent(
            """
            name: slow
            steps:
              - {name: wait, run: "sleep 30"}
            """
        )
    )
    first = start(["run", str(flow)], db)
    try:
        line = first.stdout.readline() if first.stdout else ""
        run_id = json.loads(line)["run_id"]
        contenders = [
            subprocess.Popen(
                [*TEMPEH, "resume", run_id, "--yes", "--db", str(db)],
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
                cwd=ROOT,
            )
            for _ in range(20)
        ]
        outcomes = [c.communicate(timeout=60) for c in contenders]
        assert all(c.returncode == 2 for c in contenders)
        assert all(f"pid {first.pid}" in err for _, err in outcomes)
    finally:
        first.send_signal(signal.SIGINT)
        first.communicate(timeout=30)
    assert first.returncode == 130


def test_resume_kills_what_a_dead_engine_left_running(tmp_path: Path) -> None:
    db, pids = tmp_path / "t.db", tmp_path / "pids"
    flow = tmp_path / "orphans.yaml"
    flow.write_text(
        textwrap.dedent(
            f"""
            name: orphans
            steps:
              - name: sleeper
                run: |
                  sleep 300 & echo $! >> {pids}
                  wait
            """
        )
    )
    process = start(["run", str(flow)], db)
    line = process.stdout.readline() if process.stdout else ""
    run_id = json.loads(line)["run_id"]
    deadline = time.monotonic() + 20
    while not pids.exists():
        assert time.monotonic() < deadline
        time.sleep(0.05)
    process.send_signal(signal.SIGKILL)
    process.communicate()
    orphan = int(pids.read_text().split()[0])
    assert psutil.pid_exists(orphan)
    # its driver is dead: the run reads as `interrupted` (SPEC 2), with its step in doubt
    shown = json.loads(tempeh("show", run_id, "--json", db=db).stdout)
    assert shown["status"] == "interrupted"
    assert "died" in shown["message"]
    # the step it ran is shown `interrupted` (nothing runs it now); resume still finds it in doubt
    assert [(s["status"], s["reason"]) for s in shown["steps"]] == [
        ("interrupted", "was running when its run's process died")
    ]
    listed = json.loads(tempeh("runs", "--json", db=db).stdout)
    assert [(r["id"], r["status"]) for r in listed] == [(run_id, "interrupted")]

    resumed = start(["resume", run_id, "--yes"], db)
    time.sleep(1.5)
    try:
        assert not psutil.pid_exists(orphan) or psutil.Process(orphan).status() == "zombie"
    finally:
        resumed.send_signal(signal.SIGINT)
        resumed.communicate(timeout=30)
        for pid in map(int, pids.read_text().split()):
            if psutil.pid_exists(pid):
                os.kill(pid, signal.SIGKILL)


def test_resume_from_another_directory_runs_steps_where_the_workflow_file_is(
    tmp_path: Path,
) -> None:
    """A run started as `tempeh run flow.yaml` in its folder, resumed from elsewhere: its
    relative scripts and its Python step's module are found (they were looked for in the
    directory `resume` was started from)."""
    app, elsewhere, db = tmp_path / "app", tmp_path / "elsewhere", tmp_path / "t.db"
    app.mkdir()
    elsewhere.mkdir()
    (app / "tool.sh").write_text("echo tool ran in $PWD >> ledger\n")
    (app / "app_steps.py").write_text("def go(ctx):\n    return {'where': 'found'}\n")
    (app / "flow.yaml").write_text(
        textwrap.dedent(
            """
            name: relative
            steps:
              - {name: block, run: "test -f done || { touch done; sleep 30; }"}
              - {name: script, needs: [block], run: "bash tool.sh"}
              - {name: py, needs: [block], python: "app_steps:go"}
            """
        )
    )
    first = subprocess.Popen(
        [*TEMPEH, "run", "flow.yaml", "--db", str(db), "--json"],
        stdout=subprocess.PIPE,
        text=True,
        cwd=app,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )
    assert first.stdout is not None
    run_id = ""
    for line in first.stdout:
        event = json.loads(line)
        run_id = event["run_id"]
        if event["type"] == "step_started":
            break
    while not (app / "done").exists():
        time.sleep(0.02)
    first.kill()
    first.communicate()

    resumed = subprocess.run(
        [*TEMPEH, "resume", run_id, "--yes", "--db", str(db)],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=elsewhere,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        check=False,
    )
    assert resumed.returncode == 0, resumed.stdout[-2000:] + resumed.stderr[-2000:]
    assert (app / "ledger").read_text() == f"tool ran in {app}\n"
    shown = json.loads(tempeh("show", run_id, "--json", db=db).stdout)
    assert {s["name"]: s["outputs"] for s in shown["steps"]}["py"] == {"where": "found"}
    assert shown["source"] == str(app / "flow.yaml")
    # the dead engine's scratch folder (its steps' $TEMPEH_OUTPUT files) is gone with it
    assert list(Path(tempfile.gettempdir()).glob(f"tempeh-{run_id}-*")) == []


@pytest.mark.parametrize("stop", [signal.SIGKILL, signal.SIGINT])
def test_resume_leaves_alone_a_service_a_succeeded_step_detached(
    tmp_path: Path, stop: signal.Signals
) -> None:
    """Resume kills what the dead engine's unfinished steps left, even detached, but a
    service a succeeded step started with `setsid` is the deployment: it used to be killed
    too (it carries the run's id), and the next steps found it gone. Also what a step that
    Ctrl-C stopped left (SIGINT stops its group, not what left it): it ran on beside the
    step's next attempt."""
    db, service, stray = tmp_path / "t.db", tmp_path / "service.pid", tmp_path / "stray.pid"
    flow = tmp_path / "svc.yaml"
    detach = "setsid sleep 300 >/dev/null 2>&1 </dev/null & echo $! >"
    once = f"test -f {tmp_path}/again || {{ touch {tmp_path}/again; {detach} {stray}; sleep 300; }}"
    flow.write_text(
        textwrap.dedent(
            f"""
            name: svc
            steps:
              - {{name: start, run: "{detach} {service}"}}
              - name: hold
                needs: [start]
                run: {once}
            """
        )
    )
    process = start(["run", str(flow)], db)
    run_id = json.loads(process.stdout.readline() if process.stdout else "")["run_id"]
    deadline = time.monotonic() + 20
    while not stray.exists() or not stray.read_text().strip():
        assert time.monotonic() < deadline
        time.sleep(0.05)
    process.send_signal(stop)
    process.communicate(timeout=30)
    assert process.returncode == (-signal.SIGKILL if stop == signal.SIGKILL else 130)
    kept, killed = int(service.read_text()), int(stray.read_text())
    try:
        resumed = tempeh("resume", run_id, "--yes", db=db)
        assert resumed.returncode == 0, resumed.stderr
        assert psutil.Process(kept).status() != psutil.STATUS_ZOMBIE
        assert not psutil.pid_exists(killed) or psutil.Process(killed).status() == "zombie"
    finally:
        for pid in (kept, killed):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
