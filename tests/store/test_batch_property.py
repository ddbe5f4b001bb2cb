"""Batching changes nothing: any run's events, flushed at any moments, in either store, read
back the same as when each event is flushed alone (Hypothesis)."""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

import anyio
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tempeh_tui.events import (
    ConcurrencyChanged,
    Event,
    EventBus,
    RunFinished,
    RunStarted,
    RunStatus,
    StepFinished,
    StepOutput,
    StepRetrying,
    StepSpawned,
    StepStarted,
    StepStatus,
    StepStatusChanged,
)
from tempeh_tui.store import MemoryStore, SqliteStore, Store
from tests.store.support import start_run

UNITS = ("build", "deploy[eu]", "deploy[us]")
_unit = st.sampled_from(UNITS)
_small = st.integers(min_value=1, max_value=3)
_exit = st.none() | st.integers(min_value=0, max_value=127)
_class = st.none() | st.sampled_from(["transient", "permanent", "timeout"])
_emits: list[st.SearchStrategy[tuple[type[Event], dict[str, Any]]]] = [
    st.tuples(
        st.just(RunStarted),
        st.fixed_dictionaries(
            {
                "workflow": st.just("shop"),
                "units": st.lists(_unit, unique=True).map(tuple),
                "resumed": st.booleans(),
            }
        ),
    ),
    st.tuples(
        st.just(RunFinished),
        st.fixed_dictionaries({"status": st.sampled_from(RunStatus), "message": st.none()}),
    ),
    st.tuples(st.just(ConcurrencyChanged), st.fixed_dictionaries({"max_concurrency": _small})),
    st.tuples(
        st.just(StepStatusChanged),
        st.fixed_dictionaries(
            {
                "step": _unit,
                "status": st.sampled_from([s for s in StepStatus if not s.is_terminal]),
                "reason": st.none() | st.just("waiting for db"),
            }
        ),
    ),
    st.tuples(
        st.just(StepStarted),
        st.fixed_dictionaries(
            {"step": _unit, "attempt": _small, "iteration": _small, "pid": st.none() | _small}
        ),
    ),
    st.tuples(
        st.just(StepSpawned),
        st.fixed_dictionaries(
            {"step": _unit, "attempt": _small, "pid": _small, "process_started": st.floats(0, 9)}
        ),
    ),
    st.tuples(
        st.just(StepRetrying),
        st.fixed_dictionaries(
            {
                "step": _unit,
                "attempt": _small,
                "next_attempt": _small,
                "error_class": st.sampled_from(["transient", "timeout"]),
                "exit_code": _exit,
                "delay": st.floats(min_value=0, max_value=60),
            }
        ),
    ),
    st.tuples(
        st.just(StepFinished),
        st.fixed_dictionaries(
            {
                "step": _unit,
                "status": st.sampled_from(sorted(StepStatus)),
                "attempts": st.integers(min_value=0, max_value=3),
                "exit_code": _exit,
                "error_class": _class,
                "outputs": st.dictionaries(st.sampled_from("xyz"), st.text(max_size=3), max_size=2),
                "cached": st.booleans(),
                "cache_key": st.none() | st.just("k"),
            }
        ),
    ),
    st.tuples(
        st.just(StepOutput),
        st.fixed_dictionaries({"step": _unit, "stream": st.just("stdout"), "line": st.text()}),
    ),
]


async def _replay(store: Store, events: list[Event], flush_after: list[bool]) -> Any:
    await start_run(store, "run-1", "shop", started_at=1.0)
    for event, flush in zip(events, flush_after, strict=True):
        store.record(event)
        if flush:
            await store.flush()
    await store.flush()
    run = await store.get_run("run-1")
    logs = await store.read_logs("run-1")
    return run.to_json(), [(r.seq, r.step, r.line) for r in logs]


async def _read_back_everywhere(events: list[Event], flush_after: list[bool]) -> list[Any]:
    every_event = [True] * len(events)
    results = []
    async with MemoryStore() as memory:
        results.append(await _replay(memory, events, every_event))
    async with MemoryStore() as memory:
        results.append(await _replay(memory, events, flush_after))
    with tempfile.TemporaryDirectory() as folder:
        async with SqliteStore(Path(folder) / "tempeh.db") as sqlite:
            results.append(await _replay(sqlite, events, flush_after))
    return results


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    emits=st.lists(st.one_of(_emits), min_size=1, max_size=25),
    flushes=st.lists(st.booleans(), min_size=25, max_size=25),
)
def test_batched_flushes_read_back_as_flushing_each_event_alone(
    emits: list[tuple[type[Event], dict[str, Any]]], flushes: list[bool]
) -> None:
    bus = EventBus("run-1")
    events = [bus.emit(cls, **fields) for cls, fields in emits]

    one_by_one, memory, sqlite = anyio.run(
        _read_back_everywhere, events, flushes[: len(events)], backend="asyncio"
    )

    assert memory == one_by_one
    assert sqlite == one_by_one
