"""What a `python:` step prints is its log, like a shell step's output, and nowhere else."""

from __future__ import annotations

import base64
import os
import sys
import textwrap
import threading
from collections.abc import Callable
from pathlib import Path

import anyio
import pytest

from tempeh_tui.definition import parse_workflow
from tempeh_tui.engine.context import StepContext
from tempeh_tui.engine.engine import WorkflowEngine
from tempeh_tui.engine.executor import PythonRequest
from tempeh_tui.engine.local_executor import LocalExecutor
from tempeh_tui.engine.python_output import real_stream, redirect_std_streams
from tempeh_tui.engine.results import RunResult
from tempeh_tui.events import Event, StepOutput

from .support import Recorder

pytestmark = pytest.mark.anyio


def write_module(directory: Path, name: str, text: str) -> None:
    (directory / f"{name}.py").write_text(textwrap.dedent(text))


def request(target: str, directory: Path, timeout: float | None = None) -> PythonRequest:
    context = StepContext(run_id="r1", workflow="wf", step="s", attempt=1, params={}, env={})
    return PythonRequest(target, context, timeout=timeout, search_path=(str(directory),))


async def run_flow(
    tmp_path: Path, text: str, environ: dict[str, str] | None = None
) -> tuple[RunResult, list[tuple[str | None, str, str]]]:
    path = tmp_path / "flow.yaml"
    path.write_text(textwrap.dedent(text))
    workflow = parse_workflow(path.read_text(), str(path))
    environ = {"PATH": os.environ["PATH"], **(environ or {})}
    engine = WorkflowEngine(LocalExecutor(), environ=environ)
    events: list[Event] = []
    engine.subscribe(events.append)
    result = await engine.execute_workflow(workflow, enable_checkpointing=False)
    return result, [(e.step, e.stream, e.line) for e in events if isinstance(e, StepOutput)]


