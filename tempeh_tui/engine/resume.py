"""Resuming a run: what to reuse, what to run again, what is in doubt, and why (SPEC 4).

Before a resumed run acts, processes that its dead engine left behind are killed: those whose
recorded process group and start time still match, and any process that carries the run's id
in its environment (which covers one spawned after the last checkpoint).
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
from dataclasses import dataclass
from typing import Literal

import anyio

from tempeh_tui.definition.models import Step, Workflow
from tempeh_tui.definition.yaml_reader import SourceMap
from tempeh_tui.engine.decisions import (
    FAILURE_CHOICES,
    Decision,
    QuestionKind,
    RetryValues,
    retry_values_by_unit,
)
from tempeh_tui.engine.process_groups import terminate_groups
from tempeh_tui.engine.results import UnitResult
from tempeh_tui.errors import TempehError
from tempeh_tui.events import RunStatus, StepStatus
from tempeh_tui.events.types import iso_time
from tempeh_tui.graph.build import WorkflowGraph, build_graph
from tempeh_tui.store import same_process
from tempeh_tui.store.base import (
    DecisionRecord,
    RollbackRecord,
    RunRecord,
    StepRecord,
    StoreError,
)

__all__ = [
    "InDoubt",
    "ResumePlan",
    "RolledBack",
    "UnitDecision",
    "as_unit_result",
    "interrupted_rollback",
    "kill_leftovers",
    "plan_resume",
    "stored_workflow",
]

Action = Literal["reuse", "re-run", "in doubt", "decide again", "not selected", "as decided"]


class InDoubt(TempehError):
    """Steps that may have half-run and must not run twice without an operator's yes."""

    def __init__(self, run_id: str, steps: list[str]) -> None:
        self.run_id = run_id
        self.steps = steps
        super().__init__(
            f"run {run_id}: {', '.join(steps)} may have run already and "
            f"{'is' if len(steps) == 1 else 'are'} not idempotent; resume with --yes to run "
            f"{'it' if len(steps) == 1 else 'them'} again"
        )


class RolledBack(TempehError):
    """A run that was rolled back has nothing left to resume: its steps were undone on
    purpose, and running them again would deploy what the rollback took away."""

    def __init__(self, run: RunRecord) -> None:
        self.run_id = run.id
        if run.status is RunStatus.ROLLBACK_FAILED:
            hint = f"`tempeh rollback {run.id} --yes` tries the failed compensations again"
        else:
            hint = "start a new run with `tempeh run`"
        super().__init__(f"run {run.id} was {run.status.value}: nothing to resume; {hint}")


def interrupted_rollback(run: RunRecord) -> RollbackRecord | None:
    """The run's last rollback, if it stopped before it ended (its process died, or it was
    interrupted): resuming the run continues it (SPEC 4)."""
    last = run.rollbacks[-1] if run.rollbacks else None
    if last is not None and last.status in (RunStatus.RUNNING, RunStatus.INTERRUPTED):
        return last
    return None


@dataclass(frozen=True)
class UnitDecision:
    name: str
    action: Action
    why: str
    record: StepRecord | None = None
    probe: bool = False
    """In doubt, with a `check` probe to ask whether its effect is in place."""
    confirm: bool = False
    """In doubt, not idempotent, no probe: runs again only with the operator's yes."""
    skipped_by: DecisionRecord | None = None
    """The operator's `skip` that keeps it skipped (its dependents run as if it succeeded)."""
    tries: int = 0
    """Of its `retry.attempts`, what a unit stopped in a retry chain used: it goes on with the
    rest (`UnitRunner`), it does not start again."""
    stopped_by: DecisionRecord | None = None
    """The operator's `rollback` or `abort` of its failure, which the engine that asked died
    before acting on: the resume acts on it, and runs nothing ("as decided")."""


