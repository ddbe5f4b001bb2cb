"""A per-unit cap on stored log lines (issue 4): the head and the tail are kept, and one marker
line stands for what was left out between them.

A unit's first `head` lines are kept as they come. Later lines go to a rolling tail of at most
`tail` lines; once it overflows, its oldest lines are dropped and the first line ever dropped
becomes the marker (stream `tempeh`, `… N lines omitted …`, N kept up to date). It keeps that
line's sequence number, so reading in order gives head, marker, tail.

`plan_lines` is pure: both stores ask it what to do with a batch's lines of one unit, and do it
with a few statements (SQLite: one insert for the batch, one delete and one update per unit).
"""

from __future__ import annotations

from dataclasses import dataclass, replace

__all__ = [
    "DEFAULT_LOG_CAP",
    "MARKER_STREAM",
    "LogCap",
    "LogPlan",
    "LogRow",
    "UnitLog",
    "marker_text",
    "plan_lines",
]

LogRow = tuple[str, int, float, str, int, str, str]
"""(run_id, seq, ts, step, attempt, stream, line): a `logs` row."""

MARKER_STREAM = "tempeh"


@dataclass(frozen=True)
class LogCap:
    """How many of a unit's lines are kept: the first `head` and the last `tail`."""

    head: int = 5000
    tail: int = 5000

    def __post_init__(self) -> None:
        if self.head < 0 or self.tail < 1:
            raise ValueError(
                f"a log cap keeps 0 or more head lines and at least 1 tail line, "
                f"not head={self.head}, tail={self.tail}"
            )


DEFAULT_LOG_CAP = LogCap()


@dataclass(frozen=True)
class UnitLog:
    """Where a unit's stored log stands (a `log_units` row)."""

    lines: int = 0
    """Lines the unit printed, the omitted ones included."""
    omitted: int = 0
    tail: int = 0
    """Tail lines stored now (after the head; the marker not counted)."""
    tail_start: int | None = None
    """Sequence number of the first line after the head: the marker's, once lines are omitted."""


@dataclass(frozen=True)
class LogPlan:
    """What to do with one unit's new lines."""

    insert: list[LogRow]
    """Rows to insert (the marker among them when it is one of these lines), in order."""
    tail_inserted: int
    """How many of `insert`, at its end, are tail lines (not head, not marker)."""
    drop: int
    """How many of the stored tail lines (sequence number above `tail_start`) to delete,
    oldest first."""
    marker: tuple[int, str] | None
    """(seq, text) to write over a stored row: the marker, or the line that becomes it."""
    state: UnitLog


def marker_text(omitted: int) -> str:
    return f"… {omitted} lines omitted …"


def plan_lines(cap: LogCap, state: UnitLog, rows: list[LogRow]) -> LogPlan:
    """The plan for `rows` (one unit's, in order) given the unit's `state` before them."""
    room = max(0, cap.head - state.lines) if state.tail_start is None else 0
    head, rest = rows[:room], rows[room:]
    tail_start = state.tail_start
    if tail_start is None and rest:
        tail_start = rest[0][1]
    overflow = max(0, state.tail + len(rest) - cap.tail)
    from_stored = min(overflow, state.tail)
    from_new = overflow - from_stored
    omitted = state.omitted + overflow
    kept = rest[from_new:]

    insert = list(head)
    drop = from_stored
    marker: tuple[int, str] | None = None
    if overflow and state.omitted == 0 and from_stored == 0:
        # The first line ever omitted is in this batch: it is stored as the marker.
        first = rest[0]
        insert.append((*first[:5], MARKER_STREAM, marker_text(omitted)))
    elif overflow:
        assert tail_start is not None
        marker = (tail_start, marker_text(omitted))
        if state.omitted == 0:
            drop -= 1  # the oldest stored tail line, at `tail_start`, becomes the marker
    insert.extend(kept)
    after = replace(
        state,
        lines=state.lines + len(rows),
        omitted=omitted,
        tail=state.tail + len(rest) - overflow,
        tail_start=tail_start,
    )
    return LogPlan(insert=insert, tail_inserted=len(kept), drop=drop, marker=marker, state=after)
