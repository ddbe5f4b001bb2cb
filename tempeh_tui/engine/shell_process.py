"""A shell step's process, driven from spawn to reaping by one worker thread (see
`local_executor` for why): output read line by line and handed to the loop in batches, the
timeout and stop requests enforced on the whole process group, `$TEMPEH_OUTPUT` read at the end.
"""

from __future__ import annotations

import collections
import errno
import math
import os
import select
import signal
import subprocess
import threading
import time
from collections.abc import Callable

import anyio
import anyio.lowlevel

from tempeh_tui.engine.executor import ExecResult, ExecutionObserver, ShellRequest
from tempeh_tui.engine.outputs import OutputFileError, parse_outputs
from tempeh_tui.engine.process_groups import finish_group, process_start_time, signal_group

__all__ = [
    "MAX_LINE_BYTES",
    "MAX_OUTPUT_FILE_BYTES",
    "LineSplitter",
    "Mailbox",
    "ShellRun",
    "read_outputs",
]

MAX_LINE_BYTES = 64 * 1024
MAX_LINE_PIECES = 16
"""A line is kept up to this many MAX_LINE_BYTES pieces (1 MiB); the rest is counted."""
"""A longer line reaches the log as several lines of at most this many bytes."""
MAX_OUTPUT_FILE_BYTES = 1024 * 1024
"""A bigger `$TEMPEH_OUTPUT` file fails the step (GitHub Actions has the same limit)."""

_READ_SIZE = MAX_LINE_BYTES  # a whole pipe buffer per read
_MAX_PENDING_CHARS = 1024 * 1024  # output waiting for the loop before the reader pauses
_MAX_PENDING_LINES = 10_000  # ... or lines (short ones weigh more as events than as text)
_BACKPRESSURE_SECONDS = 0.005  # how often a paused reader looks again
_FINAL_DRAIN_BYTES = 1024 * 1024  # read at most this much once the main process has exited
_ANNOUNCE_SECONDS = 0.02  # the longest a pid waits for a delivery to travel with
_POLLIN = select.POLLIN

Callback = Callable[[], object]
Line = tuple[str, str]


# --- shell steps: output ------------------------------------------------------------------------


class Mailbox:
    """Carries one run's pid and lines from its worker thread to the observer on the loop
    (and a Python step's printed lines, from whichever thread prints them).

    The worker appends under a lock and schedules a delivery only when none is pending, so a
    burst of output costs one loop wake-up. A delivery hands over at most `DELIVERY_LINES` and
    leaves the rest to the next loop iteration, so a flood never holds the loop for long. When
    the loop falls behind by `_MAX_PENDING_CHARS` or `_MAX_PENDING_LINES`, the worker waits:
    the pipe fills and the step slows down instead of memory growing (and the store's own
    backlog paces it too: `ShellRequest.pace`).
    """

    DELIVERY_LINES = 2000

    def __init__(self, observer: ExecutionObserver, call_soon: Callable[[Callback], object]):
        self._observer = observer
        self._call_soon = call_soon
        self._lock = threading.Lock()
        self._lines: collections.deque[Line] = collections.deque()
        self._chars = 0
        self._pid: int | None = None
        self._started: float | None = None
        self._scheduled = False
        self._closed = False
        self.error: Exception | None = None
        """What the observer raised, if it did: the run is then stopped and this re-raised."""
        self.on_error: Callback = lambda: None

    def spawned(self, pid: int, started: float | None) -> None:
        """Note the pid; it travels with the next delivery (see `ShellRun._supervise`)."""
        with self._lock:
            self._pid, self._started = pid, started

    def post(self, lines: list[Line], *, wait: bool = True) -> None:
        """Hand lines over (any thread); with `wait`, then `wait_for_room`."""
        chars = sum(len(line) for _, line in lines)
        with self._lock:
            self._lines.extend(lines)
            self._chars += chars
        self.schedule()
        if wait:
            self.wait_for_room()

    def wait_for_room(self) -> None:
        """Wait while the loop is far behind (a worker thread only: the loop would wait for
        itself)."""
        while (
            self._chars > _MAX_PENDING_CHARS or len(self._lines) > _MAX_PENDING_LINES
        ) and not self._closed:
            time.sleep(_BACKPRESSURE_SECONDS)

    def schedule(self) -> None:
        """Make sure a delivery is on its way to the loop (worker thread)."""
        with self._lock:
            if self._scheduled or self._closed:
                return
            self._scheduled = True
        try:
            self._call_soon(self.deliver)
        except RuntimeError:  # the loop is closed: nobody is listening any more
            self._closed = True

    def deliver(self) -> None:
        """Report up to `DELIVERY_LINES` to the observer (loop thread); when more is pending,
        schedule another delivery, which runs after whatever else the loop has to do."""
        if self._report(*self._take(chained=True)):
            self._call_soon(self.deliver)

    async def flush(self) -> None:
        """Report everything pending (loop thread, once the worker is done), one batch per
        loop iteration like `deliver`: a scheduled delivery keeps going, or this takes over."""
        while self._scheduled or self._report(*self._take(chained=False)):
            await anyio.lowlevel.checkpoint()

    def _take(self, *, chained: bool) -> tuple[tuple[int, float | None] | None, list[Line], bool]:
        with self._lock:
            pid = None if self._pid is None else (self._pid, self._started)
            self._pid = None
            if len(self._lines) <= self.DELIVERY_LINES:
                lines = list(self._lines)
                self._lines.clear()
                self._chars = 0
                more = False
            else:
                lines = [self._lines.popleft() for _ in range(self.DELIVERY_LINES)]
                self._chars -= sum(len(line) for _, line in lines)
                more = True
            if chained:
                self._scheduled = more
        return pid, lines, more

    def _report(self, pid: tuple[int, float | None] | None, lines: list[Line], more: bool) -> bool:
        if self.error is None:
            try:
                if pid is not None:
                    self._observer.spawned(*pid)
                output = self._observer.output
                for stream, line in lines:
                    output(stream, line)
            except Exception as exc:  # an engine bug: stop the step, raise it from run_shell
                self.error = exc
                self.on_error()
        return more


