"""LocalExecutor.call_python: the user-code boundary for `python:` steps."""

from __future__ import annotations

import sys
import time
from pathlib import Path

import anyio
import pytest

from tempeh_tui.engine.context import StepContext
from tempeh_tui.engine.executor import PythonRequest
from tempeh_tui.engine.local_executor import LocalExecutor
from tempeh_tui.engine.python_output import real_stream

from .support import Recorder

pytestmark = pytest.mark.anyio


def context(step: str = "notify") -> StepContext:
    return StepContext(
        run_id="r1", workflow="wf", step=step, attempt=1, params={"who": "ops"}, env={}
    )


def call(
    target: str, timeout: float | None = None, search_path: tuple[str, ...] = ()
) -> PythonRequest:
    return PythonRequest(target, context(), timeout=timeout, search_path=search_path)


@pytest.fixture
def executor() -> LocalExecutor:
    return LocalExecutor()


async def test_a_sync_function_returns_outputs_as_strings(executor: LocalExecutor) -> None:
    result = await executor.call_python(call("tests.engine.pysteps:greet"), Recorder())

    assert result.ok
    assert result.outputs == {"greeting": "hello ops", "count": "3"}


async def test_an_async_function_returning_none_succeeds_with_no_outputs(
    executor: LocalExecutor,
) -> None:
    result = await executor.call_python(call("tests.engine.pysteps:nothing"), Recorder())

    assert result.ok
    assert result.outputs == {}


async def test_an_object_with_an_async_call_is_awaited(executor: LocalExecutor) -> None:
    result = await executor.call_python(call("tests.engine.pysteps:deploy"), Recorder())

    assert result.outputs == {"deployed": "notify"}


async def test_an_exception_becomes_a_failure_with_its_traceback(executor: LocalExecutor) -> None:
    result = await executor.call_python(call("tests.engine.pysteps:fail"), Recorder())

    assert (result.exit_code, result.ok) == (1, False)
    assert result.error == "ValueError: boom in notify"
    assert result.traceback is not None
    assert result.traceback.startswith("Traceback (most recent call last):\n")
    assert 'pysteps.py", line' in result.traceback
    assert "in fail" in result.traceback
    assert "local_executor" not in result.traceback  # the user's frames, not ours
    assert result.traceback.rstrip().endswith("second line")


async def test_an_async_exception_becomes_a_failure(executor: LocalExecutor) -> None:
    result = await executor.call_python(call("tests.engine.pysteps:fail_async"), Recorder())

    assert result.error == "RuntimeError: async boom"
    assert result.traceback is not None
    assert "in fail_async" in result.traceback


@pytest.mark.parametrize(
    ("target", "error"),
    [
        ("tests.engine.pysteps:wrong_return", "the step returned a list; a python step returns"),
        ("tests.engine.pysteps:bad_key", "the step returned output 'not a name'"),
        ("tests.engine.pysteps:exits", "SystemExit: 3"),
        ("tests.engine.pysteps:missing", "AttributeError: module 'tests.engine.pysteps' has no"),
        ("tests.engine.pysteps:NOT_CALLABLE", "TypeError: python target"),
        ("tests.engine.no_such_module:run", "ModuleNotFoundError: No module named"),
        ("no-colon", "ValueError: python target 'no-colon' is not 'module:function'"),
    ],
)
async def test_what_cannot_be_called_or_returned_is_a_clear_failure(
    executor: LocalExecutor, target: str, error: str
) -> None:
    result = await executor.call_python(call(target), Recorder())

    assert not result.ok
    assert result.exit_code is not None
    assert result.error is not None
    assert result.error.startswith(error)


async def test_an_async_function_is_stopped_at_its_timeout(executor: LocalExecutor) -> None:
    started = time.monotonic()
    result = await executor.call_python(call("tests.engine.pysteps:slow_async", 0.2), Recorder())

    assert result.timed_out
    assert result.error == "timed out after 0.2s"
    assert time.monotonic() - started < 2


async def test_a_sync_function_is_reported_timed_out_at_its_deadline(
    executor: LocalExecutor,
) -> None:
    from tests.engine import pysteps

    pysteps.SLOW_SYNC_MAY_END.clear()
    started = time.monotonic()
    result = await executor.call_python(call("tests.engine.pysteps:slow_sync", 0.2), Recorder())

    assert result.timed_out
    assert time.monotonic() - started < 1.2  # the thread itself sleeps 1.5 s, unseen
    # let it end: until it does, it holds the std streams redirected (see python_output),
    # which the next test would meet
    pysteps.SLOW_SYNC_MAY_END.set()
    while real_stream(sys.stdout) is not sys.stdout:  # noqa: ASYNC110 - nothing to wait on
        await anyio.sleep(0.01)


async def test_modules_are_found_in_the_search_path_and_imported_once(
    executor: LocalExecutor, tmp_path: Path
) -> None:
    (tmp_path / "tempeh_test_hooks.py").write_text(
        "CALLS = []\n"
        "def hook(context):\n"
        "    CALLS.append(context.step)\n"
        "    return {'n': len(CALLS)}\n"
    )
    try:
        first = await executor.call_python(
            call("tempeh_test_hooks:hook", search_path=(str(tmp_path),)), Recorder()
        )
        second = await executor.call_python(
            call("tempeh_test_hooks:hook", search_path=(str(tmp_path),)), Recorder()
        )
    finally:
        sys.modules.pop("tempeh_test_hooks", None)
        sys.path.remove(str(tmp_path))

    assert (first.outputs, second.outputs) == ({"n": "1"}, {"n": "2"})