async def test_sync_and_async_steps_printing_at_once_each_get_their_own_lines(
    tmp_path: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    # The two steps take turns (each waits for the other's line), so their prints interleave.
    write_module(
        tmp_path,
        "turns_steps",
        """
        import asyncio, logging, sys, threading

        log = logging.getLogger("turns_steps")  # a handler made when the module is imported
        log.addHandler(logging.StreamHandler())
        log.setLevel(logging.INFO)
        log.propagate = False
        sync_said, async_said = threading.Event(), threading.Event()

        def sync_step(ctx):
            print("sync 1")
            sync_said.set()
            assert async_said.wait(10)
            print("sync 2", file=sys.stderr)
            ctx.log("sync 3 via ctx.log")
            print("sync", 4, end="")
            print()
            log.info("sync 5 via logging")
            sys.stdout.write("sync 6 unfinished")

        async def async_step(ctx):
            while not sync_said.is_set():
                await asyncio.sleep(0.005)
            print("async 1")
            print("async 2", file=sys.stderr)
            async_said.set()
            await asyncio.sleep(0.05)
            print("async 3")
        """,
    )
    result, lines = await run_flow(
        tmp_path,
        """
        name: w
        steps:
          - {name: sync, python: "turns_steps:sync_step"}
          - {name: async, python: "turns_steps:async_step"}
          - {name: shell, run: "echo shell 1; echo shell 2 >&2"}
        """,
    )

    assert result.succeeded
    assert [(s, stream, line) for s, stream, line in lines if s == "sync"] == [
        ("sync", "stdout", "sync 1"),
        ("sync", "stderr", "sync 2"),
        ("sync", "stdout", "sync 3 via ctx.log"),
        ("sync", "stdout", "sync 4"),
        ("sync", "stderr", "sync 5 via logging"),
        ("sync", "stdout", "sync 6 unfinished"),
    ]
    assert [(s, stream, line) for s, stream, line in lines if s == "async"] == [
        ("async", "stdout", "async 1"),
        ("async", "stderr", "async 2"),
        ("async", "stdout", "async 3"),
    ]
    assert ("shell", "stderr", "shell 2") in lines
    assert capfd.readouterr() == ("", "")  # nothing reached the real stdout or stderr


async def test_a_secret_a_python_step_prints_is_masked(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    secret = "hunter2-very-secret"
    monkeypatch.setenv("API_TOKEN", secret)  # a python step reads it in this process
    write_module(
        tmp_path,
        "leaky_steps",
        """
        import base64, os, sys

        def leak(ctx):
            token = os.environ["API_TOKEN"]
            print("token", token)
            print("split", token[:7], end="", flush=True)
            print(token[7:], sep="")
            auth = base64.b64encode(f"user:{token}".encode()).decode()
            print("Authorization: Basic", auth, file=sys.stderr)
        """,
    )
    result, lines = await run_flow(
        tmp_path,
        """
        name: w
        secrets: [API_TOKEN]
        steps:
          - {name: leak, python: "leaky_steps:leak"}
        """,
        environ={"API_TOKEN": secret},
    )

    assert result.succeeded
    assert lines == [
        ("leak", "stdout", "token ***"),
        ("leak", "stdout", "split ***"),
        ("leak", "stderr", "Authorization: Basic dXNlcjp***"),
    ]
    assert base64.b64encode(secret.encode()).decode()[:8] not in str(lines)


async def test_lines_printed_from_many_threads_reach_the_observer_on_the_loop_thread(
    tmp_path: Path,
) -> None:
    write_module(
        tmp_path,
        "threads_steps",
        """
        import contextvars, threading

        def many(ctx):
            def chat(n):
                for i in range(200):
                    print(f"thread {n} line {i}")
            # A new thread starts with an empty context: run it in a copy of the step's.
            threads = [
                threading.Thread(target=contextvars.copy_context().run, args=(chat, n))
                for n in range(3)
            ]
            for t in threads:
                t.start()
            for t in threads:
                t.join()
        """,
    )
    recorder = Recorder()

    result = await LocalExecutor().call_python(request("threads_steps:many", tmp_path), recorder)

    assert result.ok
    assert recorder.threads == {threading.get_ident()}
    lines = recorder.stream("stdout")
    for n in range(3):
        assert [line for line in lines if line.startswith(f"thread {n} ")] == [
            f"thread {n} line {i}" for i in range(200)
        ]
    assert len(lines) == 600


async def wait_until(condition: Callable[[], bool], seconds: float = 10) -> None:
    with anyio.fail_after(seconds):
        while not condition():  # noqa: ASYNC110 - polls a thread and sys.stdout
            await anyio.sleep(0.01)


GATED_STEP = """
import pathlib, sys, time

def gated(ctx):
    print("from the step", sys.stdout.isatty(), sys.stdout.encoding, sys.stdout.fileno())
    gate = pathlib.Path(__file__).with_name("go")
    deadline = time.monotonic() + 10
    while not gate.exists() and time.monotonic() < deadline:
        time.sleep(0.01)
    print("after the gate")
"""


async def test_the_real_streams_are_back_after_the_call_and_others_write_to_them_meanwhile(
    tmp_path: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    write_module(tmp_path, "gated_steps", GATED_STEP)
    before = sys.stdout, sys.stderr
    recorder = Recorder()

    async with anyio.create_task_group() as tg:
        tg.start_soon(LocalExecutor().call_python, request("gated_steps:gated", tmp_path), recorder)
        await wait_until(lambda: bool(recorder.lines))
        assert sys.stdout is not before[0]  # the stand-in, while the step runs
        print("from the test, meanwhile")
        sys.stdout.flush()
        assert not sys.stdout.closed
        assert sys.stdout.encoding == before[0].encoding
        (tmp_path / "go").touch()

    assert (sys.stdout, sys.stderr) == before
    assert capfd.readouterr() == ("from the test, meanwhile\n", "")
    first, second = recorder.stream("stdout")
    assert first.startswith("from the step False")  # a log is not a terminal
    assert second == "after the gate"


async def test_a_step_left_running_after_its_timeout_prints_nowhere(
    tmp_path: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    write_module(tmp_path, "late_steps", GATED_STEP)
    before = sys.stdout
    recorder = Recorder()

    result = await LocalExecutor().call_python(request("late_steps:gated", tmp_path, 0.2), recorder)
    assert result.timed_out
    assert sys.stdout is not before  # the thread runs on: what it prints is still caught
    (tmp_path / "go").touch()
    await wait_until(lambda: sys.stdout is before)

    assert [line.split()[:3] for line in recorder.stream("stdout")] == [["from", "the", "step"]]
    assert capfd.readouterr() == ("", "")


async def test_what_a_module_prints_when_imported_is_the_step_s(tmp_path: Path) -> None:
    write_module(tmp_path, "noisy_import", 'print("importing")\ndef run(ctx):\n    pass\n')
    recorder = Recorder()

    await LocalExecutor().call_python(request("noisy_import:run", tmp_path), recorder)

    assert recorder.lines == [("stdout", "importing")]


def test_outside_any_step_the_stand_in_behaves_as_the_real_stream(
    capfd: pytest.CaptureFixture[str],
) -> None:
    real = sys.stdout
    release = redirect_std_streams()
    try:
        proxy = sys.stdout
        assert proxy is not real
        facts = (proxy.fileno(), proxy.isatty(), proxy.encoding, proxy.errors, proxy.writable())
        assert facts == (real.fileno(), real.isatty(), real.encoding, real.errors, True)
        assert proxy.buffer is real.buffer
        assert real_stream(proxy) is real
        print("printed", flush=True)
        proxy.writelines(["two ", "parts\n"])
        print("to stderr", file=sys.stderr)
    finally:
        release()
        release()  # a second release changes nothing

    assert sys.stdout is real
    assert capfd.readouterr() == ("printed\ntwo parts\n", "to stderr\n")
