"""The checkpoint journal: a run's latest events, safe from a crash before SQLite has them.

The engine checkpoints before every action that a resume must know about (a process spawned,
a Python step called). Waiting for an SQLite transaction there would put a thread hop and a
commit (~0.3-1 ms here) on every step's path; appending the events to a memory-mapped file
is a copy (see `_Mapped`) and, like a commit in WAL mode with `synchronous = NORMAL`,
survives a crash of the process (not of the machine). SQLite still receives everything, in
batches every few milliseconds; each batch that catches up with the journal empties it
(see `Journal.clear`).

Files: `<store>.journal/<run id>.jsonl`, one JSON array per event:
`[run_id, seq, ts, type, step, {the event's own fields}]`, then a NUL byte: what lies past it
(space reserved ahead, or lines from before the file was last emptied) is not read. A file
left behind by a dead driver is replayed into the store by the next process
that opens it (`recover`): the events whose `seq` the store does not have yet, in one
transaction; then the file goes.
"""

from __future__ import annotations

import contextlib
import errno
import json
import mmap
import os
import sqlite3
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any

from tempeh_tui.events import Event
from tempeh_tui.events.types import event_from_fields
from tempeh_tui.store.projection import dumps, event_fields, quote

__all__ = ["Journal", "journal_folder", "read_journal"]

_SUFFIX = ".jsonl"
_FIRST_SIZE = 64 * 1024


def journal_folder(store_path: Path) -> Path:
    return store_path.with_name(store_path.name + ".journal")


def encode(event: Event, fields: str | None = None) -> str:
    """The event's journal line; `fields` is its own fields as JSON, if already encoded."""
    if fields is None:
        fields = dumps(event_fields(event))
    step = "null" if event.step is None else quote(event.step)
    return f"[{quote(event.run_id)},{event.seq},{event.ts!r},{quote(event.type)},{step},{fields}]"


def read_journal(path: Path) -> list[Event]:
    """The events of one journal file. A line cut short (the process died while writing it)
    can only be the last one, and is left out: that event was never acted on."""
    events: list[Event] = []
    with path.open("rb") as file:
        lines = file.read().split(b"\0", 1)[0].split(b"\n")  # zeros: reserved, unwritten
    for number, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            run_id, seq, ts, type_name, step, data = json.loads(line)
            events.append(
                event_from_fields(type_name, data, run_id=run_id, step=step, seq=seq, ts=ts)
            )
        except (ValueError, TypeError, KeyError) as exc:
            if number >= len(lines) - 1:
                break  # the torn last line
            raise ValueError(f"{path}:{number}: not a tempeh journal line ({exc})") from exc
    return events


