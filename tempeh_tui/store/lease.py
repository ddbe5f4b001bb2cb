"""One driver per run (SPEC 4): who this process is, whether a lease's holder still lives, and
the `lease()` block both stores share.

A holder is a process: its pid, its host and its start time (a later process that reuses the
pid has another start time). A holder is dead if it is on this host and its pid is gone or
reused, or if its heartbeat is older than `LEASE_TIMEOUT`, wherever it runs. The stores decide
and write inside one transaction (`BEGIN IMMEDIATE` for SQLite), so two processes can never
both take a lease.
"""

from __future__ import annotations

import functools
import math
import os
import socket
import time
from abc import ABC, abstractmethod
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any, Literal

import anyio

from tempeh_tui.store.base import (
    HEARTBEAT_INTERVAL,
    LEASE_TIMEOUT,
    LeaseLost,
    RunLease,
    RunLocked,
    StoreError,
)

__all__ = [
    "LEASE_COLUMNS",
    "START_TIME_TOLERANCE",
    "LeaseKeeper",
    "Verdict",
    "is_alive",
    "judge",
    "lease_from_row",
    "lease_values",
    "process_start_time",
    "renew",
    "same_process",
    "take",
    "this_process",
]

START_TIME_TOLERANCE = 1.0
"""Seconds two readings of one process's start time may differ by. psutil derives it from the
boot time, which moves when the wall clock is stepped; a pid reused within a second of the
first process's start is not a real risk, and the heartbeat timeout catches it anyway."""

LEASE_COLUMNS = ("holder_pid", "holder_host", "holder_started", "leased_at", "heartbeat")
"""The run row's lease columns, in `RunLease` order."""

Verdict = Literal["free", "ours", "dead", "alive"]


def this_process() -> tuple[int, str, float]:
    """(pid, host, start time) of this process: the identity a lease is held by."""
    return _identity(os.getpid())  # by pid: a forked child is another process


@functools.cache
def _identity(pid: int) -> tuple[int, str, float]:
    started = process_start_time(pid)
    assert started is not None, "this process is alive"
    return pid, socket.gethostname(), started


def same_process(pid: int, started: float | None) -> bool:
    """Whether `pid` on this host is still the live process that started at `started`
    (None: any start time)."""
    state = _stat(pid)
    if state is None:
        return _same_process_psutil(pid, started)
    if not state:
        return False  # no such process
    actual = int(state[19]) / _clock_ticks() + _boot_time()
    if state[0] in (b"Z", b"X"):
        return False  # exited; only its parent has not reaped it yet
    return started is None or abs(actual - started) <= START_TIME_TOLERANCE


def process_start_time(pid: int) -> float | None:
    """When `pid` started, in seconds since the epoch, as psutil's `create_time()` computes it
    (boot time + start ticks), or None if there is no such process. One read of
    /proc/PID/stat: psutil.Process(pid) costs several times more, and its import ~15 ms."""
    state = _stat(pid)
    if state is None:  # no /proc here
        import psutil

        try:
            return float(psutil.Process(pid).create_time())
        except psutil.Error:
            return None
    return int(state[19]) / _clock_ticks() + _boot_time() if state else None


def _stat(pid: int) -> list[bytes] | None:
    """The fields of /proc/PID/stat after the command name (state first); [] if there is no
    such process; None if /proc cannot tell (not Linux, or not ours to read)."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as stat:
            return stat.read().rpartition(b")")[2].split()
    except (FileNotFoundError, ProcessLookupError):
        return [] if os.path.isdir("/proc/self") else None
    except OSError:
        return None


@functools.cache
def _clock_ticks() -> int:
    return os.sysconf("SC_CLK_TCK")


@functools.cache
def _boot_time() -> float:
    """As psutil reads it: the `btime` line of /proc/stat."""
    with open("/proc/stat", "rb") as stat:
        for line in stat:
            if line.startswith(b"btime"):
                return float(line.split()[1])
    raise OSError("no btime in /proc/stat")


def _same_process_psutil(pid: int, started: float | None) -> bool:
    import psutil

    try:
        process = psutil.Process(pid)
        with process.oneshot():
            actual = process.create_time()
            if process.status() == psutil.STATUS_ZOMBIE:
                return False
    except psutil.NoSuchProcess:
        return False
    except psutil.Error:
        return True  # there, but not ours to inspect: assume it is the same
    return started is None or abs(actual - started) <= START_TIME_TOLERANCE


def is_alive(holder: RunLease, now: float) -> bool:
    """A holder is alive while its heartbeat is recent and, on this host, its process lives."""
    if now - holder.heartbeat > LEASE_TIMEOUT:
        return False
    if holder.host != this_process()[1]:
        return True
    return same_process(holder.pid, holder.process_started)


def judge(holder: RunLease | None, now: float) -> Verdict:
    """What a lease means to this process: free, already ours, a dead holder's, or taken."""
    if holder is None:
        return "free"
    pid, host, started = this_process()
    if (holder.pid, holder.host) == (pid, host) and (
        abs(holder.process_started - started) <= START_TIME_TOLERANCE
    ):
        return "ours"
    return "alive" if is_alive(holder, now) else "dead"


def driven_elsewhere(lease: RunLease | None, now: float | None = None) -> bool:
    """Whether a live process other than this one holds the lease: it drives the run."""
    return judge(lease, time.time() if now is None else now) == "alive"


