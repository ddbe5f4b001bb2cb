"""Buffered event recording with group commit: what every store does between `record` and disk.

`record` only appends. `flush` writes everything recorded so far in one transaction; a flush that
arrives while another is writing waits, and finds its events either in the write that just
ended or in the next one, which carries everything recorded by then (group commit: many
callers, one commit). `autoflush` does it every few milliseconds in the background.
`checkpoint` is the engine's barrier before it acts: it journals what is not written yet (see
`journal`), which costs a `write`, not a transaction.
"""

from __future__ import annotations

import math
import threading
from abc import ABC, abstractmethod
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from types import TracebackType
from typing import Self

import anyio

from tempeh_tui.events import Event

__all__ = ["EventBuffer"]

HIGH_WATER = 50_000
"""Events recorded and not yet written past which `wait_for_room` holds the producers (a step
printing faster than the store writes): memory stays bounded (~20 MB of events)."""
_PACE_SECONDS = 0.25
"""The longest one `wait_for_room` waits before it says there is no room yet."""


class EventBuffer(ABC):
    """The recording half of a store; subclasses say how a batch of changes is written, and
    may keep a journal that makes a `checkpoint` survive a crash before the write does."""

    def __init__(self) -> None:
        self._unsaved: list[Event] = []  # recorded, not yet written; the first is #_durable
        self._recorded = 0  # events recorded since this store was made
        self._durable = 0  # of those, how many a finished write has made durable
        self._journaled = 0  # of those, how many `checkpoint` has journaled
        self._write_lock = anyio.Lock()
        self._room = threading.Event()  # clear while more than HIGH_WATER events wait
        self._room.set()
        self._fenced: set[str] = set()  # runs whose lease this process lost: never written
        self.commits = 0
        """Write transactions made so far (flushes that found nothing to write make none)."""

    @abstractmethod
    async def open(self) -> None: ...

    @abstractmethod
    async def close(self) -> None: ...

    @abstractmethod
    async def _write(self, batch: list[Event]) -> None:
        """Write one batch (`project` it first) in one transaction: all of it, or none of it
        and raise."""

    def _journal(self, events: list[Event]) -> None:  # noqa: B027 - a hook, empty by default
        """Keep `events` safe from a crash of this process, at once (see `checkpoint`).
        Without a journal there is nothing to do: the store dies with the process anyway."""

    def _journal_caught_up(self) -> None:  # noqa: B027 - a hook, empty by default
        """Everything journaled so far has been written: the journal may be emptied."""

    async def __aenter__(self) -> Self:
        await self.open()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    @property
    def pending(self) -> int:
        """Events recorded but not yet durable."""
        return self._recorded - self._durable

    def record(self, event: Event) -> None:
        """A bus subscriber: keep the event for the next flush. Never blocks, never fails."""
        self._unsaved.append(event)
        self._recorded += 1
        if self._recorded - self._durable > HIGH_WATER:
            self._room.clear()

    def wait_for_room(self) -> bool:
        """From a thread that produces events (a step's output reader): True if the store
        keeps up, else False after waiting a moment for it. Never on the event loop's thread."""
        return self._room.wait(_PACE_SECONDS)

    def fence(self, run_id: str) -> None:
        """This process lost the run's lease (another one drives it now): what it still
        records of the run is dropped, never written over the new driver's events."""
        self._fenced.add(run_id)

    def checkpoint(self) -> None:
        """Make every event recorded so far survive a crash of this process, now, without
        waiting for a write (the journal; the next flush writes them as usual)."""
        start = max(self._journaled, self._durable)
        if start >= self._recorded:
            return
        self._journal(self._unfenced(self._unsaved[start - self._durable :]))
        self._journaled = self._recorded

    def _unfenced(self, events: list[Event]) -> list[Event]:
        if not self._fenced:
            return events
        return [e for e in events if e.run_id not in self._fenced]

    async def flush(self) -> None:
        """Return once every event recorded before this call is durable."""
        target = self._recorded
        if self._durable >= target:
            return
        async with self._write_lock:
            if self._durable >= target:
                return  # the write we waited for carried our events
            upto = self._recorded
            batch = self._unsaved[: upto - self._durable]
            # A half-written checkpoint helps nobody: once begun, a write completes.
            with anyio.CancelScope(shield=True):
                if writing := self._unfenced(batch):
                    await self._write(writing)  # on failure the events stay for the next try
            del self._unsaved[: len(batch)]
            self._durable = upto
            self.commits += 1
            if self._recorded - self._durable <= HIGH_WATER // 2:
                self._room.set()
            if self._journaled <= self._durable:
                self._journal_caught_up()

    @asynccontextmanager
    async def autoflush(self, interval: float = 0.05) -> AsyncIterator[None]:
        """Flush every `interval` seconds while the block runs, and once more when it ends
        (also when it is cancelled or fails, so an interrupted run is checkpointed).

        A failing write stops the block and is raised as itself (not in an exception group).
        """
        if not math.isfinite(interval) or interval <= 0:
            raise ValueError(f"autoflush interval must be a positive number, not {interval}")
        failures: list[Exception] = []
        error: BaseException | None = None
        try:
            async with anyio.create_task_group() as group:
                group.start_soon(self._flush_every, interval, failures, group.cancel_scope)
                try:
                    yield
                except BaseException as exc:  # raised again below, as itself
                    error = exc
                finally:
                    group.cancel_scope.cancel()
        finally:  # also when an outer cancel scope makes the group raise
            if not failures:
                with anyio.CancelScope(shield=True):
                    await self.flush()
        if failures:
            raise failures[0]
        if error is not None:
            raise error

    async def _flush_every(
        self, interval: float, failures: list[Exception], scope: anyio.CancelScope
    ) -> None:
        try:
            while True:
                await anyio.sleep(interval)
                await self.flush()
        except Exception as exc:
            failures.append(exc)
            scope.cancel()
