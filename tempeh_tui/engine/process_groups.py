"""Process groups: signalling a step's whole tree, and telling live members from zombies."""

from __future__ import annotations

import contextlib
import os
import signal
import time

from tempeh_tui.store.lease import process_start_time

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