class LineSplitter:
    """Bytes from one pipe in, complete lines out (UTF-8, invalid bytes replaced, `\\r\\n` and
    `\\n` endings removed); an unfinished line waits for the next read. A line longer than
    MAX_LINE_BYTES comes out in pieces; past MAX_LINE_PIECES of them (a line of megabytes: a
    progress bar redrawn with `\\r`, a dump), the rest of it is counted, not kept, and a
    marker line says how much: memory and the store stay bounded."""

    __slots__ = ("_dropped", "_kept", "_rest")

    def __init__(self) -> None:
        self._rest = b""
        self._kept = 0  # pieces of the current (unfinished) line handed out already
        self._dropped = 0  # bytes of it not kept

    def feed(self, data: bytes) -> list[str]:
        buffer = self._rest + data if self._rest else data
        end = buffer.rfind(b"\n")
        if end < 0:
            self._rest = buffer
            return self._cut_rest()
        complete, self._rest = buffer[: end + 1], buffer[end + 1 :]
        # A read is at most MAX_LINE_BYTES, so only the first line (the rest of the last read
        # and the start of this one) can be too long, or the end of one cut before.
        if not self._kept and complete.find(b"\n") <= MAX_LINE_BYTES:
            lines = complete.decode("utf-8", "replace").replace("\r\n", "\n").split("\n")
            lines.pop()  # the empty string after the last newline
        else:
            first, *others = complete.split(b"\n")[:-1]
            lines = self._line_end(first)
            lines.extend(piece for raw in others for piece in _pieces(raw.removesuffix(b"\r")))
        if len(self._rest) > MAX_LINE_BYTES:
            lines.extend(self._cut_rest())
        return lines

    def flush(self) -> list[str]:
        """The unfinished last line, if any (the stream has ended)."""
        rest, self._rest = self._rest, b""
        return self._line_end(rest) if rest or self._kept else []

    def _line_end(self, raw: bytes) -> list[str]:
        """The last of a line (its start may have been handed out), and a marker if some of
        it was not kept; the next line starts afresh."""
        lines = self._limited(_pieces(raw.removesuffix(b"\r")))
        if self._dropped:
            unit, verb = ("byte", "was") if self._dropped == 1 else ("bytes", "were")
            lines.append(f"[tempeh: {self._dropped:,} more {unit} of this line {verb} not kept]")
        self._kept = self._dropped = 0
        return lines

    def _cut_rest(self) -> list[str]:
        lines = []
        while len(self._rest) > MAX_LINE_BYTES:
            cut = _char_boundary(self._rest, MAX_LINE_BYTES)
            if self._kept < MAX_LINE_PIECES:
                lines.append(self._rest[:cut].decode("utf-8", "replace"))
                self._kept += 1
            else:
                self._dropped += cut  # counted, not decoded
            self._rest = self._rest[cut:]
        return lines

    def _limited(self, pieces: list[str]) -> list[str]:
        kept = pieces[: max(MAX_LINE_PIECES - self._kept, 0)]
        self._kept += len(kept)
        self._dropped += sum(len(piece.encode()) for piece in pieces[len(kept) :])
        return kept


def _pieces(raw: bytes) -> list[str]:
    """One line as text, in pieces of at most MAX_LINE_BYTES bytes."""
    pieces = []
    while len(raw) > MAX_LINE_BYTES:
        cut = _char_boundary(raw, MAX_LINE_BYTES)
        pieces.append(raw[:cut].decode("utf-8", "replace"))
        raw = raw[cut:]
    pieces.append(raw.decode("utf-8", "replace"))
    return pieces


