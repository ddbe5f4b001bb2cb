"""FakeExecutor: the scripted executor engine tests drive."""

from __future__ import annotations

import anyio
import pytest

from tempeh_tui.engine.context import StepContext
from tempeh_tui.engine.executor import PythonRequest, ShellRequest
from tempeh_tui.engine.fake_executor import FAKE_PID_BASE, FakeExecutor, FakeOutcome

from .support import Recorder

pytestmark = pytest.mark.anyio


def request(step: str, attempt: int = 1, timeout: float | None = None) -> ShellRequest:
    env = {"TEMPEH_STEP": step, "TEMPEH_ATTEMPT": str(attempt)}
    return ShellRequest("./deploy.sh", env, "/", timeout=timeout)


async def test_outcomes_are_played_one_per_attempt_and_the_last_repeats() -> None:
    executor = FakeExecutor(
        {"deploy": [FakeOutcome(exit_code=75), FakeOutcome(outputs={"v": "2"})]}
    )
    results = [await executor.run_shell(request("deploy", n), Recorder()) for n in (1, 2, 3)]

    assert [r.exit_code for r in results] == [75, 0, 0]
    assert results[2].outputs == {"v": "2"}
    assert executor.calls[0].command == "./deploy.sh"
    assert executor.calls[0].env["TEMPEH_STEP"] == "deploy"
    assert [(c.name, c.attempt, c.order) for c in executor.calls] == [
        ("deploy", 1, 0),
        ("deploy", 2, 1),
        ("deploy", 3, 2),
    ]


async def test_unscripted_steps_get_the_default_and_lines_reach_the_observer() -> None:
    executor = FakeExecutor(default=FakeOutcome(lines=["hi"]))
    recorder = Recorder()
    result = await executor.run_shell(request("other"), recorder)

    assert result.ok
    assert recorder.lines == [("stdout", "hi")]
    assert recorder.pids == [FAKE_PID_BASE]  # beyond any real pid: safe to "kill"


async def test_python_calls_are_named_by_their_context() -> None:
    executor = FakeExecutor({"notify": [FakeOutcome(error="boom", exit_code=1)]})
    ctx = StepContext(run_id="r", workflow="w", step="notify", attempt=2, params={}, env={})
    result = await executor.call_python(PythonRequest("m:f", ctx), Recorder())

    assert result.error == "boom"
    assert executor.calls[0].kind == "python"
    assert executor.calls[0].attempt == 2
    assert (executor.calls[0].command, executor.calls[0].env) == ("m:f", {})


async def test_peak_concurrency_is_tracked() -> None:
    executor = FakeExecutor(default=FakeOutcome(duration=0.05))
    async with anyio.create_task_group() as group:
        for name in "abc":
            group.start_soon(executor.run_shell, request(name), Recorder())

    assert executor.max_running == 3
    assert executor.running == 0
    assert sorted(executor.names()) == ["a", "b", "c"]


async def test_an_outcome_longer_than_the_timeout_times_out() -> None:
    executor = FakeExecutor({"slow": [FakeOutcome(duration=10)]})
    result = await executor.run_shell(request("slow", timeout=0.01), Recorder())

    assert result.timed_out
    assert not result.ok


async def test_a_call_can_be_cancelled() -> None:
    executor = FakeExecutor(default=FakeOutcome(duration=10))
    with anyio.move_on_after(0.05) as scope:
        await executor.run_shell(request("long"), Recorder())

    assert scope.cancelled_caught
    assert executor.running == 0
