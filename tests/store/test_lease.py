"""One driver per run (SPEC 4): a lease in the store, taken atomically by one process among
many, taken over from a dead holder, renewed while held and released when done."""

from __future__ import annotations

import os
import re
import sqlite3
import time
from contextlib import ExitStack
from pathlib import Path

import anyio
import psutil
import pytest

from tempeh_tui.store import (
    LEASE_TIMEOUT,
    LeaseLost,
    RunLease,
    RunLocked,
    RunNotFound,
    SqliteStore,
    Store,
)
from tests.store.processes import LEASE_CLIENT, Client
from tests.store.support import start_run

pytestmark = pytest.mark.anyio


def _set_lease(path: Path, run_id: str, **columns: object) -> None:
    """Write lease columns as another process (or a forger) would have."""
    sets = ", ".join(f"{column} = ?" for column in columns)
    with sqlite3.connect(path) as db:
        db.execute(f"UPDATE runs SET {sets} WHERE id = ?", (*columns.values(), run_id))
    db.close()


async def _lease_of(store: Store, run_id: str) -> RunLease | None:
    return (await store.get_run(run_id)).lease


async def test_of_twenty_processes_racing_for_a_run_exactly_one_drives_it(
    sqlite_store: SqliteStore,
) -> None:
    await start_run(sqlite_store, "run-1")
    with ExitStack() as stack:
        clients = [
            stack.enter_context(Client(LEASE_CLIENT, sqlite_store.path, "run-1")) for _ in range(20)
        ]
        assert {client.read() for client in clients} == {"ready"}
        for race in range(6):  # as each hears of it, then all at one agreed moment
            at = f" {time.time() + 0.2}" if race % 2 else ""
            for client in clients:
                client.send(f"acquire{at}")
            answers = {client.pid: client.read() for client in clients}

            winners = [pid for pid, answer in answers.items() if answer == "acquired"]
            assert len(winners) == 1, answers
            (winner,) = winners
            locked = re.compile(
                rf"RunLocked: run run-1 is driven by pid {winner} on host \S+ since "
                r"\d{4}-\d\d-\d\dT[\d:.]+\+00:00; heartbeat \d+ s ago"
            )
            losers = [answer for pid, answer in answers.items() if pid != winner]
            assert all(locked.fullmatch(answer) for answer in losers), losers

            lease = await _lease_of(sqlite_store, "run-1")
            assert lease is not None
            assert lease.pid == winner
            assert lease.process_started == pytest.approx(psutil.Process(winner).create_time())
            (holder,) = (client for client in clients if client.pid == winner)
            assert holder.ask("release") == "released"
        for client in clients:
            client.finish()


async def test_a_dead_holders_lease_is_taken_over(sqlite_store: SqliteStore) -> None:
    await start_run(sqlite_store, "run-1")
    with Client(LEASE_CLIENT, sqlite_store.path, "run-1") as holder:
        assert holder.read() == "ready"
        assert holder.ask("acquire") == "acquired"
        with pytest.raises(RunLocked, match=f"driven by pid {holder.pid} "):
            await sqlite_store.acquire_lease("run-1")
        holder.send("die")  # killed while driving: its lease stays behind
        holder.finish()

    await sqlite_store.acquire_lease("run-1")

    lease = await _lease_of(sqlite_store, "run-1")
    assert lease is not None
    assert lease.pid == os.getpid()


async def test_a_lease_whose_pid_now_belongs_to_another_process_is_taken_over(
    sqlite_store: SqliteStore,
) -> None:
    await start_run(sqlite_store, "run-1")
    parent = psutil.Process(os.getppid())  # alive, but not the process that took the lease
    _set_lease(
        sqlite_store.path,
        "run-1",
        holder_pid=parent.pid,
        holder_host=os.uname().nodename,
        holder_started=parent.create_time() - 3600,
        leased_at=time.time() - 60,
        heartbeat=time.time(),
    )

    await sqlite_store.acquire_lease("run-1")

    lease = await _lease_of(sqlite_store, "run-1")
    assert lease is not None
    assert lease.pid == os.getpid()