class _Mapped:
    """One run's journal file, mapped into memory: appending is a copy, not a system call.

    A `write` releases the GIL and, with the executor's threads busy spawning processes, took
    ~120 µs on average to get it back (up to 4 ms); copying into a shared mapping takes none and
    survives a crash of this process just the same (the pages are the kernel's page cache).
    The file is reserved ahead (`posix_fallocate`, so a full disk is an error here, not a
    SIGBUS later) and zero past what was written: readers stop at the first NUL byte."""

    def __init__(self, path: Path) -> None:
        self.fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        try:
            size = os.fstat(self.fd).st_size
            self.end = size
            if size:  # ours from before (closed with events pending): append after them
                with open(self.fd, "rb", closefd=False) as existing:
                    found = existing.read().find(b"\0")
                self.end = size if found < 0 else found
            self.map: mmap.mmap | None = None
            self._reserve(max(size, _FIRST_SIZE))
        except BaseException:
            os.close(self.fd)
            raise

    def append(self, data: bytes) -> None:
        end = self.end + len(data)
        assert self.map is not None
        if end >= len(self.map):  # (room for the NUL after it too)
            self._reserve(max(2 * len(self.map), end + 1))
            assert self.map is not None
        # The NUL that ends what readers read goes first: after `reset`, older lines lie past
        # the end, and a crash half-way through the copy must leave a torn last line, not a
        # torn line followed by old ones.
        self.map[end] = 0
        self.map[self.end : end] = data
        self.end = end

    def reset(self) -> None:
        """Empty the file for readers (its first byte a NUL) and write from its start again:
        no unmapping, truncating or reserving on the engine's path."""
        assert self.map is not None
        self.map[0] = 0
        self.end = 0

    def close(self) -> None:
        if self.map is not None:
            self.map.close()
        try:
            os.ftruncate(self.fd, self.end)  # a file left for recovery has no zeros at its end
        finally:
            os.close(self.fd)

    def _reserve(self, size: int) -> None:
        size = -(-size // mmap.PAGESIZE) * mmap.PAGESIZE
        try:
            os.posix_fallocate(self.fd, 0, size)
        except AttributeError:  # no posix_fallocate on this system (macOS)
            os.ftruncate(self.fd, size)
        except OSError as exc:
            if exc.errno not in (errno.EOPNOTSUPP, errno.EINVAL):
                raise
            os.ftruncate(self.fd, size)  # a file system that cannot reserve
        if self.map is not None:
            self.map.close()
        self.map = mmap.mmap(self.fd, size)


class Journal:
    """The journal files this process writes (one per run it records events of)."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self._files: dict[str, _Mapped] = {}
        self._appended: set[str] = set()  # the runs with lines since the last `clear`

    def append(self, events: Sequence[Event], fields: Sequence[str]) -> None:
        """Copy `events` to the end of their runs' files; `fields`: each one's own fields
        as JSON (`projection.encoded_fields`, which the store's `events` table keeps too)."""
        lines: dict[str, list[str]] = {}
        for event, data in zip(events, fields, strict=True):
            lines.setdefault(event.run_id, []).append(encode(event, data))
        for run_id, texts in lines.items():
            file = self._files.get(run_id)
            if file is None:
                self.folder.mkdir(mode=0o700, exist_ok=True)
                file = self._files[run_id] = _Mapped(self.folder / f"{run_id}{_SUFFIX}")
            file.append(("\n".join(texts) + "\n").encode())
            self._appended.add(run_id)

    def clear(self) -> None:
        """Everything written here is in SQLite now. A run journaled since the last `clear`
        keeps its file, emptied (it is being driven: the next checkpoint comes soon); the
        files of the others go, so a long-lived store keeps no descriptor per past run."""
        for run_id in list(self._files):
            if run_id in self._appended:
                self._files[run_id].reset()
            else:
                self._close(run_id, remove=True)
        self._appended.clear()

    def close(self, *, remove: bool) -> None:
        """Close the files; `remove` them when SQLite has everything they hold."""
        for run_id in list(self._files):
            self._close(run_id, remove=remove)
        self._appended.clear()

    def _close(self, run_id: str, *, remove: bool) -> None:
        self._files.pop(run_id).close()
        if remove:
            with contextlib.suppress(FileNotFoundError):
                (self.folder / f"{run_id}{_SUFFIX}").unlink()


def recover(
    db: sqlite3.Connection,
    folder: Path,
    *,
    orphaned: Callable[[sqlite3.Connection, str], bool | None],
    apply: Callable[[sqlite3.Connection, Iterable[Event]], None],
    run_id: str | None = None,
) -> list[str]:
    """Replay the journals of runs whose driver is gone into the store, then remove them.

    `orphaned(db, run_id)`, asked inside the write transaction: True if nobody drives the run,
    False if a live process does (its journal is its own), None if the store has no such run
    (the journal is removed unread). Only `run_id`'s journal, if given. Returns the runs that
    had events to replay."""
    try:
        paths = sorted(folder.glob(f"{'*' if run_id is None else run_id}{_SUFFIX}"))
    except OSError:
        return []
    recovered: list[str] = []
    for path in paths:
        run_id = path.name.removesuffix(_SUFFIX)
        events: list[Event] = []
        db.execute("BEGIN IMMEDIATE")
        try:
            verdict = orphaned(db, run_id)
            if verdict is False:
                db.execute("ROLLBACK")
                continue
            if verdict is True:
                last = _last_seq(db, run_id)
                events = [e for e in read_journal(path) if e.run_id == run_id and e.seq > last]
            if events:
                apply(db, events)
            db.execute("COMMIT")
        except BaseException:
            if db.in_transaction:
                db.execute("ROLLBACK")
            raise
        with contextlib.suppress(FileNotFoundError):
            path.unlink()
        if events:
            recovered.append(run_id)
    return recovered


def _last_seq(db: sqlite3.Connection, run_id: str) -> int:
    row: Any = db.execute(
        "SELECT max(coalesce((SELECT max(seq) FROM events WHERE run_id = ?), 0),"
        " coalesce((SELECT max(seq) FROM logs WHERE run_id = ?), 0))",
        (run_id, run_id),
    ).fetchone()
    return int(row[0])
