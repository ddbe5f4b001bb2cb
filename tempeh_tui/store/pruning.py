"""Which runs `tempeh gc` removes: the rules, apart from how each store deletes.

A run goes when it is older than `older_than` (nothing happened in it for that long: no
event, no log line, no heartbeat) and beyond the newest `keep` runs of its workflow (per
workflow, so a workflow run every minute does not push out the history of one run monthly,
nor its cache hits). Given one rule only, that rule decides. A run that a live process drives
is never removed, whatever the rules say.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass

from tempeh_tui.events import RunStatus
from tempeh_tui.store.base import LEASE_TIMEOUT, RunLease
from tempeh_tui.store.lease import is_alive

__all__ = ["RunActivity", "check_rules", "is_driven", "select_runs"]

_DRIVEN_STATES = frozenset({RunStatus.RUNNING.value, RunStatus.PAUSED.value})


@dataclass(frozen=True)
class RunActivity:
    """What the rules look at in a run."""

    id: str
    workflow: str
    status: str
    last_active: float
    """The time of the latest thing that happened in the run (created, started, ended, an
    event, a log line, a heartbeat)."""
    lease: RunLease | None


def check_rules(keep: int | None, older_than: float | None) -> None:
    if keep is None and older_than is None:
        raise ValueError("say which runs to remove: keep N per workflow, older than D, or both")
    if keep is not None and keep < 0:
        raise ValueError(f"keep must be 0 or more, not {keep}")
    if older_than is not None and (not math.isfinite(older_than) or older_than < 0):
        raise ValueError(f"older_than must be 0 or more seconds, not {older_than}")


def select_runs(
    newest_first: Iterable[RunActivity], keep: int | None, older_than: float | None, now: float
) -> list[RunActivity]:
    """The runs the rules select (driven ones included: see `is_driven`), newest first."""
    check_rules(keep, older_than)
    seen: Counter[str] = Counter()
    selected = []
    for run in newest_first:
        seen[run.workflow] += 1
        beyond_keep = keep is None or seen[run.workflow] > keep
        old = older_than is None or now - run.last_active > older_than
        if beyond_keep and old:
            selected.append(run)
    return selected


def is_driven(run: RunActivity, now: float) -> bool:
    """Whether a process may still be driving the run: its lease holder lives, or, for a
    running or paused run nobody holds a lease on, something happened in it lately."""
    if run.lease is not None:
        return is_alive(run.lease, now)
    return run.status in _DRIVEN_STATES and now - run.last_active <= LEASE_TIMEOUT