@dataclass(frozen=True)
class ResumePlan:
    run: RunRecord
    workflow: Workflow
    decisions: list[UnitDecision]
    graph: WorkflowGraph
    """The workflow's graph, made once: the resumed run uses it too."""

    def reused(self) -> dict[str, UnitResult]:
        return {
            d.name: as_unit_result(d.record, d.skipped_by, d.stopped_by)
            for d in self.decisions
            if d.action in ("reuse", "as decided") and d.record
        }

    def operator_stop(self) -> DecisionRecord | None:
        """The operator's `rollback` or `abort` still to act on, if any."""
        return _operator_stop(self.decisions)

    def probes(self) -> frozenset[str]:
        return frozenset(d.name for d in self.decisions if d.probe)

    def tries_before(self) -> dict[str, int]:
        return {d.name: d.tries for d in self.decisions if d.tries}

    def needing_confirmation(self) -> list[str]:
        return [d.name for d in self.decisions if d.confirm]

    def counts(self) -> dict[str, int]:
        out: dict[str, int] = {}
        for decision in self.decisions:
            out[decision.action] = out.get(decision.action, 0) + 1
        return out


def stored_workflow(run: RunRecord) -> Workflow:
    """The definition stored with the run, refused if it does not match its hash."""
    try:
        workflow = Workflow.model_validate(run.definition, context={"checked": True})
    except Exception as exc:  # a damaged definition: any validation failure is the store's
        raise StoreError(f"run {run.id}: the stored definition does not load ({exc})") from None
    if workflow.fingerprint() != run.definition_hash:
        raise StoreError(
            f"run {run.id}: the stored definition does not match its hash; "
            "the store was changed outside tempeh; refusing to act on it"
        )
    if run.source:  # its steps run in the file's directory, wherever `resume` was started
        workflow._source_map = SourceMap(run.source)
    return workflow


def plan_resume(run: RunRecord, workflow: Workflow) -> ResumePlan:
    """Per unit: reuse, re-run, in doubt, or decide again, and why."""
    stored = {s.name: s for s in run.steps}
    decisions = []
    graph = build_graph(workflow)
    for unit in graph:
        record = stored.get(unit.name)
        step = unit.step
        if unit.name in run.not_selected:  # toggled off before the run: never runs
            decisions.append(UnitDecision(unit.name, "not selected", run.not_selected[unit.name]))
        elif record is None:
            decisions.append(UnitDecision(unit.name, "re-run", "not started yet", record))
        elif (skip := _skipped_by_operator(record, run.decisions)) is not None:
            why = f"skipped by the operator ({skip.answered_by}, {_when(skip.answered_at)})"
            decisions.append(UnitDecision(unit.name, "reuse", why, record, skipped_by=skip))
        elif (stop := _stopped_by_operator(record, run)) is not None:
            was = "waited for approval" if stop.kind == QuestionKind.APPROVAL else "failed"
            why = (
                f"{was}; its operator answered {stop.answer} ({stop.answered_by}, "
                f"{_when(stop.answered_at)}) and its engine died before acting on it: "
                f"{_what_follows(stop)}"
            )
            decisions.append(UnitDecision(unit.name, "as decided", why, record, stopped_by=stop))
        elif record.status is StepStatus.PENDING:
            decisions.append(UnitDecision(unit.name, "re-run", "not started yet", record))
        elif record.status is StepStatus.SUCCEEDED:
            why = "succeeded" + (" (cached)" if record.cached else "")
            decisions.append(UnitDecision(unit.name, "reuse", why, record))
        elif record.status is StepStatus.RUNNING and not record.in_doubt:
            last = record.attempt_history[-1]
            why = (
                f"was waiting to retry: attempt {last.attempt} had ended "
                f"({last.error_class or 'failed'}, exit {last.exit_code}) and no process ran"
            )
            decisions.append(UnitDecision(unit.name, "re-run", why, record))
        elif record.in_doubt:  # crashed, or interrupted while it ran (SPEC 1, 4)
            what = (
                "was running when the engine stopped"
                if record.status is StepStatus.RUNNING
                else "was stopped while it ran (interrupted)"
            )
            decisions.append(_in_doubt(record, step, what))
        elif record.status is StepStatus.SKIPPED:
            why = "was skipped by its needs or `when`, which decide again"
            decisions.append(UnitDecision(unit.name, "decide again", why, record))
        else:
            decisions.append(
                UnitDecision(unit.name, "re-run", f"ended {record.status.value}", record)
            )
        decided = decisions[-1]
        used = _tries_carried(record, step) if record is not None else 0
        if used and decided.action in ("re-run", "in doubt"):
            why = f"{decided.why}; {_tries_left(used, step)}"
            decisions[-1] = dataclasses.replace(decided, why=why, tries=used)
    if (stop := _operator_stop(decisions)) is not None:  # the operator's answer stands
        then = _what_follows(stop)
        decisions = [
            dataclasses.replace(d, why=f"{d.why}; but nothing runs: {then} (as decided)")
            if d.action in ("re-run", "in doubt", "decide again")
            else d
            for d in decisions
        ]
    retried = retry_values_by_unit(run.decisions)
    decisions = [
        dataclasses.replace(d, why=f"{d.why}; with the values of its last retry: {values}")
        if d.action != "reuse" and (values := _changes(retried, d.name))
        else d
        for d in decisions
    ]
    return ResumePlan(run, workflow, decisions, graph)


