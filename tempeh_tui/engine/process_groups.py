"""Process groups: signalling a step's whole tree, and telling live members from zombies."""

from __future__ import annotations

import contextlib
import functools
import os
import signal
import time

__all__ = [
    "finish_group",
    "group_alive",
    "process_start_time",
    "signal_group",
    "terminate_groups",
]

POLL_SECONDS = 0.02


def signal_group(pgid: int, signum: int) -> None:
    # The group may be gone already; a member running as another user cannot be signalled.
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, signum)


def finish_group(pgid: int, kill_at: float) -> None:
    """After SIGTERM: wait until no member of the group is alive or the grace period is over,
    then SIGKILL whatever is left, so no descendant outlives a stopped step."""
    while group_alive(pgid):
        if time.monotonic() >= kill_at:
            signal_group(pgid, signal.SIGKILL)
            return
        time.sleep(POLL_SECONDS)


def group_alive(pgid: int) -> bool:
    """Whether a process of the group is alive. `killpg(pgid, 0)` also counts zombies, which
    stay forever on hosts whose init does not reap orphans, so /proc settles it."""
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    with os.scandir("/proc") as entries:
        for entry in entries:
            if entry.name.isdigit() and _live_member(entry.name, pgid):
                return True
    return False


def process_start_time(pid: int) -> float | None:
    """When `pid` started, in seconds since the epoch, exactly as psutil's `create_time()`
    computes it (so a resume can compare the two), or None if it is gone. One read of
    /proc/PID/stat: psutil.Process(pid) costs ~10 times more, on every step's path."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as stat:
            fields = stat.read().rpartition(b")")[2].split()
        return int(fields[19]) / _clock_ticks() + _boot_time()
    except FileNotFoundError:
        return None
    except (OSError, ValueError, IndexError):  # no /proc here: ask psutil
        import psutil

        try:
            return float(psutil.Process(pid).create_time())
        except psutil.Error:
            return None


@functools.cache
def _clock_ticks() -> int:
    return os.sysconf("SC_CLK_TCK")


@functools.cache
def _boot_time() -> float:
    import psutil

    return float(psutil.boot_time())


def _live_member(pid: str, pgid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat", "rb") as stat:
            state, _, group = stat.read().rpartition(b")")[2].split()[:3]
    except (OSError, ValueError):
        return False  # exited meanwhile
    return int(group) == pgid and state not in (b"Z", b"X")


def terminate_groups(groups: set[int], grace: float) -> None:
    """SIGTERM every group, wait up to `grace` for them to go, then SIGKILL what is left."""
    for group in groups:
        signal_group(group, signal.SIGTERM)
    kill_at = time.monotonic() + grace
    for group in groups:
        finish_group(group, kill_at)