def _char_boundary(data: bytes, limit: int) -> int:
    """The last index <= limit that does not split a UTF-8 character (limit if none is near)."""
    for cut in range(limit, max(limit - 4, 0), -1):
        if data[cut] & 0xC0 != 0x80:
            return cut
    return limit


# --- shell steps: the process ------------------------------------------------------------------

_devnull_lock = threading.Lock()
_devnull_fd = -1


def _devnull() -> int:
    """One read-only /dev/null for every step's stdin (saves an open and a close per spawn)."""
    global _devnull_fd  # noqa: PLW0603 - a process-wide constant opened on first use
    with _devnull_lock:
        if _devnull_fd < 0:
            _devnull_fd = os.open(os.devnull, os.O_RDONLY | os.O_CLOEXEC)
        return _devnull_fd


class ShellRun:
    """One shell step, driven by `execute` in a worker thread from spawn to reaping."""

    def __init__(self, request: ShellRequest, bash: str, mailbox: Mailbox) -> None:
        self._request = request
        self._bash = bash
        self._mailbox = mailbox
        self._lock = threading.Lock()
        self._running = threading.Lock()  # held by `execute` from start to end
        self._started = False
        self._stop = False
        self._wake = -1
        mailbox.on_error = self.request_stop

    def request_stop(self) -> bool:
        """Ask the run to stop its process group (any thread); True if it has started (then
        `wait_finished` is worth calling), False if it never will start."""
        with self._lock:
            self._stop = True
            if self._wake >= 0:
                os.eventfd_write(self._wake, 1)
            return self._started

    def wait_finished(self) -> None:
        """Block until `execute` has returned (a worker thread of the cancelled caller)."""
        with self._running:
            pass

    def execute(self) -> ExecResult:
        with self._lock:
            if self._stop:
                return ExecResult(exit_code=None, cancelled=True, error="cancelled before start")
            self._started = True
            self._running.acquire()
            self._wake = os.eventfd(0, os.EFD_CLOEXEC | os.EFD_NONBLOCK)
        try:
            return self._execute()
        finally:
            with self._lock:
                os.close(self._wake)
                self._wake = -1
            self._running.release()

    def _execute(self) -> ExecResult:
        request = self._request
        started = time.monotonic()
        out_read, out_write = os.pipe()
        err_read, err_write = os.pipe()
        try:
            process = subprocess.Popen(
                [self._bash, "-c", request.command],
                stdin=_devnull(),
                stdout=out_write,
                stderr=err_write,
                env=request.env,
                cwd=request.cwd,
                start_new_session=True,
            )
        except BaseException as exc:
            os.close(out_read)
            os.close(err_read)
            if isinstance(exc, OSError | ValueError):
                return _spawn_failure(exc, request, time.monotonic() - started)
            raise
        finally:
            os.close(out_write)
            os.close(err_write)
        try:
            return self._supervise(process, out_read, err_read, started)
        except BaseException:  # a bug of ours: leave no process behind
            if process.returncode is None:
                signal_group(process.pid, signal.SIGKILL)
                process.wait()
            raise
        finally:
            os.close(out_read)
            os.close(err_read)

    def _supervise(
        self, process: subprocess.Popen[bytes], out_read: int, err_read: int, started: float
    ) -> ExecResult:
        """Stream output until the main process exits; enforce the timeout and stop requests.
        Outputs are read only from a process that ended on its own.

        The pid reaches the observer with the first output, or `_ANNOUNCE_SECONDS` after the
        spawn: a step that ends sooner costs no loop wake-up for it. Its start time is read
        here, not on the loop: /proc/PID/stat waits while the process is still in `exec`.
        """
        request, pid = self._request, process.pid
        unannounced = True

        def announce() -> None:
            nonlocal unannounced
            if unannounced:
                unannounced = False
                self._mailbox.spawned(pid, process_start_time(pid))

        pidfd = os.pidfd_open(pid)
        streams = {out_read: ("stdout", LineSplitter()), err_read: ("stderr", LineSplitter())}
        poller = select.poll()
        for fd in (out_read, err_read, pidfd, self._wake):
            poller.register(fd, _POLLIN)
        announce_at = started + _ANNOUNCE_SECONDS
        deadline = started + request.timeout if request.timeout is not None else math.inf
        kill_at = math.inf  # set once SIGTERM has been sent
        stopping = timed_out = exited = False
        try:
            while not exited:
                now = time.monotonic()
                if not stopping and (self._stop or now >= deadline):
                    timed_out = not self._stop
                    stopping, kill_at = True, now + request.grace
                    signal_group(pid, signal.SIGTERM)
                elif now >= kill_at:
                    kill_at = math.inf
                    signal_group(pid, signal.SIGKILL)
                if now >= announce_at:
                    announce_at = math.inf
                    announce()
                    self._mailbox.schedule()
                wake_at = min(announce_at, kill_at if stopping else deadline)
                lines: list[Line] = []
                for fd, _ in poller.poll(_milliseconds(wake_at - now)):
                    if fd == pidfd:
                        exited = True
                    elif fd == self._wake:
                        os.eventfd_read(self._wake)
                    elif not _read_into(fd, streams, lines):
                        poller.unregister(fd)
                if lines:
                    announce_at = math.inf
                    announce()
                    self._mailbox.post(lines)
                    if request.pace is not None:  # the store is behind: the step waits
                        while not (request.pace() or self._stop or time.monotonic() >= deadline):
                            pass  # (its pipe fills; each try waits a moment)
            announce()  # before it is reaped: a zombie still says when it started
            poller.unregister(pidfd)
            poller.unregister(self._wake)
            if lines := _drain(poller, streams):
                self._mailbox.post(lines)
        finally:
            os.close(pidfd)
        returncode = process.wait()
        ended = time.monotonic()
        exit_code, signum = (returncode, None) if returncode >= 0 else (None, -returncode)
        if stopping:
            finish_group(pid, kill_at if kill_at != math.inf else time.monotonic())
            return ExecResult(
                exit_code=exit_code,
                signal=signum,
                timed_out=timed_out,
                cancelled=not timed_out,
                error=f"timed out after {request.timeout:g}s" if timed_out else "cancelled",
                duration=ended - started,
            )
        outputs: dict[str, str] = {}
        error: str | None = None
        if request.output_file is not None:
            try:
                outputs = read_outputs(request.output_file)
            except OutputFileError as exc:
                error = f"$TEMPEH_OUTPUT ({request.output_file}): {exc}"
        return ExecResult(
            exit_code=exit_code,
            signal=signum,
            outputs=outputs,
            error=error,
            duration=ended - started,
        )


