"""Rolling a run back (SPEC 5.3, 7): plan it, check it, run its compensations, remember it.

    rollbacks = RollbackManager(store)
    plan = await rollbacks.plan_rollback(run_id)            # or steps=["migrate-db"]
    result = await rollbacks.execute_rollback(plan)

A rollback drives its run: it holds the run's lease, numbers its events after the run's and
publishes them like a run does (the store and the views subscribe). Each unit's compensation
(`rollback.run`, then `rollback.verify`) is rendered like any shell command of the unit, with
its stored outputs. It is checkpointed like a run: a unit already `rolled_back` is never
compensated again, so after a crash `tempeh rollback RUN` continues where it stopped.
"""

from __future__ import annotations

import contextlib
import getpass
import os
import secrets as _random
import socket
import time
from collections import Counter
from collections.abc import AsyncIterator, Callable, Iterable, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import anyio

from tempeh_tui.definition.expressions import ExpressionError
from tempeh_tui.definition.models import Step, Workflow
from tempeh_tui.engine.decisions import WITHDRAWN, retry_values_by_unit
from tempeh_tui.engine.executor import DEFAULT_GRACE, ExecResult, Executor, ShellRequest
from tempeh_tui.engine.outputs import OutputFileError
from tempeh_tui.engine.rendering import RunScope, render_shell
from tempeh_tui.engine.resume import as_unit_result, kill_leftovers, stored_workflow
from tempeh_tui.engine.rollback_plan import (
    PlannedUnit,
    RollbackPlan,
    RollbackRefused,
    build_rollback_plan,
    run_basis,
)
from tempeh_tui.engine.secrets import Masker, collect_secrets
from tempeh_tui.engine.unit_runner import outputs_left
from tempeh_tui.events import (
    EventBus,
    RollbackFinished,
    RollbackPlanned,
    RollbackStepFinished,
    RollbackStepStarted,
    RunStatus,
    StepFinished,
    StepOutput,
    StepStatus,
)
from tempeh_tui.events.bus import Subscriber
from tempeh_tui.graph.build import Unit, build_graph
from tempeh_tui.store.base import RollbackRecord, RunRecord, Store

__all__ = [
    "PlannedUnit",
    "RollbackManager",
    "RollbackPlan",
    "RollbackRefused",
    "RollbackResult",
    "RollbackStale",
]


class RollbackStale(RollbackRefused):
    """The run changed since the plan was made: make a new plan."""

    def __init__(self, run_id: str, what: str) -> None:
        self.run_id = run_id
        super().__init__(
            f"run {run_id} changed since the rollback plan was made ({what}); plan again"
        )


@dataclass(frozen=True)
class RollbackResult:
    """How a rollback ended: per planned unit, and for the run."""

    run_id: str
    rollback_id: str
    status: RunStatus
    """`rolled_back`, `rollback_failed`, or `interrupted` (continue with another rollback)."""
    units: dict[str, StepStatus] = field(default_factory=dict)
    """Each planned unit's state at the end (`succeeded`: left alone, see `message`)."""
    message: str | None = None
    started_at: float | None = None
    ended_at: float | None = None

    @property
    def exit_code(self) -> int:
        """SPEC 6 for `tempeh rollback`: 0 completed, 4 a compensation failed, 130 stopped."""
        return {RunStatus.ROLLED_BACK: 0, RunStatus.INTERRUPTED: 130}.get(self.status, 4)

    @property
    def completed(self) -> bool:
        return self.status is RunStatus.ROLLED_BACK


