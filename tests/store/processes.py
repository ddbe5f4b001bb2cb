"""Other processes using the same store file, driven line by line over their stdin and stdout:
real processes, so leases see real pids and SQLite real file locks."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from types import TracebackType
from typing import Self

__all__ = ["LEASE_CLIENT", "WATCHER", "Client"]

LEASE_CLIENT = """
import os, sys, time, anyio
from tempeh_tui.store import LeaseLost, RunLocked, SqliteStore

async def main(path: str, run_id: str) -> None:
    async with SqliteStore(path) as store:
        print("ready", flush=True)
        for command in iter(sys.stdin.readline, ""):
            command, _, at = command.strip().partition(" ")
            if at:  # a moment agreed with the others: all try at once
                await anyio.sleep(float(at) - time.time())
            try:
                if command == "acquire":
                    await store.acquire_lease(run_id)
                    print("acquired", flush=True)
                elif command == "heartbeat":
                    await store.heartbeat(run_id)
                    print("beat", flush=True)
                elif command == "release":
                    await store.release_lease(run_id)
                    print("released", flush=True)
                elif command == "die":
                    os._exit(0)  # no release, no close: as if killed
            except (RunLocked, LeaseLost) as exc:
                print(f"{type(exc).__name__}: {exc}", flush=True)

anyio.run(main, sys.argv[1], sys.argv[2], backend="asyncio")
"""
"""Opens the store, says `ready`, then acquires, heartbeats, releases or dies on command
(`acquire 1795000000.5`: at that moment)."""

WATCHER = """
import sys, anyio
from pathlib import Path
from tempeh_tui.store import SqliteStore

async def main(path: str, run_id: str, stop: str) -> None:
    reads = lines = 0
    async with SqliteStore(path) as store:
        print("ready", flush=True)
        done = False
        while not done:
            done = Path(stop).exists()  # then one more read, of everything
            run = await store.get_run(run_id)
            lines = len(await store.read_logs(run_id, "build"))
            await store.list_runs()
            reads += 1
    print(reads, lines, len(run.steps), flush=True)

anyio.run(main, *sys.argv[1:4], backend="asyncio")
"""
"""Reads a run in a loop, as `tempeh watch` would, until a stop file appears; then prints
how many reads it made (any error ends it with a traceback)."""


class Client:
    """A child process running `script` with `args`, talked to one line at a time."""

    def __init__(self, script: str, *args: str | Path) -> None:
        self.process = subprocess.Popen(
            [sys.executable, "-c", script, *map(str, args)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )

    @property
    def pid(self) -> int:
        return self.process.pid

    def send(self, command: str) -> None:
        assert self.process.stdin is not None
        self.process.stdin.write(command + "\n")
        self.process.stdin.flush()

    def read(self) -> str:
        """The child's next line; fails with its stderr if it ended instead."""
        assert self.process.stdout is not None
        line = self.process.stdout.readline()
        if not line:
            self.process.wait(timeout=10)
            assert self.process.stderr is not None
            raise AssertionError(f"the child ended: {self.process.stderr.read()}")
        return line.rstrip("\n")

    def ask(self, command: str) -> str:
        self.send(command)
        return self.read()

    def finish(self, timeout: float = 20) -> tuple[str, str]:
        """Close its stdin and wait for it to end; returns the rest of stdout and stderr."""
        out, err = self.process.communicate(timeout=timeout)
        return out, err

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self.process.returncode is None:
            self.process.kill()
            self.process.communicate()
