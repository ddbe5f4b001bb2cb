"""The headless views of a run: JSON lines, plain lines (CI logs), or a Rich live view.

Each is a subscriber of the engine's one event stream (SPEC 7); none knows the engine's insides.
"""

from __future__ import annotations

import json
import os
import sys
import time
from collections import Counter, deque
from dataclasses import dataclass
from typing import IO, TYPE_CHECKING, Any, Protocol, cast

from tempeh_tui.definition.durations import format_elapsed
from tempeh_tui.engine.python_output import real_stream
from tempeh_tui.events import (
    ConcurrencyChanged,
    Event,
    RollbackFinished,
    RollbackPlanned,
    RollbackStepFinished,
    RollbackStepStarted,
    RunFinished,
    RunStarted,
    StepFinished,
    StepOutput,
    StepRetrying,
    StepStarted,
    StepStatus,
    StepStatusChanged,
)
from tempeh_tui.events.types import iso_time

_WAITING_FOR_NEEDS = "waiting for its needs"

if TYPE_CHECKING:  # rich is imported by the live view only: plain and JSON runs start faster
    from rich.console import Console, RenderableType

__all__ = [
    "HeadlessView",
    "JsonLinesView",
    "LiveView",
    "PlainView",
    "choose_view",
    "json_notice",
]

ICONS = {
    StepStatus.PENDING: ("·", "dim"),
    StepStatus.WAITING: ("…", "yellow"),
    StepStatus.AWAITING_CONFIRMATION: ("?", "magenta"),
    StepStatus.RUNNING: ("▶", "cyan"),
    StepStatus.SUCCEEDED: ("✓", "green"),
    StepStatus.FAILED: ("✗", "red"),
    StepStatus.SKIPPED: ("↷", "dim"),
    StepStatus.CANCELLED: ("■", "red"),
    StepStatus.INTERRUPTED: ("‖", "yellow"),
    StepStatus.ROLLING_BACK: ("↺", "yellow"),
    StepStatus.ROLLED_BACK: ("↺", "green"),
    StepStatus.ROLLBACK_FAILED: ("↺", "red"),
}
"""A symbol per state, so the state never rests on colour alone (SPEC 8)."""


class HeadlessView(Protocol):
    def handle(self, event: Event) -> None: ...

    def tick(self) -> None: ...

    def close(self) -> None: ...


def json_notice(kind: str, run_id: str, **fields: object) -> str:
    """A `--json` line that is not a stored event (a plan shown before acting), in the same
    shape as the events around it (SPEC 6): `seq` 0, as it comes before them all."""
    head = {"seq": 0, "ts": iso_time(time.time()), "run_id": run_id, "step": None, "type": kind}
    return json.dumps({**head, **fields}, ensure_ascii=False)


class JsonLinesView:
    """`--json`: one JSON object per event and line (SPEC 6)."""

    def __init__(self, out: IO[str] | None = None) -> None:
        self._out = out or real_stream(sys.stdout)

    def handle(self, event: Event) -> None:
        self._out.write(json.dumps(event.to_json(), ensure_ascii=False, default=str) + "\n")

    def tick(self) -> None:
        self._out.flush()  # the lines since the last tick, in one write (see `_ViewStream`)

    def close(self) -> None:
        self._out.flush()