class RollbackManager:
    """Plans and runs rollbacks of stored runs. `executor=None`: local processes."""

    def __init__(
        self,
        store: Store,
        executor: Executor | None = None,
        *,
        environ: Mapping[str, str] | None = None,
        grace: float = DEFAULT_GRACE,
    ) -> None:
        self._store = store
        self._executor = executor
        self._environ = environ
        self._grace = grace
        self._subscribers: list[Subscriber] = []

    def subscribe(self, subscriber: Subscriber) -> Callable[[], None]:
        """Receive every event of the rollbacks this manager runs; returns the unsubscriber."""
        self._subscribers.append(subscriber)
        return lambda: self._subscribers.remove(subscriber)

    async def plan_rollback(self, run_id: str, steps: Iterable[str] | None = None) -> RollbackPlan:
        """The plan for the whole run (`steps` None) or for `steps` and what depends on them."""
        record = await self._store.get_run(run_id)
        return build_rollback_plan(record, stored_workflow(record), steps)

    async def validate(self, plan: RollbackPlan) -> None:
        """Refuse a plan whose run changed since it was made (RollbackStale). Units that a
        rollback undid since are fine: they are skipped, never compensated twice."""
        record = await self._store.get_run(plan.run_id)
        self._check(plan, record)

    async def history(self, run_id: str) -> list[RollbackRecord]:
        """The run's rollbacks, oldest first, each with its plan and actions."""
        return list((await self._store.get_run(run_id)).rollbacks)

    async def execute_rollback(
        self,
        plan: RollbackPlan,
        *,
        max_concurrency: int | None = None,
        bus: EventBus | None = None,
        process_groups: set[int] | None = None,
    ) -> RollbackResult:
        """Run the plan's compensations under the run's lease; independent ones in parallel,
        at most `max_concurrency` (default: the run's) at once. Cancelled, it terminates the
        running compensations and ends `interrupted` (another rollback continues it).

        `bus`: publish on the run's own bus (an engine rolling back the run it drives, whose
        store and views subscribe to it already); by default a new one numbers on after the
        stored events, with this manager's subscribers and the store. `process_groups`: kept
        up to date with the running compensations' process groups (to kill them at once).
        """
        store = self._store
        async with store.lease(plan.run_id):
            await store.flush()
            record = await store.get_run(plan.run_id)
            workflow = self._check(plan, record)
            await kill_leftovers(record, self._grace)  # of a dead engine, or a dead rollback
            if bus is None:
                first_seq = await store.last_seq(record.id)
                bus = EventBus(record.id, first_seq, [store.record, *self._subscribers])
            rollback = _Rollback(
                plan=plan,
                record=record,
                workflow=workflow,
                bus=bus,
                store=store,
                executor=self._executor or _local_executor(),
                environ=dict(os.environ if self._environ is None else self._environ),
                grace=self._grace,
                limit=max_concurrency or plan.max_concurrency,
                process_groups=process_groups if process_groups is not None else set(),
            )
            return await rollback.run()

    def _check(self, plan: RollbackPlan, record: RunRecord) -> Workflow:
        workflow = stored_workflow(record)
        if record.id != plan.run_id:
            raise RollbackStale(plan.run_id, f"it is run {record.id} now")
        if run_basis(record) != plan.basis:
            raise RollbackStale(record.id, "its steps' states or its definition differ")
        return workflow


