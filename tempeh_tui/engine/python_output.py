"""What a Python step prints goes to its own log, never to tempeh's stdout.

Python steps run in this process, so `print()` in one writes to the `sys.stdout` that tempeh's
headless view writes to (one JSON event per line with `--json`). While any Python step runs,
`sys.stdout` and `sys.stderr` are proxies that route each write by a context variable: to the
lines of the step whose code writes (the variable is set around each call, and a sync call's
worker thread runs in a copy of its caller's context), or, with no step, to the real stream.
"""

from __future__ import annotations

import asyncio
import contextvars
import io
import sys
import threading
from collections.abc import Callable
from typing import BinaryIO, TextIO

from tempeh_tui.engine.executor import ExecutionObserver
from tempeh_tui.engine.shell_process import MAX_LINE_BYTES, Mailbox

__all__ = ["StepPrints", "real_stream", "redirect_std_streams", "send_strays", "step_log"]

_MAX_LINE_CHARS = MAX_LINE_BYTES
"""A longer line reaches the log as several lines, as a shell step's does."""

_current: contextvars.ContextVar[StepPrints | None] = contextvars.ContextVar(
    "tempeh_step_prints", default=None
)


class StepPrints:
    """One Python call's printed text: split into lines per stream (an unfinished line waits
    for the rest), handed to the observer on the loop's thread in batches (a `Mailbox`).

    Any thread may write. Once closed (the call returned, or timed out and was left running),
    what is still written is dropped: the step's log has ended.
    """

    def __init__(self, observer: ExecutionObserver, loop: asyncio.AbstractEventLoop) -> None:
        self._observer = observer
        self._loop = loop
        self._mailbox: Mailbox | None = None  # made at the first line: most steps print none
        self._loop_thread = threading.get_ident()
        self._lock = threading.Lock()
        # Unfinished lines by stream and thread: `print` writes its text and its end apart, and
        # another thread's line must not land in between.
        self._partial: dict[tuple[str, int], list[str]] = {}
        self._partial_chars: dict[tuple[str, int], int] = {}
        self._closed = False
        self._token: contextvars.Token[StepPrints | None] | None = None
        self._release: Callable[[], None] = _nothing

    @property
    def error(self) -> Exception | None:
        """What the observer raised, if it did (an engine bug, re-raised by the executor)."""
        return None if self._mailbox is None else self._mailbox.error

    def write(self, stream: str, text: str) -> None:
        """Text written to `stream` ("stdout" or "stderr"); complete lines go to the log."""
        if not text:
            return
        thread = threading.get_ident()
        with self._lock:
            if self._closed:
                return
            lines = self._split((stream, thread), text)
            if not lines:
                return
            mailbox = self._post([(stream, line) for line in lines])
        if thread != self._loop_thread:
            mailbox.wait_for_room()  # a flood slows the step down, never the loop

    def __enter__(self) -> StepPrints:
        """Within: what this task writes to `sys.stdout`/`sys.stderr` (and the tasks it starts,
        and the threads it starts with a copy of its context) goes to these lines."""
        self._release = redirect_std_streams()
        self._token = _current.set(self)
        return self

    def __exit__(self, *exc_info: object) -> None:
        assert self._token is not None
        _current.reset(self._token)
        self.close()
        self._release()

    def close(self) -> None:
        """The call is over: unfinished lines go to the log as they are, later text nowhere."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
            rest = [
                (stream, "".join(parts).removesuffix("\r"))
                for (stream, _), parts in self._partial.items()
            ]
            self._partial.clear()
            if any(line for _, line in rest):
                self._post([(s, line) for s, line in rest if line])

    async def flush(self) -> None:
        """Deliver every line still on its way (loop thread, after `close`)."""
        if self._mailbox is not None:
            await self._mailbox.flush()

    def _post(self, lines: list[tuple[str, str]]) -> Mailbox:
        if self._mailbox is None:
            loop = self._loop

            def call_soon(callback: Callable[[], object]) -> object:
                # In an empty context: a delivery publishes events, and what prints on the way
                # (a view, say) is tempeh's own output, not the step's.
                return loop.call_soon_threadsafe(callback, context=contextvars.Context())

            self._mailbox = Mailbox(self._observer, call_soon)
        self._mailbox.post(lines, wait=False)
        return self._mailbox

    def _split(self, key: tuple[str, int], text: str) -> list[str]:
        parts = self._partial.setdefault(key, [])
        chars = self._partial_chars.get(key, 0) + len(text)
        if "\n" not in text and chars <= _MAX_LINE_CHARS:  # print() writes its end apart
            parts.append(text)
            self._partial_chars[key] = chars
            return []
        parts.append(text)
        *complete, rest = "".join(parts).split("\n")
        lines = [piece for line in complete for piece in _pieces(line.removesuffix("\r"))]
        while len(rest) > _MAX_LINE_CHARS:
            lines.append(rest[:_MAX_LINE_CHARS])
            rest = rest[_MAX_LINE_CHARS:]
        parts[:] = [rest] if rest else []
        self._partial_chars[key] = len(rest)
        return lines


def _pieces(line: str) -> list[str]:
    if len(line) <= _MAX_LINE_CHARS:
        return [line]
    return [line[i : i + _MAX_LINE_CHARS] for i in range(0, len(line), _MAX_LINE_CHARS)]


def step_log(fallback: Callable[[str, str], None]) -> Callable[[object], None]:
    """A `StepContext.log`: a line to the step's stdout, in order with what it prints (and from
    any thread). Outside a step's call (no `StepPrints` current) it goes to `fallback`."""

    def log(line: object) -> None:
        prints = _current.get()
        if prints is None:
            fallback("stdout", str(line))
        else:
            prints.write("stdout", f"{line}\n")

    return log


