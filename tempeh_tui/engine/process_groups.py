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
    """Signal a step's process group, and the other groups of the session its process leads
    (it is started in a session of its own: a script with `set -m` puts its jobs in groups of
    their own there). Only `setsid` leaves the session: that is how a step detaches on purpose."""
    for group in _session_groups(pgid):
        # The group may be gone already; a member running as another user cannot be signalled.
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(group, signum)


def _session_groups(pgid: int) -> set[int]:
    groups = {pgid}
    for _, group, session in _processes():
        if session == pgid:
            groups.add(group)
    return groups


def _processes() -> list[tuple[bytes, int, int]]:
    """(state, process group, session) of every process /proc shows (none without /proc)."""
    found = []
    try:
        entries = os.scandir("/proc")
    except OSError:
        return []
    with entries:
        for entry in entries:
            if not entry.name.isdigit():
                continue
            try:
                with open(f"/proc/{entry.name}/stat", "rb") as stat:
                    fields = stat.read().rpartition(b")")[2].split()
                found.append((fields[0], int(fields[2]), int(fields[3])))
            except (OSError, ValueError, IndexError):
                continue  # exited meanwhile
    return found


def finish_group(pgid: int, kill_at: float) -> None:
    """After SIGTERM: wait until no member of the group is alive or the grace period is over,
    then SIGKILL whatever is left, so no descendant outlives a stopped step."""
    while group_alive(pgid):
        if time.monotonic() >= kill_at:
            signal_group(pgid, signal.SIGKILL)
            return
        time.sleep(POLL_SECONDS)


def group_alive(pgid: int) -> bool:
    """Whether a process of the group, or of the session it leads, is alive. `killpg(pgid, 0)`
    also counts zombies, which stay forever on hosts whose init does not reap orphans, so
    /proc settles it where there is one."""
    if not os.path.isdir("/proc"):
        try:
            os.killpg(pgid, 0)
        except ProcessLookupError:
            return False
        except PermissionError:
            return True
        return True
    return any(
        pgid in (group, session) and state not in (b"Z", b"X")
        for state, group, session in _processes()
    )


def terminate_groups(groups: set[int], grace: float) -> None:
    """SIGTERM every group, wait up to `grace` for them to go, then SIGKILL what is left."""
    for group in groups:
        signal_group(group, signal.SIGTERM)
    kill_at = time.monotonic() + grace
    for group in groups:
        finish_group(group, kill_at)