def _in_doubt(record: StepRecord, step: Step, what: str) -> UnitDecision:
    """A unit whose last attempt may or may not have had its effect: its `check` probe
    decides; without one it runs again, if it is idempotent, else only after a yes."""
    if step.check is not None:
        return UnitDecision(
            record.name, "in doubt", f"{what}; its check probe decides", record, probe=True
        )
    if not step.idempotent:
        why = f"{what} and is not idempotent: needs a yes"
        return UnitDecision(record.name, "in doubt", why, record, confirm=True)
    return UnitDecision(record.name, "in doubt", f"{what}; idempotent, so it runs again", record)


_AT_GATE = frozenset({StepStatus.PENDING, StepStatus.WAITING, StepStatus.AWAITING_CONFIRMATION})
"""A unit that has not run: a gate among them may have asked, and been answered (a dead engine
may not have recorded it as `awaiting_confirmation` before it died)."""


def _operator_stop(decisions: list[UnitDecision]) -> DecisionRecord | None:
    return next((d.stopped_by for d in decisions if d.stopped_by), None)


def _what_follows(stop: DecisionRecord) -> str:
    return "the run rolls back" if stop.answer == Decision.ROLLBACK else "the run aborts"


def _changes(retried: dict[str, RetryValues], unit: str) -> str:
    values = retried.get(unit)
    return values.describe() if values else ""


def _skipped_by_operator(
    record: StepRecord, asked: tuple[DecisionRecord, ...]
) -> DecisionRecord | None:
    """The operator's `skip` of this unit's last failure (or of its approval gate), if that
    was the last word on it.

    Stored as skipped, or still failed (still waiting at its gate) when the engine died
    before it acted on the answer (no attempt began after the question was asked)."""
    if record.status in _AT_GATE:
        refused = _last_answer(record, asked, QuestionKind.APPROVAL)
        return refused if refused is not None and refused.answer == Decision.SKIP else None
    last = _last_answer(record, asked)
    if last is None or last.answer != Decision.SKIP:
        return None
    if record.status is StepStatus.SKIPPED:
        return last
    if record.status is StepStatus.FAILED and not _tried_since(record, last):
        return last
    return None


def _stopped_by_operator(record: StepRecord, run: RunRecord) -> DecisionRecord | None:
    """The operator's `rollback` or `abort` of this unit's last failure (or of its approval
    gate), if the engine that asked never acted on it: the run did not end after it (an abort
    it acted on ended the run `failed`, and resuming that run means running the failed units
    again)."""
    if run.status not in (RunStatus.RUNNING, RunStatus.INTERRUPTED, RunStatus.PAUSED):
        return None
    if record.status in _AT_GATE:
        last = _last_answer(record, run.decisions, QuestionKind.APPROVAL)
    elif record.status is StepStatus.FAILED:
        last = _last_answer(record, run.decisions)
    else:
        return None
    if last is None or last.answer not in (Decision.ROLLBACK, Decision.ABORT):
        return None
    return None if _tried_since(record, last) else last


