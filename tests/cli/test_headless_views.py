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