async def test_a_live_holder_whose_heartbeat_stopped_loses_its_lease(
    sqlite_store: SqliteStore,
) -> None:
    await start_run(sqlite_store, "run-1")
    with Client(LEASE_CLIENT, sqlite_store.path, "run-1") as holder:
        assert holder.read() == "ready"
        assert holder.ask("acquire") == "acquired"
        _set_lease(sqlite_store.path, "run-1", heartbeat=time.time() - LEASE_TIMEOUT - 1)

        await sqlite_store.acquire_lease("run-1")  # alive, but silent for too long

        answer = holder.ask("heartbeat")
        assert answer.startswith("LeaseLost: run run-1: this process lost its lease")
        assert f"held by pid {os.getpid()}" in answer
        assert holder.ask("release") == "released"  # a lost lease is not released by it
        holder.finish()

    lease = await _lease_of(sqlite_store, "run-1")
    assert lease is not None
    assert lease.pid == os.getpid()


async def test_a_holder_on_another_host_is_alive_while_its_heartbeat_is(
    sqlite_store: SqliteStore,
) -> None:
    await start_run(sqlite_store, "run-1")
    _set_lease(
        sqlite_store.path,
        "run-1",
        holder_pid=999_999_999,  # no such pid here: but it is not here
        holder_host="build-agent-7",
        holder_started=1.0,
        leased_at=time.time() - 120,
        heartbeat=time.time() - 3,
    )

    with pytest.raises(RunLocked) as locked:
        await sqlite_store.acquire_lease("run-1")

    assert "pid 999999999 on host build-agent-7" in str(locked.value)
    assert str(locked.value).endswith("heartbeat 3 s ago")
    assert locked.value.holder.host == "build-agent-7"

    _set_lease(sqlite_store.path, "run-1", heartbeat=time.time() - LEASE_TIMEOUT - 1)
    await sqlite_store.acquire_lease("run-1")


async def test_taking_a_lease_this_process_holds_renews_it(store: Store) -> None:
    await start_run(store, "run-1")
    await store.acquire_lease("run-1")
    first = await _lease_of(store, "run-1")

    await store.acquire_lease("run-1")

    again = await _lease_of(store, "run-1")
    assert first is not None
    assert again is not None
    assert (again.pid, again.since) == (first.pid, first.since)
    assert again.heartbeat >= first.heartbeat


async def test_the_lease_block_renews_the_heartbeat_and_releases_at_the_end(
    store: Store,
) -> None:
    await start_run(store, "run-1")

    async with store.lease("run-1", heartbeat_every=0.02):
        taken = await _lease_of(store, "run-1")
        await anyio.sleep(0.1)
        renewed = await _lease_of(store, "run-1")

    assert taken is not None
    assert renewed is not None
    assert renewed.heartbeat > taken.heartbeat
    assert await _lease_of(store, "run-1") is None


async def test_the_lease_is_released_when_the_block_fails_or_is_cancelled(
    store: Store,
) -> None:
    await start_run(store, "run-1")

    with pytest.raises(ZeroDivisionError):
        async with store.lease("run-1"):
            _ = 1 / 0
    assert await _lease_of(store, "run-1") is None

    with anyio.move_on_after(0.05):
        async with store.lease("run-1"):
            await anyio.sleep(10)
    assert await _lease_of(store, "run-1") is None


async def test_a_lease_held_before_the_block_stays_held_after_it(store: Store) -> None:
    await start_run(store, "run-1")
    await store.acquire_lease("run-1")

    async with store.lease("run-1"):
        pass

    assert await _lease_of(store, "run-1") is not None
    await store.release_lease("run-1")
    assert await _lease_of(store, "run-1") is None


async def test_a_block_whose_lease_is_taken_over_is_cancelled(sqlite_store: SqliteStore) -> None:
    await start_run(sqlite_store, "run-1")
    went_on = False

    async def drive() -> None:
        nonlocal went_on
        async with sqlite_store.lease("run-1", heartbeat_every=0.02):
            _set_lease(sqlite_store.path, "run-1", holder_host="elsewhere", leased_at=1.0)
            await anyio.sleep(5)
            went_on = True

    with pytest.raises(LeaseLost, match="lost its lease"):
        await drive()

    assert not went_on
    lease = await _lease_of(sqlite_store, "run-1")
    assert lease is not None
    assert lease.host == "elsewhere"  # the new holder's lease is left alone