class PlainView:
    """Plain lines for logs and pipes: what started, printed, retried and ended."""

    def __init__(self, out: IO[str] | None = None) -> None:
        self._out = out or real_stream(sys.stdout)
        self._started = time.time()
        self._rollback_started: float | None = None

    def _line(self, text: str) -> None:
        self._out.write(text + "\n")

    def handle(self, event: Event) -> None:
        name = f"[{event.step}]" if event.step else ""
        if isinstance(event, StepOutput):
            mark = "»" if event.stream == "tempeh" else ("!" if event.stream == "stderr" else "|")
            self._line(f"{name} {mark} {event.line}" if name else f"» {event.line}")
        elif isinstance(event, StepStarted):
            what = f": {_one_line(event.command)}" if event.command else ""
            loop = f", iteration {event.iteration}" if event.iteration > 1 else ""
            self._line(f"{name} started (attempt {event.attempt}{loop}){what}")
        elif isinstance(event, StepRetrying):
            self._line(
                f"{name} attempt {event.attempt} failed ({event.error_class}); "
                f"retrying in {format_elapsed(event.delay)}"
            )
        elif isinstance(event, StepFinished):
            self._line(f"{name} {_finished(event)}")
        elif isinstance(event, StepStatusChanged) and event.reason:
            if event.reason.startswith(_WAITING_FOR_NEEDS):
                pass  # a line for every step with needs: noise
            elif event.status is StepStatus.WAITING:
                self._line(f"{name} {event.reason}")  # "waiting for …" says it already
            else:
                self._line(f"{name} {event.status.value}: {event.reason}")
        elif isinstance(event, RunStarted):
            self._started = event.ts
            self._line(
                f"run {event.run_id}: {event.workflow}, {len(event.units)} steps, "
                f"max_concurrency {event.max_concurrency}"
            )
        elif isinstance(event, ConcurrencyChanged):
            self._line(f"max_concurrency is now {event.max_concurrency}")
        elif isinstance(event, RunFinished):
            counts = ", ".join(f"{n} {s}" for s, n in sorted(event.counts.items()))
            elapsed = format_elapsed(event.ts - self._started)  # the run's: rollback included
            why = f" ({event.message})" if event.message else ""
            counts = f": {counts}" if counts else ""
            self._line(f"run {event.run_id} {event.status.value} in {elapsed}{counts}{why}")
        else:
            self._rollback(event, name)

    def _rollback(self, event: Event, name: str) -> None:
        if isinstance(event, RollbackPlanned):
            self._rollback_started = event.ts
            units = len(event.plan.get("units", ()))
            self._line(f"rollback {event.rollback_id} of run {event.run_id}: {units} steps")
        elif isinstance(event, RollbackStepStarted):
            what = f": {_one_line(event.command)}" if event.command else ""
            self._line(f"{name} rolling back{what}")
        elif isinstance(event, RollbackStepFinished):
            icon = ICONS[event.status][0]
            why = f": {event.reason}" if event.reason else ""
            self._line(f"{name} {icon} {event.status.value}{why}")
        elif isinstance(event, RollbackFinished):
            started = self._rollback_started if self._rollback_started is not None else event.ts
            elapsed = format_elapsed(event.ts - started)
            why = f" ({event.message})" if event.message else ""
            self._line(f"rollback {event.rollback_id} {event.status.value} in {elapsed}{why}")

    def tick(self) -> None:
        self._out.flush()  # the lines since the last tick, in one write (see `_ViewStream`)

    def close(self) -> None:
        self._out.flush()


def _one_line(command: str) -> str:
    lines = [line for line in command.strip().splitlines() if line.strip()]
    return lines[0] + (" …" if len(lines) > 1 else "") if lines else ""


def _finished(event: StepFinished) -> str:
    icon = ICONS[event.status][0]
    took = f" in {format_elapsed(event.duration)}" if event.duration is not None else ""
    text = f"{icon} {event.status.value}{took}"
    if event.cached:
        text += " (cached)"
    if event.exit_code not in (None, 0):
        text += f", exit code {event.exit_code}"
    if event.reason:
        text += f": {event.reason}"
    return text


@dataclass
class _UnitRow:
    status: StepStatus = StepStatus.PENDING
    attempts: int = 0
    started: float | None = None
    ended: float | None = None
    last_line: str = ""


