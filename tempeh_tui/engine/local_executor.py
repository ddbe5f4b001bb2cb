"""Run steps for real: shell commands as their own process groups, Python callables in-process.

A shell step runs in a worker thread that owns its process from spawn to reaping: it waits in
one `poll` on both output pipes, a pidfd of the main process and a wake-up eventfd, so it can
react at once to output, exit, a deadline or a stop request. Lines travel to the event loop in
batches (one loop wake-up for everything read since the last one), never one hop per line
(`shell_process`).

Measured on a 2-core host (bench/spawn.py): `subprocess.Popen` with `start_new_session` uses
vfork and close_range, and a lean thread pool beat anyio.to_thread, a single reactor thread and
spawning on the loop thread once the machine is busy. Linux only (pidfd, eventfd, /proc), and
asyncio only (as Textual is).
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import dataclasses
import functools
import importlib
import inspect
import os
import queue
import shutil
import sys
import threading
import time
import traceback
from collections.abc import Callable, Mapping
from types import TracebackType
from typing import Any, TypeVar

import anyio
import anyio.lowlevel

from tempeh_tui.engine.executor import ExecResult, ExecutionObserver, PythonRequest, ShellRequest
from tempeh_tui.engine.outputs import is_output_key
from tempeh_tui.engine.python_output import StepPrints, redirect_std_streams
from tempeh_tui.engine.rendering import as_text
from tempeh_tui.engine.shell_process import Mailbox, ShellRun

__all__ = ["LocalExecutor"]

_THREAD_IDLE_SECONDS = 10.0  # an idle worker thread exits after this long

Callback = Callable[[], object]
T = TypeVar("T")
_Target = tuple[Callable[[Any], Any], bool]  # a python step's callable, and whether it is async
_NO_RESULT = ExecResult(exit_code=None)  # what a call that timed out leaves behind


class LocalExecutor:
    """The `Executor` that runs `bash -c` process groups and `module:function` callables.

    `bash` is looked up once, on this process's PATH (a step's PATH only affects what bash runs).
    """

    def __init__(self, *, bash: str | None = None, max_threads: int = 256) -> None:
        self._bash = bash or shutil.which("bash") or "/bin/bash"
        # The engine limits concurrency itself; this only bounds the worker threads.
        self._threads = _Threads(max_threads)
        self._targets: dict[tuple[str, tuple[str, ...]], _Target] = {}
        # a step's sync call left running by its timeout: its next attempt waits for it
        self._unfinished: dict[tuple[object, object], threading.Event] = {}

    async def run_shell(self, request: ShellRequest, observer: ExecutionObserver) -> ExecResult:
        """Run the command; on cancellation stop its whole group (shielded), then re-raise."""
        mailbox = Mailbox(observer, asyncio.get_running_loop().call_soon_threadsafe)
        run = ShellRun(request, self._bash, mailbox)
        try:
            result = await self._threads.run(run.execute)
        except BaseException:
            with anyio.CancelScope(shield=True):
                if run.request_stop():
                    await self._threads.run(run.wait_finished)
                await mailbox.flush()
            raise
        await mailbox.flush()
        if mailbox.error is not None:
            raise mailbox.error
        return result

    async def call_python(self, request: PythonRequest, observer: ExecutionObserver) -> ExecResult:
        """Call the target with the step's context: the boundary that turns whatever user code
        raises into a failed result with its traceback.

        A sync callable runs in a worker thread. A thread cannot be killed: when a sync call
        times out (or is cancelled) it is reported at the deadline and left to finish unseen;
        the step's next call (a retry) waits until it has returned, so two attempts of one
        step never run at once.
        """
        await self._after_unfinished(request.context, observer)
        started = time.monotonic()
        prints = StepPrints(observer, asyncio.get_running_loop())
        try:
            with prints:  # what the step prints (importing it, too) is its log
                try:
                    target = self._resolve(request.target, request.search_path)
                except asyncio.CancelledError:
                    raise
                except BaseException as exc:  # importing user code runs it
                    result = _raised(exc)
                else:
                    result = await self._call(target, request)
        except BaseException:
            with anyio.CancelScope(shield=True):
                await prints.flush()
            raise
        await prints.flush()
        if prints.error is not None:
            raise prints.error
        if result.traceback:  # where it failed, after what it printed (its error says what)
            for line in result.traceback.rstrip("\n").splitlines():
                observer.output("stderr", line)
        return dataclasses.replace(result, duration=time.monotonic() - started)

    async def _after_unfinished(self, context: Any, observer: ExecutionObserver) -> None:
        key = (getattr(context, "run_id", None), getattr(context, "step", None))
        left = self._unfinished.pop(key, None)
        if left is None or left.is_set():
            return
        observer.output(
            "tempeh",
            "waiting for the step's previous call to return: it timed out, and a thread "
            "cannot be stopped",
        )
        while not left.is_set():  # noqa: ASYNC110 - a thread's event: polled, cancellable
            await anyio.sleep(0.05)

    async def _call(self, target: _Target, request: PythonRequest) -> ExecResult:
        if request.timeout is None:  # no cancel scope to enter and leave: ~10 µs a step
            return await self._invoke(target, request.context)
        result = _NO_RESULT
        with anyio.move_on_after(request.timeout):
            result = await self._invoke(target, request.context)
        if result is _NO_RESULT:
            error = f"timed out after {request.timeout:g}s"
            result = ExecResult(exit_code=None, timed_out=True, error=error)
        return result

    async def _invoke(self, target: _Target, context: Any) -> ExecResult:
        function, is_async = target
        if is_async:
            value: object = await _call_user_async(function, context)
        else:
            # The thread runs in a copy of this task's context (so its prints are the step's)
            # and keeps the streams redirected until it returns, even if it is left running.
            done = threading.Event()
            job = functools.partial(
                _in_thread,
                redirect_std_streams(),
                contextvars.copy_context(),
                function,
                context,
                done,
            )
            try:
                value = await self._threads.run(job)
            finally:
                if not done.is_set():  # left running (timed out, cancelled)
                    key = (getattr(context, "run_id", None), getattr(context, "step", None))
                    self._unfinished[key] = done
            if inspect.isawaitable(value):
                value = await _await_user(value)
        if isinstance(value, ExecResult):
            return value
        return _returned(value)

    def _resolve(self, target: str, search_path: tuple[str, ...]) -> _Target:
        """The callable named `module:function` (or `module:Class.method`), imported once."""
        key = (target, search_path)
        cached = self._targets.get(key)
        if cached is not None:
            return cached
        module_name, _, attribute = target.partition(":")
        if not module_name or not attribute:
            raise ValueError(f"python target {target!r} is not 'module:function'")
        # Kept on sys.path: the module may import its neighbours later, lazily.
        for directory in reversed(search_path):
            if directory not in sys.path:
                sys.path.insert(0, directory)
        importlib.invalidate_caches()
        found: Any = importlib.import_module(module_name)
        _refuse_shadowed(module_name, search_path)
        for name in attribute.split("."):
            found = getattr(found, name)
        if not callable(found):
            raise TypeError(f"python target {target!r} is a {type(found).__name__}, not callable")
        # An `async def` function, or an object whose class has `async def __call__`.
        is_async = inspect.iscoroutinefunction(found) or inspect.iscoroutinefunction(
            type(found).__call__
        )
        resolved: _Target = (found, is_async)
        self._targets[key] = resolved
        return resolved


def _refuse_shadowed(module_name: str, search_path: tuple[str, ...]) -> None:
    """A module beside the workflow that Python did not import, because one of that name was
    imported already (the standard library's `platform`, another workflow's `steps`): say so,
    rather than call the wrong code."""
    top = module_name.split(".", maxsplit=1)[0]
    module = sys.modules.get(top)
    for directory in search_path:
        beside = os.path.join(directory, top)
        if os.path.isfile(beside + ".py"):
            mine, ours = beside + ".py", [getattr(module, "__file__", None)]
        elif os.path.isdir(beside):  # a package (or a namespace package: no __init__.py)
            mine, ours = beside, [*getattr(module, "__path__", ())]
        else:
            continue
        found = [path for path in ours if path and os.path.exists(path)]
        if not any(os.path.samefile(path, mine) or _inside(path, mine) for path in found):
            raise ImportError(
                f"module '{top}' beside the workflow ({mine}) is not the one Python imported "
                f"({', '.join(found) or 'a built-in module'}): a module of that name was "
                "imported first; rename the workflow's module"
            )
        return


def _inside(path: str, directory: str) -> bool:
    return os.path.isdir(directory) and os.path.samefile(os.path.dirname(path), directory)


class _Threads:
    """Daemon worker threads fed through one `SimpleQueue`: a blocking call costs one hand-over
    each way. (anyio.to_thread took 115 µs per sync no-op call here, this 40 µs.)"""

    def __init__(self, max_threads: int) -> None:
        self._jobs: queue.SimpleQueue[Callback] = queue.SimpleQueue()
        self._lock = threading.Lock()
        self._max = max_threads
        self._count = 0
        self._idle = 0  # threads waiting for a job that no submitted job has claimed
        self._backlog = 0  # jobs queued while every thread was busy and no more were allowed

    async def run(self, call: Callable[[], T]) -> T:
        """`call()` in a worker thread. Cancelling the caller abandons the call: it runs on."""
        loop = asyncio.get_running_loop()
        future: asyncio.Future[T] = loop.create_future()

        def job() -> None:
            try:
                outcome: tuple[T | None, BaseException | None] = (call(), None)
            except BaseException as exc:  # handed to the caller, whatever it is
                outcome = (None, exc)
            with contextlib.suppress(RuntimeError):  # the loop is closed: nobody waits
                loop.call_soon_threadsafe(_settle, future, *outcome)

        self._submit(job)
        return await future

    def _submit(self, job: Callback) -> None:
        with self._lock:
            start = not self._idle and self._count < self._max
            if self._idle:
                self._idle -= 1
            elif start:
                self._count += 1
            else:
                self._backlog += 1
        self._jobs.put(job)
        if start:
            threading.Thread(target=self._work, name="tempeh-executor", daemon=True).start()

    def _work(self) -> None:
        while True:
            try:
                job = self._jobs.get(timeout=_THREAD_IDLE_SECONDS)
            except queue.Empty:
                with self._lock:
                    if self._idle:  # no job is on its way to this thread: retire
                        self._idle -= 1
                        self._count -= 1
                        return
                continue
            job()
            del job
            with self._lock:
                if self._backlog:
                    self._backlog -= 1
                else:
                    self._idle += 1


def _settle(future: asyncio.Future[T], result: T | None, error: BaseException | None) -> None:
    if future.done():  # the caller was cancelled and has gone
        return
    if error is not None:
        future.set_exception(error)
    else:
        future.set_result(result)  # type: ignore[arg-type]


# --- python steps -------------------------------------------------------------------------------


def _in_thread(
    release: Callable[[], None],
    context: contextvars.Context,
    function: Callable[[Any], Any],
    step_context: Any,
    done: threading.Event,
) -> object:
    try:
        return context.run(_call_user, function, step_context)
    finally:
        release()
        done.set()


def _call_user(function: Callable[[Any], Any], context: Any) -> object:
    """Run a sync callable (in a worker thread); whatever it raises becomes a failed result
    (a KeyboardInterrupt or another BaseException too: in a worker thread it is the step's)."""
    try:
        return function(context)
    except BaseException as exc:  # user code: all it raises is the step's
        return _raised(exc)


async def _call_user_async(function: Callable[[Any], Any], context: Any) -> object:
    """Await an async callable on the loop; whatever it raises becomes a failed result, but
    a cancellation (the step's timeout, the run stopping), which is tempeh's."""
    try:
        return await function(context)
    except asyncio.CancelledError:
        raise
    except BaseException as exc:  # user code: all it raises is the step's
        return _raised(exc)


async def _await_user(awaitable: Any) -> object:
    """Await what a sync callable returned (a coroutine, say), as `_call_user_async`."""
    try:
        return await awaitable
    except asyncio.CancelledError:
        raise
    except BaseException as exc:  # user code: all it raises is the step's
        return _raised(exc)


def _raised(exc: BaseException) -> ExecResult:
    """What user code raising `exc` means: `ExcType: message` and the traceback from user code."""
    if isinstance(exc, SystemExit) and (exc.code is None or isinstance(exc.code, int)):
        code = exc.code or 0
        return ExecResult(exit_code=code, error=f"SystemExit: {code}" if code else None)
    frames = _user_frames(exc.__traceback__)
    message = str(exc).strip().splitlines()
    return ExecResult(
        exit_code=1,
        error=f"{type(exc).__name__}: {message[0]}" if message else type(exc).__name__,
        traceback="".join(traceback.format_exception(type(exc), exc, frames)),
    )


_OWN_FILES = (
    os.path.dirname(os.path.dirname(__file__)) + os.sep,
    os.path.dirname(importlib.__file__ or ""),
)


def _user_frames(tb: TracebackType | None) -> TracebackType | None:
    """The traceback from the first frame of user code on: not tempeh's frames, nor the
    import machinery's (an error while importing the step's module starts at its line)."""
    while tb is not None:
        name = tb.tb_frame.f_code.co_filename
        if not (name.startswith(_OWN_FILES) or name.startswith("<frozen importlib")):
            return tb
        tb = tb.tb_next
    return None


def _returned(value: object) -> ExecResult:
    """A python step's return value as outputs: None or a mapping; values become the text a
    process would see (`None` empty, booleans `true`/`false`, lists and mappings JSON)."""
    if value is None:
        return ExecResult(exit_code=0)
    if not isinstance(value, Mapping):
        return ExecResult(
            exit_code=1,
            error=f"the step returned a {type(value).__name__}; "
            "a python step returns a mapping of outputs or None",
        )
    outputs = {str(key): as_text(item) for key, item in value.items()}
    for key in outputs:
        if not is_output_key(key):
            return ExecResult(
                exit_code=1,
                error=f"the step returned output {key!r}: "
                "output names are [A-Za-z_][A-Za-z0-9_.-]*",
            )
    return ExecResult(exit_code=0, outputs=outputs)
