"""Helpers for executor tests: an observer that records, requests with a known environment."""

from __future__ import annotations

import os
import threading
from pathlib import Path

import psutil

from tempeh_tui.engine.executor import ShellRequest

__all__ = ["BASE_ENV", "Recorder", "alive", "read_pids", "shell"]

BASE_ENV = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "LC_ALL": "C.UTF-8"}


class Recorder:
    """An `ExecutionObserver` that keeps everything it is told, and on which thread."""

    def __init__(self) -> None:
        self.lines: list[tuple[str, str]] = []
        self.pids: list[int] = []
        self.threads: set[int] = set()

    def output(self, stream: str, line: str) -> None:
        self.threads.add(threading.get_ident())
        self.lines.append((stream, line))

    def spawned(self, pid: int, started: float | None = None) -> None:
        self.threads.add(threading.get_ident())
        self.pids.append(pid)

    def stream(self, name: str) -> list[str]:
        return [line for stream, line in self.lines if stream == name]


def shell(
    command: str,
    cwd: Path,
    *,
    env: dict[str, str] | None = None,
    timeout: float | None = None,
    grace: float = 5.0,
    output_file: Path | None = None,
) -> ShellRequest:
    return ShellRequest(
        command,
        {**BASE_ENV, **(env or {})},
        str(cwd),
        timeout=timeout,
        grace=grace,
        output_file=str(output_file) if output_file is not None else None,
    )


def read_pids(path: Path) -> list[int]:
    return [int(word) for word in path.read_text().split()]


def alive(pid: int) -> bool:
    """Whether `pid` runs (a zombie is dead: this host's init does not reap orphans)."""
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False
