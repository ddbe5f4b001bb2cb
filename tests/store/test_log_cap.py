"""Logs beyond a per-step cap keep their head and tail with a marker between (issue 4).

The reference below says what any unit's stored log must be; both stores, flushed at any
moments, must store exactly that."""

from __future__ import annotations

import random
import tempfile
import time
from collections.abc import AsyncIterator
from pathlib import Path

import anyio
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tempeh_tui.events import EventBus, StepOutput
from tempeh_tui.store import LogCap, LogRecord, MemoryStore, SqliteStore, Store
from tests.store.support import start_run

CAP = LogCap(head=100, tail=50)


def expected(lines: list[str], cap: LogCap) -> list[str]:
    """A unit's stored log, given every line it printed."""
    if len(lines) <= cap.head + cap.tail:
        return lines
    omitted = len(lines) - cap.head - cap.tail
    return [*lines[: cap.head], f"… {omitted} lines omitted …", *lines[-cap.tail :]]


async def _print(store: Store, bus: EventBus, units: list[str], batches: list[int]) -> None:
    """Each unit in turn prints its next line; a flush after each batch of `batches` lines."""
    printed = 0
    for size in batches:
        for _ in range(size):
            unit = units[printed % len(units)]
            bus.emit(StepOutput, step=unit, stream="stdout", line=f"{unit} {printed}")
            printed += 1
        await store.flush()


def _lines(records: list[LogRecord], unit: str) -> list[str]:
    return [r.line for r in records if r.step == unit]


@pytest.fixture(params=["sqlite", "memory"])
async def capped(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Store]:
    """Each store, with a cap of 100 + 50 lines."""
    store: Store = (
        SqliteStore(tmp_path / "tempeh.db", log_cap=CAP)
        if request.param == "sqlite"
        else MemoryStore(log_cap=CAP)
    )
    await store.open()
    try:
        yield store
    finally:
        await store.close()


@pytest.mark.anyio
async def test_a_long_log_keeps_its_head_a_marker_and_its_tail(capped: Store) -> None:
    rng = random.Random(4)
    batches = [rng.randint(1, 120) for _ in range(40)]
    bus = await start_run(capped, "run-1")
    await _print(capped, bus, ["build", "build", "build", "", "smoke[eu]"], batches)

    everything = await capped.read_logs("run-1")
    build = await capped.read_logs("run-1", "build")

    printed = sum(batches)
    every_build_line = [f"build {i}" for i in range(printed) if i % 5 < 3]
    assert _lines(everything, "build") == [r.line for r in build]
    assert [r.line for r in build] == expected(every_build_line, CAP)
    (marker,) = (r for r in build if r.stream == "tempeh")
    assert marker.line == f"… {len(every_build_line) - 150} lines omitted …"
    assert [r.seq for r in everything] == sorted(r.seq for r in everything)
    own = [f" {i}" for i in range(printed) if i % 5 == 3]
    assert _lines(everything, "") == expected(own, CAP)  # the run's own lines too
    smoke = [f"smoke[eu] {i}" for i in range(printed) if i % 5 == 4]
    assert _lines(everything, "smoke[eu]") == expected(smoke, CAP)


@pytest.mark.anyio
async def test_a_store_opened_again_goes_on_counting_where_it_was(tmp_path: Path) -> None:
    path = tmp_path / "tempeh.db"
    cap = LogCap(head=5, tail=5)
    async with SqliteStore(path, log_cap=cap) as store:
        bus = await start_run(store, "run-1")
        await _print(store, bus, ["build"], [30])
    async with SqliteStore(path, log_cap=cap) as store:
        bus = EventBus("run-1", first_seq=await store.last_seq("run-1"))
        bus.subscribe(store.record)
        await _print(store, bus, ["build"], [7, 3])
        lines = [r.line for r in await store.read_logs("run-1", "build")]

    assert lines == expected(
        [f"build {i}" for i in range(30)] + [f"build {i}" for i in range(10)], cap
    )
    assert lines[5] == "… 30 lines omitted …"


@pytest.mark.anyio
async def test_two_hundred_thousand_lines_of_one_step_are_capped_as_they_are_written(
    tmp_path: Path,
) -> None:
    async with SqliteStore(tmp_path / "tempeh.db") as store:  # the default cap: 5,000 + 5,000
        bus = await start_run(store, "run-1")
        flushing = 0.0
        for batch in range(100):
            for i in range(2000):
                bus.emit(StepOutput, step="build", stream="stdout", line=f"line {batch * 2000 + i}")
            began = time.perf_counter()
            await store.flush()
            flushing += time.perf_counter() - began
        lines = await store.read_logs("run-1", "build")

    assert len(lines) == 10_001
    assert lines[4999].line == "line 4999"
    assert (lines[5000].stream, lines[5000].line) == ("tempeh", "… 190000 lines omitted …")
    assert (lines[5001].line, lines[-1].line) == ("line 195000", "line 199999")
    # ~1.3 s here (1.0 s without the cap): the cap costs one delete per line kept out.
    assert flushing < 8, f"flushing 200,000 capped lines took {flushing:.1f}s"


async def _replay(
    store: SqliteStore | MemoryStore, units: list[str], batches: list[int]
) -> list[tuple[str, str]]:
    async with store:
        bus = await start_run(store, "run-1")
        await _print(store, bus, units, batches)
        return [(r.step, r.line) for r in await store.read_logs("run-1")]


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    head=st.integers(min_value=0, max_value=4),
    tail=st.integers(min_value=1, max_value=4),
    units=st.lists(st.sampled_from(["a", "b", "c[1]"]), min_size=1, max_size=4),
    batches=st.lists(st.integers(min_value=1, max_value=9), min_size=1, max_size=8),
)
def test_any_batching_stores_what_the_reference_says(
    head: int, tail: int, units: list[str], batches: list[int]
) -> None:
    cap = LogCap(head=head, tail=tail)
    printed = [f"{units[i % len(units)]} {i}" for i in range(sum(batches))]
    with tempfile.TemporaryDirectory() as folder:
        sqlite = anyio.run(
            _replay,
            SqliteStore(Path(folder) / "t.db", log_cap=cap),
            units,
            batches,
            backend="asyncio",
        )
    memory = anyio.run(_replay, MemoryStore(log_cap=cap), units, batches, backend="asyncio")

    assert sqlite == memory
    for unit in set(units):
        mine = [line for line in printed if line.rpartition(" ")[0] == unit]
        assert [line for step, line in sqlite if step == unit] == expected(mine, cap)
