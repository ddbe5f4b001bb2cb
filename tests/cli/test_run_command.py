"""`tempeh run` as an operator uses it: exit codes, JSON events, the store, SIGINT."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import psutil
import pytest

ROOT = Path(__file__).resolve().parents[2]
TEMPEH = [sys.executable, "-m", "tempeh_tui"]


def tempeh(
    *args: str, db: Path, timeout: float = 60, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*TEMPEH, *args, "--db", str(db)],
        capture_output=True,
        text=True,
        timeout=timeout,
        cwd=ROOT,
        env=env,
        check=False,
    )


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "flow.yaml"
    path.write_text(textwrap.dedent(text))
    return path


def test_a_successful_run_exits_0_and_prints_plain_lines(tmp_path: Path) -> None:
    flow = write(
        tmp_path,
        """
        name: hello
        steps:
          - {name: greet, run: echo hello}
          - {name: after, needs: [greet], run: echo after}
        """,
    )
    done = tempeh("run", str(flow), db=tmp_path / "t.db")
    assert done.returncode == 0, done.stderr
    assert "[greet] | hello" in done.stdout
    assert "succeeded" in done.stdout.splitlines()[-1]


def test_a_failed_run_exits_1_and_json_events_follow_the_spec(tmp_path: Path) -> None:
    flow = write(
        tmp_path,
        """
        name: broken
        on_failure: continue
        steps:
          - {name: ok, run: "true"}
          - {name: bad, run: "echo oops >&2; exit 3"}
          - {name: never, needs: [bad], run: "true"}
        """,
    )
    done = tempeh("run", str(flow), "--json", db=tmp_path / "t.db")
    assert done.returncode == 1, done.stderr
    events = [json.loads(line) for line in done.stdout.splitlines()]
    for event in events:
        assert {"seq", "ts", "run_id", "step", "type"} <= set(event)
        assert event["ts"].endswith("+00:00")
        for time_field in ("process_started", "ended_at"):  # every time: ISO 8601 (SPEC 6)
            assert event.get(time_field) is None or event[time_field].endswith("+00:00")
    assert any(e["type"] == "step_spawned" and e["process_started"] for e in events)
    assert all(e["ended_at"] for e in events if e["type"] == "step_finished")  # never null
    assert [e["seq"] for e in events] == list(range(1, len(events) + 1))
    finished = {e["step"]: e for e in events if e["type"] == "step_finished"}
    assert finished["bad"]["status"] == "failed"
    assert finished["bad"]["exit_code"] == 3
    assert (finished["ok"]["status"], finished["ok"]["exit_code"]) == ("succeeded", 0)
    assert finished["never"]["status"] == "skipped"
    assert events[-1]["type"] == "run_finished"
    assert events[-1]["status"] == "failed"
    assert any(e.get("line") == "oops" and e.get("stream") == "stderr" for e in events)


def test_the_run_is_in_the_store_for_show_and_logs(tmp_path: Path) -> None:
    db = tmp_path / "t.db"
    flow = write(
        tmp_path,
        """
        name: stored
        steps:
          - {name: build, run: 'echo built; echo "artifact=app.tgz" >> "$TEMPEH_OUTPUT"'}
        """,
    )
    assert tempeh("run", str(flow), db=db).returncode == 0
    runs = json.loads(tempeh("runs", "--json", db=db).stdout)
    assert runs[0]["workflow"] == "stored"
    shown = json.loads(tempeh("show", runs[0]["id"], "--json", db=db).stdout)
    assert shown["status"] == "succeeded"
    (build,) = shown["steps"]
    assert (build["name"], build["status"], build["attempts"]) == ("build", "succeeded", 1)
    assert build["outputs"] == {"artifact": "app.tgz"}
    logs = tempeh("logs", runs[0]["id"], "build", db=db)
    assert "built" in logs.stdout


def test_what_python_steps_print_is_in_their_logs_and_json_stays_one_event_a_line(
    tmp_path: Path,
) -> None:
    db = tmp_path / "t.db"
    (tmp_path / "chatty_steps.py").write_text(
        textwrap.dedent(
            """
            import asyncio, logging, sys

            logging.basicConfig(level=logging.INFO, format="%(levelname)s %(message)s")

            def sync_step(ctx):
                for i in range(50):
                    print(f"sync out {i}")
                    print(f"sync err {i}", file=sys.stderr)
                logging.info("sync logged")

            async def async_step(ctx):
                for i in range(50):
                    print(f"async out {i}", end="")
                    await asyncio.sleep(0)
                    print()
                    print(f"async err {i}", file=sys.stderr)
            """
        )
    )
    flow = write(
        tmp_path,
        """
        name: chatty
        steps:
          - {name: sync, python: "chatty_steps:sync_step"}
          - {name: async, python: "chatty_steps:async_step"}
          - {name: shell, run: "for i in 1 2 3; do echo shell $i; done"}
        """,
    )
    done = tempeh("run", str(flow), "--json", db=db)
    assert done.returncode == 0, done.stderr
    assert done.stderr == ""
    events = [json.loads(line) for line in done.stdout.splitlines()]  # each line one event
    printed = [(e["step"], e["stream"], e["line"]) for e in events if e["type"] == "step_output"]
    assert [line for step, _, line in printed if step == "async"] == [
        text for i in range(50) for text in (f"async out {i}", f"async err {i}")
    ]
    assert ("sync", "stderr", "INFO sync logged") in printed
    assert ("sync", "stdout", "sync out 49") in printed

    logs = tempeh("logs", events[0]["run_id"], "sync", db=db)
    assert logs.returncode == 0, logs.stderr
    assert "sync out 0" in logs.stdout
    assert "sync err 49" in logs.stdout
    assert "INFO sync logged" in logs.stdout


def test_what_a_python_steps_children_and_threads_write_goes_to_stderr_never_into_json(
    tmp_path: Path,
) -> None:
    """A Python step runs in tempeh's process: a child it starts inherits tempeh's file
    descriptor 1, and a thread it starts has no step context. Neither may reach stdout,
    where `--json` promises one event per line."""
    db = tmp_path / "t.db"
    (tmp_path / "noisy_steps.py").write_text(
        textwrap.dedent(
            """
            import os, subprocess, sys, threading

            def step(ctx):
                subprocess.run(["echo", "said by a child"], check=True)
                os.write(1, b"written to fd 1\\n")
                subprocess.run(["echo", "given sys.stdout"], stdout=sys.stdout, check=True)
                sys.stdout.buffer.write(b"bytes to sys.stdout.buffer\\n")
                sys.stdout.buffer.flush()
                thread = threading.Thread(target=lambda: print("printed by a thread"))
                thread.start()
                thread.join()
                print("printed by the step")
                return {"done": "yes"}
            """
        )
    )
    flow = write(
        tmp_path,
        """
        name: noisy
        steps:
          - {name: noisy, python: "noisy_steps:step"}
          - {name: after, needs: [noisy], run: "echo ${TEMPEH_PARAM_X:-shell says hi}"}
        """,
    )
    done = tempeh("run", str(flow), "--json", db=db)
    assert done.returncode == 0, done.stderr
    events = [json.loads(line) for line in done.stdout.splitlines()]  # each line one event
    assert events[-1]["type"] == "run_finished"
    printed = [(e["step"], e["line"]) for e in events if e["type"] == "step_output"]
    assert printed == [("noisy", "printed by the step"), ("after", "shell says hi")]
    assert done.stderr.splitlines() == [
        "said by a child",
        "written to fd 1",
        "given sys.stdout",
        "bytes to sys.stdout.buffer",
        "printed by a thread",
    ]


def test_a_bad_param_is_refused_before_anything_runs(tmp_path: Path) -> None:
    flow = write(
        tmp_path,
        """
        name: p
        params: {region: {required: true, choices: [eu, us]}}
        steps:
          - {name: a, run: "touch ran"}
        """,
    )
    done = tempeh("run", str(flow), "-p", "region=mars", db=tmp_path / "t.db")
    assert done.returncode == 2
    assert "expected one of eu, us" in done.stderr
    assert "Traceback" not in done.stderr
    assert not (tmp_path / "ran").exists()


def test_approving_a_step_the_workflow_lacks_is_refused_before_anything_runs(
    tmp_path: Path,
) -> None:
    flow = write(
        tmp_path,
        """
        name: gate
        steps:
          - {name: build, run: "touch ran"}
          - {name: ship-it, needs: [build], confirm: "Ship?"}
        """,
    )
    done = tempeh("run", str(flow), "--approve", "ship_it", db=tmp_path / "t.db")
    assert done.returncode == 2, done.stderr
    assert "--approve: workflow 'gate' has no step 'ship_it'" in done.stderr
    assert "did you mean 'ship-it'" in done.stderr
    assert not (tmp_path / "ran").exists()
    not_a_gate = tempeh("run", str(flow), "--approve", "build", db=tmp_path / "t.db")
    assert not_a_gate.returncode == 2, not_a_gate.stderr
    assert "step 'build' is not an approval gate" in not_a_gate.stderr
    assert "gates of 'gate': ship-it" in not_a_gate.stderr


@pytest.mark.parametrize(
    ("token", "params", "expected"),
    [
        (None, [], "secret(s) not set in the environment: API_TOKEN"),
        (
            "s3cr3t-value",
            ["-p", "note=token s3cr3t-value"],
            "param 'note' holds the value of secret API_TOKEN",
        ),
        (  # its base64, as a careless `-p auth=$(printf ... | base64)` would give
            "s3cr3tvalue123",
            ["-p", "note=czNjcjN0dmFsdWUxMjM="],
            "param 'note' holds the value of secret API_TOKEN (or its base64",
        ),
        ("p@ss:w/rd!x9Q", ["-p", "note=p%40ss%3Aw%2Frd%21x9Q"], "param 'note' holds the value"),
    ],
)
def test_a_run_refused_for_its_secrets_leaves_no_run_in_the_store(
    tmp_path: Path, token: str | None, params: list[str], expected: str
) -> None:
    flow = write(
        tmp_path,
        """
        name: s
        params: {note: {default: ""}}
        secrets: [API_TOKEN]
        steps:
          - {name: a, run: "touch ran"}
        """,
    )
    env = {k: v for k, v in os.environ.items() if k != "API_TOKEN"}
    if token is not None:
        env["API_TOKEN"] = token
    db = tmp_path / "t.db"
    done = tempeh("run", str(flow), *params, db=db, env=env)
    assert done.returncode == 2, done.stderr
    assert expected in done.stderr
    assert not (tmp_path / "ran").exists()
    listed = tempeh("runs", "--json", db=db)
    assert json.loads(listed.stdout) == []  # not a run left `running` for ever
    if token is not None:
        assert token.encode() not in db.read_bytes()
        assert params[-1].split("=", 1)[1].encode() not in db.read_bytes()


def test_sigint_stops_the_run_kills_its_processes_exits_130_and_resume_completes_it(
    tmp_path: Path,
) -> None:
    db = tmp_path / "t.db"
    pids = tmp_path / "pids"
    flow = write(
        tmp_path,
        f"""
        name: long
        steps:
          - name: sleeper
            run: |
              test -f {pids} && exit 0  # the second time round, finish at once
              sleep 300 & echo $! >> {pids}
              sleep 300 & echo $! >> {pids}
              wait
          - {{name: later, needs: [sleeper], run: "true"}}
        """,
    )
    process = subprocess.Popen(
        [*TEMPEH, "run", str(flow), "--db", str(db)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=ROOT,
    )
    deadline = time.monotonic() + 20
    while not (pids.exists() and len(pids.read_text().split()) == 2):
        assert time.monotonic() < deadline, "the step never started"
        time.sleep(0.05)
    process.send_signal(signal.SIGINT)
    _, stderr = process.communicate(timeout=30)
    assert process.returncode == 130, stderr
    for pid in map(int, pids.read_text().split()):
        assert not psutil.pid_exists(pid) or psutil.Process(pid).status() == "zombie"
    runs = json.loads(tempeh("runs", "--json", db=db).stdout)
    assert runs[0]["status"] == "interrupted"

    resumed = tempeh("resume", runs[0]["id"], "--json", db=db)
    assert resumed.returncode == 0, resumed.stdout + resumed.stderr
    lines = [json.loads(line) for line in resumed.stdout.splitlines()]
    for line in lines:  # the explanation too has the shape of an event (SPEC 6)
        assert {"seq", "ts", "run_id", "step", "type"} <= set(line), line
    explained = lines[0]  # the explanation comes first
    assert (explained["type"], explained["run_id"]) == ("resume_plan", runs[0]["id"])
    sleeper = next(u for u in explained["units"] if u["name"] == "sleeper")
    assert sleeper["decision"] == "in doubt"  # stopped half-way: idempotent, so it runs again
    assert "idempotent, so it runs again" in sleeper["why"]
    shown = json.loads(tempeh("show", runs[0]["id"], "--json", db=db).stdout)
    assert shown["status"] == "succeeded"


def test_every_sample_workflow_runs_headless(tmp_path: Path) -> None:
    for sample in ("production-deployment", "fanout-release", "pipeline-outputs"):
        done = tempeh("run", f"sample_workflows/{sample}.yaml", db=tmp_path / "t.db")
        assert done.returncode == 0, (sample, done.stdout[-2000:], done.stderr)
    done = tempeh("run", "sample_workflows/approvals-rollbacks.yaml", "--yes", db=tmp_path / "t.db")
    assert done.returncode == 0, done.stdout[-2000:]


@pytest.mark.parametrize("view", [[], ["--json"]], ids=["plain", "json"])
def test_a_reader_that_goes_away_does_not_stop_the_deployment(
    tmp_path: Path, view: list[str]
) -> None:
    """`tempeh run FILE | head -1`: the run goes on to its end and is stored; only showing it
    stops (no traceback, the run's own exit code)."""
    steps = "".join(
        f"  - {{name: s{i}, run: 'for j in 1 2 3; do echo line $j; done; sleep 0.05'}}\n"
        for i in range(12)
    )
    flow = tmp_path / "flow.yaml"
    flow.write_text("name: piped\nmax_concurrency: 6\nsteps:\n" + steps)
    db = tmp_path / "t.db"
    process = subprocess.Popen(
        [*TEMPEH, "run", str(flow), *view, "--db", str(db)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=ROOT,
    )
    assert process.stdout is not None
    assert process.stderr is not None
    assert process.stdout.readline()
    process.stdout.close()  # the reader is gone
    assert process.wait(timeout=60) == 0
    with process.stderr:
        assert "Traceback" not in process.stderr.read()
    shown = json.loads(tempeh("show", "--json", *[r["id"] for r in runs(db)], db=db).stdout)
    assert shown["status"] == "succeeded"
    assert {s["status"] for s in shown["steps"]} == {"succeeded"}


def runs(db: Path) -> list[dict[str, str]]:
    listed: list[dict[str, str]] = json.loads(tempeh("runs", "--json", db=db).stdout)
    return listed


@pytest.mark.parametrize("view", [[], ["--json"]])
def test_a_pipe_gets_each_line_within_a_tick_while_a_step_still_runs(
    tmp_path: Path, view: list[str]
) -> None:
    """Lines reach a pipe within a tick (0.25 s), not when 8 KiB have piled up or the run
    ends: a CI log shows what a long step is doing while it does it."""
    flow = write(
        tmp_path,
        """
        name: slow
        steps:
          - {name: quick, run: echo ready}
          - {name: long, needs: [quick], run: "echo working; sleep 10"}
        """,
    )
    env = {k: v for k, v in os.environ.items() if k != "PYTHONUNBUFFERED"}  # Python buffers
    process = subprocess.Popen(
        [*TEMPEH, "run", str(flow), *view, "--db", str(tmp_path / "t.db")],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
        cwd=ROOT,
        env=env,
    )
    try:
        assert process.stdout is not None
        started = time.monotonic()
        seen = ""
        while "working" not in seen:
            line = process.stdout.readline()
            assert line, "tempeh ended before the long step printed"
            seen += line
        assert time.monotonic() - started < 8  # the step sleeps 10 s after printing
        assert process.poll() is None
    finally:
        process.send_signal(signal.SIGINT)
        process.wait(timeout=30)
        if process.stdout is not None:
            process.stdout.close()


# `tempeh run` whose store is slow (1.5 s) at one thing, named by TEMPEH_TEST_SLOW, to give a
# Ctrl-C a window to land in: open, create_run or close.
SLOW_STORE = """
import os, sys, anyio
from tempeh_tui.store import sqlite
slow = os.environ["TEMPEH_TEST_SLOW"]
real = getattr(sqlite.SqliteStore, slow)

async def slowly(self, *args):
    print(f"slow {slow}", file=sys.stderr, flush=True)
    await anyio.sleep(1.5)
    return await real(self, *args)

setattr(sqlite.SqliteStore, slow, slowly)
from tempeh_tui.cli import run
sys.argv[0] = "tempeh"
run()
"""


def _interrupted_while(slow: str, flow: Path, db: Path) -> tuple[int, str]:
    """Run `flow` with the store slow at `slow`; Ctrl-C once while it is; exit code, stderr."""
    process = subprocess.Popen(
        [sys.executable, "-c", SLOW_STORE, "run", str(flow), "--db", str(db)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        cwd=ROOT,
        env={**os.environ, "TEMPEH_TEST_SLOW": slow},
    )
    assert process.stderr is not None
    with process.stderr:
        while f"slow {slow}" not in process.stderr.readline():
            assert process.poll() is None, f"tempeh ended before its store's {slow}"
        process.send_signal(signal.SIGINT)
        try:
            code = process.wait(timeout=20)
        finally:
            if process.poll() is None:
                process.kill()
                process.wait()
        return code, process.stderr.read()


def test_a_ctrl_c_while_the_store_closes_after_the_run_neither_hangs_nor_loses_the_run(
    tmp_path: Path,
) -> None:
    """It used to cancel the close half-way, leaving aiosqlite's thread (not a daemon)
    behind: the process then waited for it at exit for ever."""
    flow = write(tmp_path, "name: quick\nsteps:\n  - {name: only, run: 'true'}\n")
    db = tmp_path / "t.db"
    code, stderr = _interrupted_while("close", flow, db)
    assert code == 0, stderr  # the run had succeeded: nothing left to stop
    assert "nothing left to stop" in stderr
    shown = json.loads(tempeh("show", "--json", *[r["id"] for r in runs(db)], db=db).stdout)
    assert shown["status"] == "succeeded"


@pytest.mark.parametrize("slow", ["open", "create_run"])
def test_a_ctrl_c_before_the_run_has_started_runs_nothing_and_exits_130(
    tmp_path: Path, slow: str
) -> None:
    """While the store opens (a big store's check takes a while) or the run is being created:
    the deployment must not start after the operator said stop."""
    ledger = tmp_path / "ran"
    flow = write(tmp_path, f"name: quick\nsteps:\n  - {{name: only, run: 'touch {ledger}'}}\n")
    db = tmp_path / "t.db"
    code, stderr = _interrupted_while(slow, flow, db)
    assert code == 130, stderr
    assert not ledger.exists()
    stored = runs(db)
    if slow == "open":
        assert "stopping before the run starts" in stderr
        assert stored == []
    else:  # created already: it is there, interrupted, and `tempeh resume` would run it
        shown = json.loads(tempeh("show", "--json", stored[0]["id"], db=db).stdout)
        assert shown["status"] == "interrupted"
        assert {s["status"] for s in shown["steps"]} == {"interrupted"}


def test_a_thread_a_library_left_running_does_not_keep_tempeh_from_exiting() -> None:
    script = (
        "import threading, sys\n"
        "from tempeh_tui.cli import _exit\n"
        "threading.Thread(target=threading.Event().wait).start()  # not a daemon: never ends\n"
        "print('bye', flush=True)\n"
        "_exit(3)\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", script],
        check=False,
        capture_output=True,
        text=True,
        timeout=20,
        cwd=ROOT,
    )
    assert done.returncode == 3
    assert done.stdout == "bye\n"


def test_exiting_without_teardown_still_flushes_output_and_runs_atexit_functions(
    tmp_path: Path,
) -> None:
    """`_exit` skips the interpreter's teardown (it cost ~50 ms a run), not what a user's
    Python step registered with `atexit`, nor output still in a buffer."""
    marker = tmp_path / "atexit-ran"
    script = (
        "import atexit, pathlib, sys\n"
        "from tempeh_tui.cli import _exit\n"
        f"atexit.register(pathlib.Path({str(marker)!r}).write_text, 'yes')\n"
        "sys.stdout.write('buffered, never flushed')\n"
        "_exit(4)\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", script], check=False, capture_output=True, text=True, timeout=20
    )
    assert (done.returncode, done.stdout) == (4, "buffered, never flushed")
    assert marker.read_text() == "yes"


def test_an_error_about_what_the_operator_gave_never_echoes_a_secret(tmp_path: Path) -> None:
    flow = write(
        tmp_path,
        """
        name: s
        params: {region: {choices: [eu, us], default: eu}}
        secrets: [API_TOKEN]
        steps:
          - {name: a, run: "true"}
        """,
    )
    token = "S3cr3t-Tok/en+9zQ"
    env = {**os.environ, "API_TOKEN": token}
    for given in (["-p", f"region={token}"], ["--approve", token]):
        done = tempeh("run", str(flow), *given, db=tmp_path / "t.db", env=env)
        assert done.returncode == 2, done.stderr
        assert token not in done.stderr
        assert "***" in done.stderr
    saved = tmp_path / "plan.json"
    planned = tempeh(
        "plan",
        str(flow),
        "-p",
        f"region={token}",
        "--out",
        str(saved),
        db=tmp_path / "t.db",
        env=env,
    )
    assert planned.returncode == 2, planned.stderr
    assert token not in planned.stdout + planned.stderr
    assert not saved.exists()  # a plan that would carry the secret in clear is not written


def test_a_run_started_with_stdout_closed_runs_and_is_stored(tmp_path: Path) -> None:
    """`tempeh run x.yaml >&-` failed with a traceback before anything ran."""
    db = tmp_path / "t.db"
    flow = write(tmp_path, "name: w\nsteps:\n  - {name: a, run: echo hi}\n")
    command = " ".join([*TEMPEH, "run", str(flow), "--headless", "--db", str(db)])
    done = subprocess.run(
        ["bash", "-c", f"{command} >&-"],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    runs = tempeh("runs", "--json", db=db)
    assert [r["status"] for r in json.loads(runs.stdout)] == ["succeeded"]