class _Rollback:
    """One execution of a plan."""

    def __init__(
        self,
        *,
        plan: RollbackPlan,
        record: RunRecord,
        workflow: Workflow,
        bus: EventBus,
        store: Store,
        executor: Executor,
        environ: dict[str, str],
        grace: float,
        limit: int,
        process_groups: set[int],
    ) -> None:
        self.plan = plan
        self.process_groups = process_groups
        self._started: dict[str, float] = {}  # when each compensation began (monotonic)
        self.record = record
        self.bus = bus
        self.store = store
        self.executor = executor
        self.grace = grace
        self.limit = limit
        self.rollback_id = _new_rollback_id()
        self.outcome: dict[str, StepStatus] = {}
        self.workflow = workflow
        self.graph = build_graph(workflow)
        names = [*workflow.secrets, *(n for s in workflow.steps for n in s.secrets)]
        secret_values = collect_secrets(names, environ)
        self.masker = Masker(secret_values.values())
        self.stored = {s.name: s for s in record.steps}
        results = {s.name: as_unit_result(s) for s in record.steps}
        for step in record.steps:  # in doubt: what it wrote before its engine stopped counts
            if step.in_doubt and not step.outputs:
                # unreadable (cut short): its compensation says which output is missing
                with contextlib.suppress(OutputFileError):
                    left = outputs_left(record.id, step.name, step.attempts)
                    results[step.name].outputs.update(left)
        self.scope = RunScope(
            workflow, self.graph, record.id, record.params, results, environ, secret_values
        )
        # a unit an operator retried with changed values is undone with the values it ran with
        self.scope.retried.update(retry_values_by_unit(record.decisions))

    async def run(self) -> RollbackResult:
        started = time.time()
        await self._end_what_its_engine_left()
        self.bus.emit(
            RollbackPlanned,
            rollback_id=self.rollback_id,
            plan=self.plan.to_json(),
            requested_by=_who(),
        )
        await self.store.flush()
        status = RunStatus.INTERRUPTED
        try:
            async with self.store.autoflush():
                await self._compensate_all()
            status = (
                RunStatus.ROLLED_BACK
                if all(s is StepStatus.ROLLED_BACK for s in self.outcome.values())
                else RunStatus.ROLLBACK_FAILED
            )
        finally:
            with anyio.CancelScope(shield=True):
                message = self._message(status)
                counts: dict[str, int] = {}
                for state in self.outcome.values():
                    counts[state.value] = counts.get(state.value, 0) + 1
                self.bus.emit(
                    RollbackFinished,
                    rollback_id=self.rollback_id,
                    status=status,
                    message=message,
                    counts=counts,
                )
                await self.store.flush()
        return RollbackResult(
            self.record.id,
            self.rollback_id,
            status,
            dict(self.outcome),
            message,
            started,
            time.time(),
        )

    async def _end_what_its_engine_left(self) -> None:
        """We hold the lease: whatever process drove the run (or an earlier rollback) is gone.
        That rollback ends `interrupted`; its questions are withdrawn; its running units end
        `interrupted` (their processes were stopped); those that never started end
        `cancelled` (a rolled-back run is never resumed)."""
        for earlier in self.record.rollbacks:
            if earlier.status is RunStatus.RUNNING:
                self.bus.emit(
                    RollbackFinished,
                    rollback_id=earlier.id,
                    status=RunStatus.INTERRUPTED,
                    message="its process stopped before it ended; continued by " + self.rollback_id,
                )
        for question in self.record.waiting_for:  # its asker is gone: nothing will act on it
            await self.store.answer_decision(
                question.run_id,
                question.unit,
                question.kind,
                WITHDRAWN,
                f"rollback {self.rollback_id}",
            )
        for step in self.record.steps:
            if step.status is StepStatus.RUNNING:
                self.bus.emit(
                    StepFinished,
                    step=step.name,
                    status=StepStatus.INTERRUPTED,
                    attempts=step.attempts,
                    reason="it was running when its engine stopped; its processes were "
                    f"stopped before rollback {self.rollback_id}",
                    ended_at=time.time(),
                )
            elif step.status in _NOT_STARTED:  # a rolled-back run is never resumed
                what = (
                    "while it waited for approval"
                    if step.status is StepStatus.AWAITING_CONFIRMATION
                    else "before it ran"
                )
                self.bus.emit(
                    StepFinished,
                    step=step.name,
                    status=StepStatus.CANCELLED,
                    attempts=step.attempts,
                    reason=f"its run was rolled back (rollback {self.rollback_id}) {what}",
                    ended_at=time.time(),
                )

    def _message(self, status: RunStatus) -> str:
        failed = [n for n, s in self.outcome.items() if s is StepStatus.ROLLBACK_FAILED]
        left = [n for n, s in self.outcome.items() if s is StepStatus.SUCCEEDED]
        if status is RunStatus.INTERRUPTED:
            return "rollback interrupted; `tempeh rollback` continues it"
        if not failed and not left:
            done = sum(1 for s in self.outcome.values() if s is StepStatus.ROLLED_BACK)
            text = f"rolled back {done} unit(s)" if done else "nothing to roll back"
            if self.plan.requested is not None and (kept := self._still_in_place()):
                text += f"; a partial rollback: still in place: {', '.join(kept)}"
            return text
        parts = []
        if failed:
            parts.append(f"rollback failed: {', '.join(failed)}")
        if left:
            parts.append(
                f"not rolled back (what needed them failed to roll back): {', '.join(left)}"
            )
        return "; ".join(parts)

    def _still_in_place(self) -> list[str]:
        """The run's succeeded units this (partial) rollback left alone."""
        return [
            s.name
            for s in self.record.steps
            if s.status is StepStatus.SUCCEEDED and s.name not in self.outcome
        ]

    async def _compensate_all(self) -> None:
        done = {u.name: anyio.Event() for u in self.plan.units}
        limits = _Limits(max(1, self.limit), self.workflow.resources)
        async with anyio.create_task_group() as tg:
            for planned in self.plan.units:  # started in plan order
                tg.start_soon(self._one, planned, done, limits)

    async def _one(
        self,
        planned: PlannedUnit,
        done: dict[str, anyio.Event],
        limits: _Limits,
    ) -> None:
        try:
            for first in planned.after:
                await done[first].wait()
            blocked = [a for a in planned.after if self.outcome[a] is not StepStatus.ROLLED_BACK]
            if blocked:
                self.outcome[planned.name] = StepStatus.SUCCEEDED
                self._note(
                    planned.name,
                    f"not rolled back: the rollback of {', '.join(blocked)}, which needed it, "
                    "did not complete",
                )
                return
            async with limits.taken(self.graph.units[planned.name].step):
                self.outcome[planned.name] = await self._compensate(planned)
                await self.store.flush()  # undone, durably, before anything else acts
        finally:
            done[planned.name].set()

    async def _compensate(self, planned: PlannedUnit) -> StepStatus:
        self._started[planned.name] = time.monotonic()
        record = self.stored[planned.name]
        if record.status is StepStatus.ROLLED_BACK:  # undone since the plan was made
            return StepStatus.ROLLED_BACK
        unit = self.graph.units[planned.name]
        spec = unit.step.rollback
        assert spec is not None
        if planned.in_doubt and spec.verify is not None:
            self._note(unit.name, "in doubt after a stop: asking rollback.verify")
            check = await self._shell(unit, spec.verify, None)
            if check.ok:
                self._finish(unit, StepStatus.ROLLED_BACK, 0, "rollback.verify says it is undone")
                return StepStatus.ROLLED_BACK
            self._note(unit.name, f"rollback.verify says no ({check.describe()}); rolling back")
        try:
            command, _ = render_shell(spec.run, self._scope(unit))
        except ExpressionError as exc:
            command = spec.run
            self.bus.emit(
                RollbackStepStarted, step=unit.name, rollback_id=self.rollback_id, command=command
            )
            return self._finish(unit, StepStatus.ROLLBACK_FAILED, None, self.masker.mask(str(exc)))
        self.bus.emit(
            RollbackStepStarted,
            step=unit.name,
            rollback_id=self.rollback_id,
            command=self.masker.mask(command),
        )
        result = await self._shell(unit, spec.run, spec.timeout)
        if not result.ok:
            return self._finish(
                unit, StepStatus.ROLLBACK_FAILED, result.exit_code, f"rollback {result.describe()}"
            )
        if spec.verify is not None:
            self._note(unit.name, "verifying the rollback")
            check = await self._shell(unit, spec.verify, spec.timeout)
            if not check.ok:
                return self._finish(
                    unit,
                    StepStatus.ROLLBACK_FAILED,
                    check.exit_code,
                    f"rollback.verify failed: {check.describe()}",
                )
        return self._finish(unit, StepStatus.ROLLED_BACK, result.exit_code, None)

    def _finish(
        self, unit: Unit, status: StepStatus, exit_code: int | None, reason: str | None
    ) -> StepStatus:
        self.bus.emit(
            RollbackStepFinished,
            step=unit.name,
            rollback_id=self.rollback_id,
            status=status,
            exit_code=exit_code,
            reason=reason,
            duration=time.monotonic() - self._started.pop(unit.name, time.monotonic()),
        )
        return status

    def _scope(self, unit: Unit) -> dict[str, Any]:
        return self.scope.expression_scope(unit, outputs=self.scope.results[unit.name].outputs)

    async def _shell(self, unit: Unit, command: str, limit: float | None) -> ExecResult:
        """Run `command` as `unit`'s (its outputs, item, params, env), its output logged."""
        scope = self._scope(unit)
        try:
            rendered, values = render_shell(command, scope)
        except ExpressionError as exc:
            return ExecResult(exit_code=None, error=self.masker.mask(str(exc)))
        attempt = max(self.stored[unit.name].attempts, 1)
        env = self.scope.process_env(unit, scope, attempt=attempt, iteration=1, output_file=None)
        env.update(values)
        env["TEMPEH_ROLLBACK_ID"] = self.rollback_id
        request = ShellRequest(
            rendered,
            env,
            _workdir(self.record),
            timeout=limit,
            grace=self.grace,
            pace=self.store.wait_for_room,
        )
        observer = _Observer(self.bus, unit.name, attempt, self.masker, self.process_groups)
        await self.store.hold_lease(self.record.id)  # still this process's run to act on
        await self.store.flush()  # durable before the compensation acts
        try:
            return await self.executor.run_shell(request, observer)
        finally:
            observer.done()

    def _note(self, unit: str, text: str) -> None:
        attempt = max(self.stored[unit].attempts, 1)
        self.bus.emit(StepOutput, step=unit, stream="tempeh", line=text, attempt=attempt)