def _last_answer(
    record: StepRecord,
    asked: tuple[DecisionRecord, ...],
    kind: QuestionKind = QuestionKind.FAILURE,
) -> DecisionRecord | None:
    answers = [
        d
        for d in asked
        if d.unit == record.name
        and d.kind == kind
        and d.answer is not None
        and d.answer in FAILURE_CHOICES
    ]
    return max(answers, key=lambda d: d.id, default=None)


def _tried_since(record: StepRecord, answer: DecisionRecord) -> bool:
    return any(a.started_at > answer.asked_at for a in record.attempt_history)


def _when(ts: float | None) -> str:
    return iso_time(ts) if ts is not None else "at an unknown time"


def as_unit_result(
    record: StepRecord,
    skipped_by: DecisionRecord | None = None,
    stopped_by: DecisionRecord | None = None,
) -> UnitResult:
    """A stored unit as a result (a skip by its operator counts as `skipped`; a gate its
    operator refused with `abort` or `rollback` as `failed`)."""
    reason, status = record.reason, record.status
    answer = skipped_by or stopped_by
    by = answer.answered_by if answer is not None else None
    if skipped_by is not None:
        status = StepStatus.SKIPPED
        if record.status in _AT_GATE:
            reason = f"refused by {by} (skip) at its approval gate"
        elif record.status is not StepStatus.SKIPPED:
            reason = f"failed, then skipped by the operator (by {by}): {reason}"
    elif stopped_by is not None and record.status in _AT_GATE:
        status = StepStatus.FAILED
        reason = f"refused by {by} ({stopped_by.answer}) at its approval gate"
    return UnitResult(
        name=record.name,
        status=status,
        attempts=record.attempts,
        exit_code=record.exit_code,
        error_class=record.error_class,
        severity=record.severity,
        outputs={} if skipped_by is not None else dict(record.outputs),
        started_at=record.started_at,
        ended_at=record.ended_at,
        cached=record.cached,
        reason=reason,
    )


_UNFINISHED = frozenset({StepStatus.RUNNING, StepStatus.INTERRUPTED})


async def kill_leftovers(run: RunRecord, grace: float) -> list[int]:
    """Kill what a dead engine of this run left running; returns the process groups killed."""
    return await anyio.to_thread.run_sync(_kill_leftovers, run, grace)


def _kill_leftovers(run: RunRecord, grace: float) -> list[int]:
    """The process groups of the attempts a dead engine never saw end, and the processes of
    its running units and running compensations that left them (`setsid`), known by their
    environment; also those of units an engine stopped (`interrupted`: it stopped their
    groups, not what left them), which would otherwise run beside their next attempt. Never
    what a finished step left on purpose: a service a succeeded step started carries the
    run's id too, and must outlive the engine that started it (until a compensation stops
    it)."""
    import psutil

    running = {s.name for s in run.steps if s.status in _UNFINISHED}
    compensating = {s.name for s in run.steps if s.status is StepStatus.ROLLING_BACK}
    groups: set[int] = set()
    for step in run.steps:
        for attempt in step.attempt_history:
            group = attempt.pgid
            if group is None or attempt.ended_at is not None:
                continue
            if same_process(group, attempt.process_started):
                groups.add(group)
    me = os.getpid()
    for process in psutil.process_iter(["pid"]) if running or compensating else ():
        if process.pid == me:
            continue
        with contextlib.suppress(psutil.Error):
            env = process.environ()
            if env.get("TEMPEH_RUN_ID") != run.id:
                continue
            unit = env.get("TEMPEH_STEP")
            if unit in running or (unit in compensating and "TEMPEH_ROLLBACK_ID" in env):
                groups.add(os.getpgid(process.pid))
    groups.discard(os.getpgid(me))
    terminate_groups(groups, grace)
    return sorted(groups)


def _tries_carried(record: StepRecord, step: Step) -> int:
    """The tries a unit stopped in its retries used (`StepRecord.tries_used`). None for an
    `until` loop: a resume starts it again at its first iteration, and what its attempts
    record cannot tell an earlier iteration's retries from this one's."""
    return 0 if step.until is not None else record.tries_used


def _tries_left(used: int, step: Step) -> str:
    allowed = step.retry.attempts if step.retry is not None else 1
    return f"{used} of its {allowed} tries used, {max(allowed - used, 1)} left"