class LiveView:
    """A Rich live view on a terminal: a header with counts, the active and latest units."""

    def __init__(self, console: Console | None = None, *, rows: int = 20) -> None:
        from rich.console import Console
        from rich.live import Live

        self._console = console or Console()
        self._rows: dict[str, _UnitRow] = {}
        self._recent: deque[str] = deque(maxlen=rows)
        self._title = "tempeh"
        self._run_started = time.time()
        self._finished: RunFinished | None = None
        # refreshed from the event loop only (no refresh thread: the model is not locked)
        self._live = Live(console=self._console, get_renderable=self._render, auto_refresh=False)
        self._live.start()
        self._last_refresh = 0.0

    def tick(self) -> None:
        """Redraw if a frame's time has passed (called per event and by a timer)."""
        now = time.monotonic()
        if now - self._last_refresh >= 1 / 8:
            self._last_refresh = now
            self._live.refresh()

    def handle(self, event: Event) -> None:
        self._apply(event)
        self.tick()

    def _apply(self, event: Event) -> None:
        if isinstance(event, RunStarted):
            self._title = f"{event.workflow}  run {event.run_id}"
            self._run_started = event.ts
            self._rows = {name: _UnitRow() for name in event.units}
            return
        if isinstance(event, RunFinished):
            self._finished = event
            return
        if isinstance(event, RollbackPlanned):
            self._title = f"rollback of run {event.run_id}"
            self._run_started = event.ts
            self._rows = {u["unit"]: _UnitRow() for u in event.plan.get("units", ())}
            return
        if isinstance(event, RollbackFinished):
            self._finished = RunFinished(
                run_id=event.run_id, ts=event.ts, status=event.status, message=event.message
            )
            return
        if event.step is None or event.step not in self._rows:
            return
        if isinstance(event, RollbackStepStarted | RollbackStepFinished):
            row = self._rows[event.step]
            if isinstance(event, RollbackStepStarted):
                row.status, row.started = StepStatus.ROLLING_BACK, event.ts
            else:
                row.status, row.ended = event.status, event.ts
                row.last_line = event.reason or row.last_line
            self._touch(event.step)
            return
        row = self._rows[event.step]
        if isinstance(event, StepStarted):
            row.status, row.attempts = StepStatus.RUNNING, event.attempt
            row.started = row.started or event.ts
            self._touch(event.step)
        elif isinstance(event, StepOutput):
            row.last_line = event.line
        elif isinstance(event, StepStatusChanged):
            row.status = event.status
        elif isinstance(event, StepFinished):
            row.status, row.ended = event.status, event.ts
            row.attempts = max(row.attempts, event.attempts)
            if event.reason and event.status is not StepStatus.SUCCEEDED:
                row.last_line = event.reason
            self._touch(event.step)

    def _touch(self, name: str) -> None:
        if name in self._recent:
            self._recent.remove(name)
        self._recent.append(name)

    def _render(self) -> RenderableType:
        from rich.console import Group
        from rich.table import Table
        from rich.text import Text

        counts = Counter(row.status for row in self._rows.values())
        now = self._finished.ts if self._finished else time.time()
        header = Text.assemble(
            (self._title, "bold"), f"  {format_elapsed(now - self._run_started)}  "
        )
        for status, (icon, style) in ICONS.items():
            if counts[status]:
                header.append(f"{icon} {counts[status]} {status.value}  ", style=style)
        table = Table(show_header=False, box=None, pad_edge=False, expand=True)
        table.add_column(width=2, no_wrap=True)
        table.add_column(no_wrap=True, ratio=2)
        table.add_column(no_wrap=True, width=10)
        table.add_column(no_wrap=True, ratio=3, style="dim")
        for name in self._recent:
            row = self._rows[name]
            icon, style = ICONS[row.status]
            end = row.ended or now
            took = format_elapsed(end - row.started) if row.started else ""
            tries = f" ×{row.attempts}" if row.attempts > 1 else ""
            table.add_row(Text(icon, style=style), Text(name + tries), took, Text(row.last_line))
        parts: list[RenderableType] = [header, table]
        if self._finished is not None:
            done = self._finished
            why = f": {done.message}" if done.message else ""
            parts.append(Text(f"run {done.status.value}{why}", style="bold"))
        return Group(*parts)

    def close(self) -> None:
        self._live.refresh()
        self._live.stop()


class _ViewStream:
    """The view's stream.

    It forgives a reader that went away (`tempeh run … | head -1`): the deployment goes on,
    stored as ever; only showing it stops. (A view that raised would stop the engine in the
    middle of a run.)

    With `hold`, lines wait for the next `flush`, which the views do on every tick (4 times
    a second) and at the end: a pipe gets them within a quarter second whatever Python's own
    buffering (block-buffered, a slow step's lines could wait for 8 KiB of others; or with
    PYTHONUNBUFFERED, one `write` a line: 2,000 for 1,000 steps, ~5% of such a run here)."""

    def __init__(self, stream: IO[str], *, hold: bool = False) -> None:
        self._stream = stream
        self._held: list[str] | None = [] if hold else None
        self.gone = False

    def write(self, text: str) -> int:
        if self._held is not None and not self.gone:
            self._held.append(text)
            return len(text)
        self._write(text)
        return len(text)

    def flush(self) -> None:
        if self._held:
            text = "".join(self._held)
            self._held.clear()
            self._write(text)
        if not self.gone:
            try:
                self._stream.flush()
            except (BrokenPipeError, ValueError):
                self._went_away()

    def _write(self, text: str) -> None:
        if not self.gone:
            try:
                self._stream.write(text)
            except (BrokenPipeError, ValueError):  # ValueError: the stream was closed
                self._went_away()

    def _went_away(self) -> None:
        self.gone = True
        try:  # nothing more reaches the pipe, not even the interpreter's last flush
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, self._stream.fileno())
            os.close(devnull)
        except (OSError, ValueError, AttributeError):
            pass

    def __getattr__(self, name: str) -> Any:
        return getattr(self._stream, name)


def choose_view(*, json_lines: bool, out: IO[str] | None = None) -> HeadlessView:
    """JSON with --json; a live view on a terminal; plain lines otherwise.

    Written to the real stdout even while Python steps run: what they print goes to their logs
    through a stand-in for `sys.stdout` (`python_output`), tempeh's own output never does."""
    target = out or real_stream(sys.stdout)
    terminal = target.isatty()
    # lines wait for the next tick, except on a terminal (where the live view draws itself)
    stream = cast(IO[str], _ViewStream(target, hold=json_lines or not terminal))
    if json_lines:
        return JsonLinesView(stream)
    if terminal:
        from rich.console import Console

        return LiveView(Console(file=stream))
    return PlainView(stream)
