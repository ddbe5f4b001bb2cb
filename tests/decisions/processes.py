"""`tempeh` as real processes against one store file: start a run, watch the store, answer."""

from __future__ import annotations

import sqlite3
import subprocess
import sys
import time
from pathlib import Path

from tests.cli.process import ROOT, start_tempeh

tempeh = start_tempeh


def finish(process: subprocess.Popen[str], timeout: float = 60) -> int:
    try:
        process.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        process.kill()
        process.communicate()
        raise
    return process.returncode


def query(db: Path, sql: str) -> list[tuple[object, ...]]:
    if not db.exists():
        return []
    conn = sqlite3.connect(db, timeout=30)
    try:
        return conn.execute(sql).fetchall()
    except sqlite3.OperationalError:  # not made yet
        return []
    finally:
        conn.close()


def wait_for(
    db: Path, sql: str, process: subprocess.Popen[str], timeout: float = 30
) -> list[tuple[object, ...]]:
    deadline = time.monotonic() + timeout
    while True:
        rows = query(db, sql)
        if rows:
            return rows
        assert process.poll() is None, process.communicate()
        assert time.monotonic() < deadline, f"nothing came of: {sql}"
        time.sleep(0.05)


WAITING = "SELECT run_id, unit, kind, summary FROM decisions WHERE answer IS NULL"


def answer(*args: str, db: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "tempeh_tui", *args, "--db", str(db)],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=60,
        check=False,
        stdin=subprocess.DEVNULL,  # not a terminal: nobody to ask y/N
    )