async def test_a_lease_on_a_run_that_does_not_exist_is_refused(store: Store) -> None:
    with pytest.raises(RunNotFound):
        await store.acquire_lease("nope")
    await store.release_lease("nope")  # nothing to release: no error


async def test_a_lease_taken_by_another_process_is_not_released_here(
    sqlite_store: SqliteStore,
) -> None:
    await start_run(sqlite_store, "run-1")
    with Client(LEASE_CLIENT, sqlite_store.path, "run-1") as holder:
        assert holder.read() == "ready"
        assert holder.ask("acquire") == "acquired"

        await sqlite_store.release_lease("run-1")

        lease = await _lease_of(sqlite_store, "run-1")
        assert lease is not None
        assert lease.pid == holder.pid
        holder.finish()


async def test_a_driver_stopped_longer_than_its_lease_confirms_it_before_acting(
    sqlite_store: SqliteStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    from tempeh_tui.store import lease as lease_module

    await start_run(sqlite_store, "run-1")
    clock = [1000.0]
    monkeypatch.setattr(lease_module, "_clock", lambda: clock[0])
    async with sqlite_store.lease("run-1", heartbeat_every=LEASE_TIMEOUT - 1):
        await sqlite_store.hold_lease("run-1")  # confirmed just now: no question asked
        clock[0] += LEASE_TIMEOUT  # stopped (SIGSTOP, a suspended machine) ...
        _set_lease(sqlite_store.path, "run-1", holder_host="elsewhere", leased_at=1.0)
        with pytest.raises(LeaseLost, match=r"held by pid .* on host elsewhere"):
            await sqlite_store.hold_lease("run-1")  # ... and taken over meanwhile
        with pytest.raises(LeaseLost):
            await sqlite_store.hold_lease("run-1")  # and again: it never got it back
    await sqlite_store.hold_lease("run-1")  # no lease block: nothing to confirm


async def test_a_run_whose_driver_was_taken_over_while_stopped_starts_no_further_step(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from tempeh_tui.engine.engine import WorkflowEngine
    from tempeh_tui.store import lease as lease_module

    clock = [1000.0]
    monkeypatch.setattr(lease_module, "_clock", lambda: clock[0])
    db = tmp_path / "t.db"

    def stall_and_lose(ctx: object) -> None:
        """What a SIGSTOP of the driver for longer than a lease, and a resume by another
        process meanwhile, look like to it once it runs again."""
        clock[0] += LEASE_TIMEOUT
        _set_lease(db, run_id, holder_host="elsewhere", leased_at=1.0, heartbeat=time.time())

    module = type(os)("tempeh_test_stall")
    module.stall_and_lose = stall_and_lose  # type: ignore[attr-defined]
    monkeypatch.setitem(__import__("sys").modules, "tempeh_test_stall", module)
    run_id = "run-stalled"
    flow = {
        "name": "stalled",
        "steps": [
            {"name": "a", "python": "tempeh_test_stall:stall_and_lose"},
            {"name": "b", "needs": ["a"], "run": f"touch {tmp_path / 'b-ran'}"},
        ],
    }
    said: list[str] = []
    async with SqliteStore(db) as store:
        engine = WorkflowEngine(store=store)
        engine.subscribe(lambda event: said.append(f"{event.type} {event.step}"))
        with pytest.raises(LeaseLost, match="lost its lease"):
            await engine.execute_workflow(flow, run_id=run_id)
    assert not (tmp_path / "b-ran").exists()
    assert "step_started b" not in said  # it does not even say it starts b
    with sqlite3.connect(db) as conn:
        written = [row[0] for row in conn.execute("SELECT type FROM events WHERE step = 'b'")]
        ended = conn.execute("SELECT count(*) FROM events WHERE type = 'run_finished'")
        finished = ended.fetchone()[0]
    conn.close()
    # nothing it did after losing the lease is written over the new driver's (b's `waiting`,
    # from the run's start, may have been written before, by a periodic flush)
    assert (set(written) - {"step_status"}, finished) == (set(), 0)