def lease_from_row(row: Any) -> RunLease | None:
    """The lease a run row records (`sqlite3.Row` or dict), or None if nobody holds it."""
    if row["holder_pid"] is None:
        return None
    return RunLease(
        pid=row["holder_pid"],
        host=row["holder_host"] or "",
        process_started=row["holder_started"] or 0.0,
        since=row["leased_at"] or row["heartbeat"] or 0.0,
        heartbeat=row["heartbeat"] or 0.0,
    )


def new_lease(now: float) -> RunLease:
    pid, host, started = this_process()
    return RunLease(pid=pid, host=host, process_started=started, since=now, heartbeat=now)


def take(run_id: str, holder: RunLease | None, now: float) -> tuple[RunLease, bool]:
    """The lease this process holds after acquiring, and whether it is new: the same one
    renewed if this process held it already, a new one if it was free or its holder dead.
    Raises RunLocked."""
    verdict = judge(holder, now)
    if verdict == "alive":
        assert holder is not None
        raise RunLocked(run_id, holder, now)
    if verdict == "ours":
        assert holder is not None
        return RunLease(holder.pid, holder.host, holder.process_started, holder.since, now), False
    return new_lease(now), True


def renew(run_id: str, holder: RunLease | None, now: float) -> RunLease:
    """The renewed lease, if this process still holds it. Raises LeaseLost."""
    if judge(holder, now) != "ours":
        raise LeaseLost(run_id, holder)
    assert holder is not None
    return RunLease(holder.pid, holder.host, holder.process_started, holder.since, now)


def lease_values(lease: RunLease | None) -> tuple[Any, ...]:
    """A lease as the values of `LEASE_COLUMNS` (all None: nobody holds the run)."""
    if lease is None:
        return (None,) * len(LEASE_COLUMNS)
    return (lease.pid, lease.host, lease.process_started, lease.since, lease.heartbeat)


def _clock() -> float:
    """Seconds that also pass while the machine sleeps (a suspended laptop), unlike
    `time.monotonic` on Linux; never stepped like the wall clock."""
    return time.clock_gettime(_BOOTTIME) if _BOOTTIME is not None else time.monotonic()


_BOOTTIME: int | None = getattr(time, "CLOCK_BOOTTIME", None)
_CONFIRMED_FOR = LEASE_TIMEOUT / 2
"""How long a confirmed lease is trusted without asking the store again: well inside the
time another process waits before it takes a silent holder's lease over."""


class LeaseKeeper(ABC):
    """The `lease()` block, over a store's `_take_lease`, `heartbeat` and `release_lease`."""

    @property
    def _confirmed(self) -> dict[str, float]:
        """When this process last confirmed each lease it holds (`_clock`)."""
        return self.__dict__.setdefault("_confirmed_leases", {})  # type: ignore[no-any-return]

    async def hold_lease(self, run_id: str) -> None:
        """Return at once if this process confirmed its lease on `run_id` lately (or holds
        none: a store used without `lease()`); else renew it now, raising LeaseLost if
        another process took the run over. The engine calls this before each step or
        compensation starts, so a driver that was stopped longer than a lease lasts (SIGSTOP,
        a suspended machine) starts nothing after it wakes, before its heartbeat notices."""
        confirmed = self._confirmed.get(run_id)
        if confirmed is None or _clock() - confirmed < _CONFIRMED_FOR:
            return
        try:
            await self.heartbeat(run_id)
        except LeaseLost:
            self.fence(run_id)
            raise
        self._confirmed[run_id] = _clock()

    def fence(self, run_id: str) -> None:  # noqa: B027 - a hook: stores that buffer drop
        """This process lost the run's lease: write nothing more of it (see EventBuffer)."""

    @abstractmethod
    async def _take_lease(self, run_id: str) -> bool:
        """Acquire; True if this process did not hold the lease before."""

    async def acquire_lease(self, run_id: str) -> None:
        await self._take_lease(run_id)

    @abstractmethod
    async def heartbeat(self, run_id: str) -> None: ...

    @abstractmethod
    async def release_lease(self, run_id: str) -> None: ...

    @asynccontextmanager
    async def lease(
        self, run_id: str, *, heartbeat_every: float = HEARTBEAT_INTERVAL
    ) -> AsyncIterator[None]:
        if not math.isfinite(heartbeat_every) or not 0 < heartbeat_every < LEASE_TIMEOUT:
            raise ValueError(
                f"heartbeat_every must be between 0 and {LEASE_TIMEOUT:g} s, not {heartbeat_every}"
            )
        taken = await self._take_lease(run_id)
        confirmed = self._confirmed
        confirmed[run_id] = _clock()
        lost: list[LeaseLost] = []
        error: BaseException | None = None
        try:
            async with anyio.create_task_group() as group:
                group.start_soon(self._beat, run_id, heartbeat_every, lost, group.cancel_scope)
                try:
                    yield
                except BaseException as exc:  # raised again below, as itself
                    error = exc
                finally:
                    group.cancel_scope.cancel()
        finally:
            confirmed.pop(run_id, None)
            if taken and not lost:
                with anyio.CancelScope(shield=True):
                    await self.release_lease(run_id)
        if lost:
            raise lost[0]
        if error is not None:
            raise error

    async def _beat(
        self, run_id: str, every: float, lost: list[LeaseLost], scope: anyio.CancelScope
    ) -> None:
        while True:
            await anyio.sleep(every)
            try:
                await self.heartbeat(run_id)
                self._confirmed[run_id] = _clock()
            except LeaseLost as exc:
                self.fence(run_id)
                lost.append(exc)
                scope.cancel()
                return
            except StoreError:
                # A busy or briefly unwritable store: try again at the next beat. If it stays
                # so past LEASE_TIMEOUT another process may take over, and the beat after
                # that says so (LeaseLost).
                continue
