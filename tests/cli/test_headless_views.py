"""The headless views write tempeh's own output to the real stdout, whatever steps print."""

from __future__ import annotations

import asyncio
import json

import pytest

from tempeh_tui.cli.headless import choose_view
from tempeh_tui.engine.python_output import StepPrints
from tempeh_tui.events import StepOutput

pytestmark = pytest.mark.anyio


class Lines:
    def __init__(self) -> None:
        self.lines: list[tuple[str, str]] = []

    def output(self, stream: str, line: str) -> None:
        self.lines.append((stream, line))

    def spawned(self, pid: int, started: float | None = None) -> None:
        pass


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


async def test_a_view_made_and_called_while_a_python_step_prints_writes_to_the_real_stdout(
    capfd: pytest.CaptureFixture[str],
) -> None:
    step_log = Lines()
    with StepPrints(step_log, asyncio.get_running_loop()) as prints:
        view = choose_view(json_lines=True)
        view.handle(StepOutput(run_id="r1", seq=1, step="deploy", stream="stdout", line="hi"))
        print("the step's own line")
        view.close()
    await prints.flush()

    (event,) = map(json.loads, capfd.readouterr().out.splitlines())
    assert (event["type"], event["line"]) == ("step_output", "hi")
    assert step_log.lines == [("stdout", "the step's own line")]


def test_the_plain_view_times_the_run_whole_and_the_rollback_on_its_own() -> None:
    import io

    from tempeh_tui.events import RollbackFinished, RollbackPlanned, RunFinished, RunStarted
    from tempeh_tui.events.states import RunStatus

    out = io.StringIO()
    view = choose_view(json_lines=False, out=out)
    view.handle(RunStarted(run_id="r1", seq=1, ts=100.0, workflow="w", units=("a",)))
    view.handle(RollbackPlanned(run_id="r1", seq=2, ts=101.5, rollback_id="rb1", plan={}))
    done = RunStatus.ROLLED_BACK
    view.handle(RollbackFinished(run_id="r1", seq=3, ts=102.0, rollback_id="rb1", status=done))
    view.handle(RunFinished(run_id="r1", seq=4, ts=102.0, status=done, message="undone"))
    view.close()
    lines = out.getvalue().splitlines()
    assert lines[-2] == "rollback rb1 rolled_back in 500ms"
    assert lines[-1] == "run r1 rolled_back in 2.0s (undone)"  # no empty counts