class _Observer:
    """A compensation's output goes to its unit's log, like the step's own (secrets masked)."""

    def __init__(
        self, bus: EventBus, unit: str, attempt: int, masker: Masker, groups: set[int]
    ) -> None:
        self._bus = bus
        self._unit = unit
        self._attempt = attempt
        self._masker = masker
        self._groups = groups
        self._pid: int | None = None

    def output(self, stream: str, line: str) -> None:
        line = self._masker.mask(line)
        self._bus.emit(StepOutput, step=self._unit, stream=stream, line=line, attempt=self._attempt)

    def spawned(self, pid: int, started: float | None = None) -> None:
        # (a leftover of a dead process is found by its TEMPEH_RUN_ID: see `kill_leftovers`)
        self._pid = pid
        self._groups.add(pid)  # for killing at once on a second SIGINT

    def done(self) -> None:
        if self._pid is not None:
            self._groups.discard(self._pid)


_NOT_STARTED = frozenset({StepStatus.PENDING, StepStatus.WAITING, StepStatus.AWAITING_CONFIRMATION})


class _Limits:
    """Compensations run under the run's limits (SPEC 5.3): at most `limit` at once, their
    steps' `resources` claims within the pools, an `exclusive` step's compensation alone."""

    def __init__(self, limit: int, capacity: Mapping[str, int]) -> None:
        self._limit = limit
        self._capacity = capacity
        self._changed = anyio.Condition()
        self._running = 0
        self._exclusive = False
        self._pools: Counter[str] = Counter()

    @asynccontextmanager
    async def taken(self, step: Step) -> AsyncIterator[None]:
        async with self._changed:
            while not self._fits(step):
                await self._changed.wait()
            self._running += 1
            self._exclusive = step.exclusive
            self._pools.update(step.resources)
        try:
            yield
        finally:
            with anyio.CancelScope(shield=True):
                async with self._changed:
                    self._running -= 1
                    self._exclusive = False
                    self._pools.subtract(step.resources)
                    self._changed.notify_all()

    def _fits(self, step: Step) -> bool:
        if self._exclusive or self._running >= self._limit:
            return False
        if step.exclusive and self._running:
            return False
        return all(
            self._pools[pool] + amount <= self._capacity.get(pool, amount)
            for pool, amount in step.resources.items()
        )


def _workdir(record: RunRecord) -> str:
    """Compensations run where the run's steps ran: the workflow file's directory."""
    if record.source and not record.source.startswith("<"):
        return str(Path(record.source).resolve().parent)
    return os.getcwd()


def _who() -> str:
    try:
        user = getpass.getuser()
    except (KeyError, OSError):
        user = str(os.getuid())
    return f"{user}@{socket.gethostname()} (pid {os.getpid()})"


def _new_rollback_id() -> str:
    return "rb-" + time.strftime("%Y%m%d-%H%M%S", time.gmtime()) + "-" + _random.token_hex(2)


def _local_executor() -> Executor:
    from tempeh_tui.engine.local_executor import LocalExecutor

    return LocalExecutor()