class _StreamProxy(io.TextIOBase):
    """Stands in for `sys.stdout` or `sys.stderr`: a step's writes go to its lines, all else
    (and every attribute but `write`, `flush` and `isatty`) to the real stream."""

    def __init__(self, stream: str, original: TextIO) -> None:
        super().__init__()
        self.stream = stream
        self.original = original

    def write(self, text: str) -> int:
        prints = _current.get()
        if prints is None:
            return _STRAYS.get(self.stream, self.original).write(text)
        if not isinstance(text, str):
            raise TypeError(f"write() argument must be str, not {type(text).__name__}")
        prints.write(self.stream, text)
        return len(text)

    def writelines(self, lines: object) -> None:
        for line in lines:  # type: ignore[attr-defined]
            self.write(line)

    def flush(self) -> None:
        if _current.get() is None:
            _STRAYS.get(self.stream, self.original).flush()

    def isatty(self) -> bool:
        """A step's output goes to a log, not a terminal: no colours or progress bars in it."""
        return _current.get() is None and self.original.isatty()

    def fileno(self) -> int:
        """Where a child process given `stdout=sys.stdout` writes: under `tempeh run`, not
        into tempeh's report (see `send_strays`)."""
        return _STRAYS.get(self.stream, self.original).fileno()

    @property
    def buffer(self) -> BinaryIO:
        """Bytes skip the routing by step; under `tempeh run` they go where strays go."""
        return _STRAYS.get(self.stream, self.original).buffer

    def writable(self) -> bool:
        return True

    def readable(self) -> bool:
        return False

    def seekable(self) -> bool:
        return False

    def close(self) -> None:
        """Not ours to close: the real stream belongs to tempeh."""

    @property
    def closed(self) -> bool:
        return self.original.closed

    @property
    def encoding(self) -> str:  # type: ignore[override]
        return self.original.encoding

    @property
    def errors(self) -> str | None:  # type: ignore[override]
        return self.original.errors

    @property
    def newlines(self) -> str | tuple[str, ...] | None:  # type: ignore[override]
        return getattr(self.original, "newlines", None)

    def __getattr__(self, name: str) -> object:  # buffer, name, mode, line_buffering, ...
        if name == "original":  # not set yet (a copy being made): no endless recursion
            raise AttributeError(name)
        return getattr(self.original, name)


class _Redirection:
    """Installs the proxies while anyone holds them; puts the real streams back after."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._holders = 0
        self._installed: list[tuple[str, _StreamProxy]] = []
        self._proxies: dict[str, _StreamProxy] = {}  # the last ones: reused for the same stream

    def hold(self) -> Callable[[], None]:
        with self._lock:
            self._holders += 1
            if self._holders == 1:
                self._install()
        return _Hold(self).release

    def release(self) -> None:
        with self._lock:
            self._holders -= 1
            if not self._holders:
                self._uninstall()

    def _install(self) -> None:
        for name in ("stdout", "stderr"):
            current = getattr(sys, name)
            if current is None or isinstance(current, _StreamProxy):
                continue
            proxy = self._proxies.get(name)
            if proxy is None or proxy.original is not current:
                proxy = self._proxies[name] = _StreamProxy(name, current)
            setattr(sys, name, proxy)
            self._installed.append((name, proxy))

    def _uninstall(self) -> None:
        for name, proxy in self._installed:
            if getattr(sys, name) is proxy:  # else someone wrapped it since
                setattr(sys, name, proxy.original)
        self._installed.clear()


class _Hold:
    __slots__ = ("_redirection",)

    def __init__(self, redirection: _Redirection) -> None:
        self._redirection: _Redirection | None = redirection

    def release(self) -> None:
        """Once: a second call does nothing."""
        redirection, self._redirection = self._redirection, None
        if redirection is not None:
            redirection.release()


def _nothing() -> None:
    pass


_REDIRECTION = _Redirection()


def redirect_std_streams() -> Callable[[], None]:
    """Make `sys.stdout`/`sys.stderr` the routing proxies until the returned function is
    called (once; holds nest: the real streams come back when the last one is released)."""
    return _REDIRECTION.hold()


_STRAYS: dict[str, TextIO] = {}


def send_strays(stream: str, to: TextIO | None) -> None:
    """While Python steps run, send what is written to `sys.<stream>` outside any step's call
    (by a thread a step started without its context, say) to `to`, not to the real stream
    (None: to the real stream again). `tempeh run` sends stray stdout to stderr: its stdout
    is its report."""
    if to is None:
        _STRAYS.pop(stream, None)
    else:
        _STRAYS[stream] = to


def real_stream(stream: TextIO) -> TextIO:
    """The stream behind a proxy: tempeh's own output must never be taken for a step's."""
    while isinstance(stream, _StreamProxy):
        stream = stream.original
    return stream