def _milliseconds(seconds: float) -> int | None:
    """A poll timeout: None waits for ever; never 0 for a deadline not yet reached."""
    return None if seconds == math.inf else max(0, math.ceil(seconds * 1000))


def _read_into(fd: int, streams: dict[int, tuple[str, LineSplitter]], lines: list[Line]) -> int:
    """Read what a ready pipe has into `lines`: how many bytes, 0 at the end of the stream."""
    data = os.read(fd, _READ_SIZE)
    stream, splitter = streams[fd]
    if not data:
        lines.extend((stream, line) for line in splitter.flush())
        del streams[fd]
        return 0
    lines.extend((stream, line) for line in splitter.feed(data))
    return len(data)


def _drain(poller: select.poll, streams: dict[int, tuple[str, LineSplitter]]) -> list[Line]:
    """What the pipes hold once the main process has exited, read without waiting: a
    background child may keep them open (and writing) for ever, so stop when they are empty."""
    lines: list[Line] = []
    budget = _FINAL_DRAIN_BYTES
    while budget > 0 and (ready := poller.poll(0)):
        for fd, _ in ready:
            read = _read_into(fd, streams, lines)
            if not read:
                poller.unregister(fd)
            budget -= read
    for stream, splitter in streams.values():
        lines.extend((stream, line) for line in splitter.flush())
    return lines


def read_outputs(path: str) -> dict[str, str]:
    """The outputs a step wrote (none if it wrote no file); `OutputFileError` if unusable."""
    try:
        with open(path, "rb") as file:
            size = os.fstat(file.fileno()).st_size
            if size > MAX_OUTPUT_FILE_BYTES:
                raise OutputFileError(None, f"{size} bytes; the limit is {MAX_OUTPUT_FILE_BYTES}")
            data = file.read()
    except FileNotFoundError:
        return {}
    except OSError as exc:
        raise OutputFileError(None, f"cannot be read: {exc.strerror}") from exc
    return parse_outputs(data.decode("utf-8", "replace"))


def _spawn_failure(exc: OSError | ValueError, request: ShellRequest, duration: float) -> ExecResult:
    """A process that could not start: 127 when something is missing, 126 otherwise."""
    if not isinstance(exc, OSError):
        reason = str(exc)
    elif exc.filename == request.cwd:
        reason = f"working directory {request.cwd!r}: {exc.strerror}"
    elif exc.errno == errno.E2BIG:
        reason = "the command and environment are too big (at most 128 KiB per variable)"
    else:
        reason = f"{exc.filename or 'bash'}: {exc.strerror}"
    missing = isinstance(exc, OSError) and exc.errno == errno.ENOENT
    return ExecResult(
        exit_code=127 if missing else 126,
        error=f"cannot start the step: {reason}",
        duration=duration,
    )
