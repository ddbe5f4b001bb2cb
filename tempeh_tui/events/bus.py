"""The one stream of events a run publishes; the store and every view subscribe to it."""

from __future__ import annotations

import contextlib
import math
import time
from collections.abc import AsyncIterator, Callable, Iterable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from typing import Any, TypeVar

import anyio

from tempeh_tui.events.types import Event, RunFinished

__all__ = ["EventBus", "EventStream", "Subscriber", "event_stream"]

Subscriber = Callable[[Event], None]
E = TypeVar("E", bound=Event)


class EventBus:
    """Numbers events, stamps them, and hands each to every subscriber, in order.

    Subscribers are called synchronously and must be quick (append to a buffer, update a
    model); anything slow belongs in the subscriber's own task. One that raises stops the
    others from seeing the event: a run's store comes first, so that a view's bug never costs
    a checkpoint.
    """

    def __init__(
        self, run_id: str, first_seq: int = 0, subscribers: Iterable[Subscriber] = ()
    ) -> None:
        self.run_id = run_id
        self._seq = first_seq
        self._subscribers: list[Subscriber] = list(subscribers)

    @property
    def last_seq(self) -> int:
        return self._seq

    def subscribe(self, subscriber: Subscriber) -> Callable[[], None]:
        """Add a subscriber; returns the function that removes it."""
        self._subscribers.append(subscriber)
        return lambda: self._subscribers.remove(subscriber)

    def emit(self, cls: type[E], /, **fields: Any) -> E:
        self._seq += 1
        event = cls(run_id=self.run_id, seq=self._seq, ts=time.time(), **fields)
        for subscriber in self._subscribers:
            subscriber(event)
        return event

    def stream(self) -> AbstractAsyncContextManager[AsyncIterator[Event]]:
        """`async with bus.stream() as events: async for event in events: ...`"""
        return event_stream(self.subscribe)


Ending = Callable[[Callable[[], None]], Callable[[], None]]
"""`ending(callback)`: call `callback` when no more events will come; returns the function
that stops that."""


@asynccontextmanager
async def event_stream(
    subscribe: Callable[[Subscriber], Callable[[], None]], ending: Ending | None = None
) -> AsyncIterator[AsyncIterator[Event]]:
    """Events from anything with a `subscribe`, as an async iterator (unbounded buffer: a
    subscriber must never block the publisher); with `ending`, the iteration also ends when
    that says no more events will come."""
    send, receive = anyio.create_memory_object_stream[Event](max_buffer_size=math.inf)

    def deliver(event: Event) -> None:
        with contextlib.suppress(anyio.ClosedResourceError):  # ended meanwhile
            send.send_nowait(event)

    unsubscribe = subscribe(deliver)
    stop_watching = ending(send.close) if ending is not None else (lambda: None)
    try:
        async with receive:
            yield receive
    finally:
        stop_watching()
        unsubscribe()
        send.close()


class EventStream:
    """Events, two ways (SPEC 7: an async iterator, or a subscription):

    - `async for event in engine.events(): ...` subscribes when the loop starts and ends
      after the run's last event, `run_finished`;
    - `async with engine.events() as events: async for event in events: ...` follows every
      run until the block ends.
    """

    def __init__(
        self,
        subscribe: Callable[[Subscriber], Callable[[], None]],
        on_refusal: Ending | None = None,
    ) -> None:
        """`on_refusal`: says when a run is refused before it starts (it will never have a
        `run_finished`)."""
        self._subscribe = subscribe
        self._on_refusal = on_refusal
        self._block: AbstractAsyncContextManager[AsyncIterator[Event]] | None = None

    async def __aenter__(self) -> AsyncIterator[Event]:
        self._block = event_stream(self._subscribe)
        return await self._block.__aenter__()

    async def __aexit__(self, *exc: Any) -> bool | None:
        assert self._block is not None
        return await self._block.__aexit__(*exc)

    def __aiter__(self) -> AsyncIterator[Event]:
        return self._until_finished()

    async def _until_finished(self) -> AsyncIterator[Event]:
        # (a run refused before it started never sends `run_finished`: that ends it too)
        async with event_stream(self._subscribe, self._on_refusal) as events:
            async for event in events:
                yield event
                if isinstance(event, RunFinished):
                    return
