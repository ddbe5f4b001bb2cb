"""The scheduler: starts each unit the moment it may run (SPEC 3).

A unit may start when everything it needs has finished, a concurrency slot is free, its
resource claims fit, the `exclusive` rule allows, its fan-out has room under `max_parallel`, and
host load is under `resource_limits`. Ready units wait in a heap ordered critical path first.
All of this runs on the event loop's thread: no locks, only callbacks and one task per unit
(asyncio's: the engine runs on asyncio, as its store does).
"""

from __future__ import annotations

import asyncio
import heapq
import time
from collections import Counter
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass

import anyio
from anyio.abc import TaskGroup

from tempeh_tui.definition.expressions import ExpressionError, evaluate
from tempeh_tui.definition.models import ErrorClass, OnFailure, ResourceLimits, Severity
from tempeh_tui.engine.decisions import (
    FAILURE_CHOICES,
    Decision,
    DecisionTimedOut,
    QuestionKind,
    RetryValues,
)
from tempeh_tui.engine.host_load import HostLoad
from tempeh_tui.engine.results import UnitResult
from tempeh_tui.engine.unit_runner import RunServices, UnitRunner
from tempeh_tui.events import (
    ConcurrencyChanged,
    DecisionAnswered,
    DecisionRequested,
    StepFinished,
    StepStatus,
    StepStatusChanged,
)
from tempeh_tui.graph.analysis import priorities
from tempeh_tui.graph.build import Unit, WorkflowGraph
from tempeh_tui.store.base import DecisionRecord

__all__ = ["NEEDS", "Scheduler", "StopReason"]

LOAD_SAMPLE_INTERVAL = 0.5
SLOT = "a concurrency slot"
NEEDS = "its needs"
"""How a `waiting` reason starts when the unit waits for what it needs (`waiting for its
needs: a, b`): views that show every step anyway may leave those out."""
HOST_LOAD = "host load"


@dataclass(frozen=True)
class StopReason:
    """Why the scheduler stopped starting units."""

    status: StepStatus  # what units that never ran become: cancelled or interrupted
    message: str


class Scheduler:
    """Drives one run's units to their ends; `run()` returns every unit's result."""

    def __init__(
        self,
        services: RunServices,
        graph: WorkflowGraph,
        *,
        max_concurrency: int,
        on_failure: OnFailure,
        resource_limits: ResourceLimits | None = None,
        host_load: HostLoad | None = None,
        on_message: Callable[[str], None] | None = None,
        rollback_grace: float = 30.0,
    ) -> None:
        self.s = services
        self.graph = graph
        self.limit = max(1, max_concurrency)
        self.on_failure = on_failure
        self.resource_limits = resource_limits or ResourceLimits()
        self.host_load = host_load
        self.on_message = on_message or (lambda _: None)
        self.rollback_grace = rollback_grace
        self.results: dict[str, UnitResult] = {}
        self.stopped: StopReason | None = None
        self._rank = priorities(graph)
        self._order = graph.order
        self._remaining = {name: len(graph.needs(name)) for name in graph.units}
        self._ready: list[tuple[float, int, str]] = []
        self._running: dict[str, anyio.CancelScope] = {}
        self._pools: Counter[str] = Counter()
        self._per_step: Counter[str] = Counter()
        self._exclusive_running = False
        self._waiting_reason: dict[str, str] = {}
        self._overloaded: str | None = None
        self._finished = anyio.Event()
        self._tg: TaskGroup | None = None
        self._tasks: set[asyncio.Task[None]] = set()  # the running units' tasks
        self._crash: BaseException | None = None
        self._asking: dict[str, anyio.CancelScope] = {}  # units waiting for their operator
        self._gating: dict[str, anyio.CancelScope] = {}  # gates waiting for approval (no slot)
        self._gated: dict[str, UnitRunner] = {}  # approved gates, ready for a slot
        self._settled: set[str] = set()  # failures an operator's decision has dealt with
        self._attempts_made: dict[str, int] = {}  # a retried unit numbers its attempts on
        self.passing: dict[str, UnitResult] = {}
        """Units toggled off before the run (plan, pick, apply) and how they end: each ends so
        when its needs have (it keeps its place in the order: what needs it still waits for
        what it needs), without running."""
        self.rollback_requested = False
        """An operator decided `rollback`: the engine rolls back once the units are done."""
        self.timed_out: str | None = None
        """Why the run stopped: nobody decided in time (the run ends `paused`, exit 5)."""

    # --- public controls -----------------------------------------------------------------

    async def run(self, reused: Mapping[str, UnitResult] | None = None) -> dict[str, UnitResult]:
        """Drive every unit to its end; `reused` units (a resume) count as ended already."""
        try:
            async with anyio.create_task_group() as tg:
                self._tg = tg
                if self._watches_load():
                    self._sample_load()  # before anything starts
                    tg.start_soon(self._watch_load)
                ready = [n for n, count in self._remaining.items() if count == 0]
                for name, result in (reused or {}).items():
                    ready.extend(self._record(name, result))
                self._ready_all([n for n in dict.fromkeys(ready) if n not in self.results])
                for name, count in self._remaining.items():  # SPEC 2: `waiting` for its needs
                    if count and name not in self.results:
                        self._wait(
                            name,
                            _listed(n for n in self.graph.needs(name) if n not in self.results),
                        )
                self._dispatch()
                if len(self.results) == len(self.graph.units):
                    self._finished.set()
                await self._finished.wait()
                tg.cancel_scope.cancel()
        finally:
            await self._end_units()
        if self._crash is not None:
            raise self._crash
        return self.results

    def unfinished(self) -> list[str]:
        """The units started and never ended (after `run` raised: cancelled from outside)."""
        return [name for name in [*self._running, *self._gating] if name not in self.results]

    def set_max_concurrency(self, limit: int) -> None:
        self.limit = max(1, limit)
        self.s.bus.emit(ConcurrencyChanged, max_concurrency=self.limit)
        self._dispatch()

    def stop(self, reason: StopReason, *, grace: float | None = None) -> None:
        """Start nothing more; cancel running units (their process groups are killed), at
        once or, with `grace`, only those still running after that many seconds."""
        if self.stopped is None or (
            reason.status is StepStatus.INTERRUPTED
            and self.stopped.status is not StepStatus.INTERRUPTED
        ):
            # (an interrupt outranks a stop under way: the rollback or abort that was waiting
            # for running steps does not happen; the run ends interrupted, resumable)
            self.stopped = reason
            self.on_message(reason.message)
        for scope in [*self._asking.values(), *self._gating.values()]:
            scope.cancel()  # nobody waits for an answer any more
        if grace is None:
            for scope in self._running.values():
                scope.cancel()
        elif self._tg is not None and self._running:
            self._tg.start_soon(self._cancel_after, grace)
        while self._ready:
            _, _, name = heapq.heappop(self._ready)
            self._complete(name, self._never_ran(name))

    async def _cancel_after(self, grace: float) -> None:
        await anyio.sleep(grace)
        for scope in self._running.values():
            scope.cancel()

    # --- readiness -----------------------------------------------------------------------

    def _ready_all(self, names: list[str]) -> None:
        """Make units whose needs are all finished ready, or finish them at once (skips)."""
        stack = list(reversed(names))
        while stack:
            name = stack.pop()
            immediate = self._judge(name)
            if immediate is None and self._gate_first(name):
                self._start_gate(self.graph.units[name])
                continue
            if immediate is None:
                heapq.heappush(self._ready, (-self._rank[name], self._order[name], name))
                continue
            if self._should_ask(immediate):
                self._ask_later(immediate)
                continue
            stack.extend(reversed(self._record(name, immediate)))

    def _judge(self, name: str) -> UnitResult | None:
        """A result if the unit will not run (blocked, stopped, `when` false), else None.
        A unit whose need failed is `skipped` (SPEC 3), and so are its dependents, also when
        the failure stopped the run."""
        if self.stopped is not None and not any(
            self._blocked_by(self.results[need]) for need in self.graph.needs(name)
        ):
            return self._never_ran(name)
        unit = self.graph.units[name]
        for need in self.graph.needs(name):
            result = self.results[need]
            if not result.counts_as_done:
                why = (
                    "was skipped"
                    if result.status is StepStatus.SKIPPED
                    else (f"ended {result.status.value}")
                )
                return UnitResult(
                    name, StepStatus.SKIPPED, reason=f"needs '{need}', which {why}", blocked=True
                )
        passing = self.passing.get(name)
        if passing is not None:
            return passing
        if unit.step.when is None:
            return None
        try:
            scope = self.s.scope.expression_scope(unit)
            go = evaluate(unit.step.when, scope)
        except ExpressionError as exc:
            return UnitResult(
                name,
                StepStatus.FAILED,
                error_class=ErrorClass.PERMANENT.value,
                severity=Severity.HIGH.value,
                reason=f"when: {exc}",
                tolerated=unit.step.continue_on_error,
            )
        if go:
            return None
        return UnitResult(name, StepStatus.SKIPPED, reason=f"when is false: {unit.step.when}")

    @staticmethod
    def _blocked_by(need: UnitResult) -> bool:
        """Whether a need keeps its dependents from running whatever else happens: it failed
        (for good), or was itself skipped for what it needed."""
        if need.status is StepStatus.FAILED:
            return not need.tolerated
        return need.status is StepStatus.SKIPPED and need.blocked

    def _never_ran(self, name: str) -> UnitResult:
        assert self.stopped is not None
        return UnitResult(name, self.stopped.status, reason=self.stopped.message)

    # --- starting ------------------------------------------------------------------------

    def _dispatch(self) -> None:
        if self._tg is None:
            return
        held: list[tuple[float, int, str]] = []
        # What a unit waits for in a pool is kept for it: units behind it in the order may
        # take only what is free beyond its claim, or a claim of 2 would wait behind any
        # number of claims of 1 (each unit freed going to the next of them).
        kept: dict[str, tuple[int, str]] = {}  # pool -> (units kept, for whom first)
        while self._ready:
            entry = heapq.heappop(self._ready)
            name = entry[2]
            unit = self.graph.units[name]
            why = self._why_not(unit, kept)
            if why is None:
                self._start(unit)
                continue
            held.append(entry)
            if why == SLOT:
                break  # a full house holds everyone: no event, the unit is simply next
            self._wait(name, why)
            if why.startswith("resource '"):  # (not when something else holds it back)
                for pool in self._short(unit):
                    amount, first = kept.get(pool, (0, name))
                    kept[pool] = (amount + unit.step.resources[pool], first)
            if why == HOST_LOAD or unit.step.exclusive:  # nothing behind it may pass
                behind = why if why == HOST_LOAD else f"'{name}' to run alone first (exclusive)"
                for _, _, other in self._ready:
                    self._wait(other, behind)
                break
        for entry in held:
            heapq.heappush(self._ready, entry)

    def _short(self, unit: Unit) -> list[str]:
        """The pools that have too little left for `unit`'s claims now."""
        capacity = self.s.scope.workflow.resources
        return [
            pool
            for pool, amount in unit.step.resources.items()
            if self._pools[pool] + amount > capacity[pool]
        ]

    def _why_not(self, unit: Unit, kept: Mapping[str, tuple[int, str]]) -> str | None:
        if self._exclusive_running:
            return "an exclusive step to finish"
        if unit.step.exclusive and self._running:
            return "running steps to finish (it is exclusive)"
        if len(self._running) >= self.limit:
            return SLOT
        if self._overloaded is not None:
            return HOST_LOAD
        limit = unit.step.max_parallel
        if limit is not None and self._per_step[unit.step.name] >= limit:
            return f"max_parallel {limit} of '{unit.step.name}'"
        capacity = self.s.scope.workflow.resources
        for pool, amount in unit.step.resources.items():
            if self._pools[pool] + amount > capacity[pool]:
                return f"resource '{pool}' ({self._pools[pool]}/{capacity[pool]} in use)"
            held, first = kept.get(pool, (0, ""))
            if held and self._pools[pool] + held + amount > capacity[pool]:
                return f"resource '{pool}' (kept for '{first}', which comes first)"
        return None

    def _wait(self, name: str, why: str) -> None:
        if self._waiting_reason.get(name) == why:
            return
        self._waiting_reason[name] = why
        reason = self._overloaded if why == HOST_LOAD else f"waiting for {why}"
        self.s.bus.emit(StepStatusChanged, step=name, status=StepStatus.WAITING, reason=reason)

    def _start(self, unit: Unit) -> None:
        assert self._tg is not None
        self._waiting_reason.pop(unit.name, None)
        scope = anyio.CancelScope()
        self._running[unit.name] = scope
        self._per_step[unit.step.name] += 1
        self._pools.update(unit.step.resources)
        self._exclusive_running = self._exclusive_running or unit.step.exclusive
        # A plain asyncio task, not the task group's (~4 µs to start, not ~34): `_end_units`
        # and `_unit_done` do for these what the group would, cancelling and reporting.
        task = asyncio.get_running_loop().create_task(self._run_unit(unit, scope), name=unit.name)
        self._tasks.add(task)
        task.add_done_callback(self._unit_done)

    def _unit_done(self, task: asyncio.Task[None]) -> None:
        self._tasks.discard(task)
        if task.cancelled() or (error := task.exception()) is None:
            return
        if self._crash is None:  # a bug of ours: the run stops and the error is raised
            self._crash = error
        if self._tg is not None:
            self._tg.cancel_scope.cancel()

    async def _end_units(self) -> None:
        """The run was cancelled from outside (or a unit crashed): the units still running
        are cancelled as the task group would (their processes killed, nothing recorded for
        them) before `run` raises."""
        if not self._tasks:
            return
        for task in self._tasks:
            task.cancel()
        with anyio.CancelScope(shield=True):
            await asyncio.wait(set(self._tasks))

    def _gate_first(self, name: str) -> bool:
        """An approval gate waits for its answer before it takes a slot or its resources
        (SPEC 3: it does not run meanwhile), so the run's other steps go on."""
        return self.graph.units[name].step.confirm is not None and name not in self._gated

    def _start_gate(self, unit: Unit) -> None:
        scope = anyio.CancelScope()
        self._gating[unit.name] = scope
        task = asyncio.get_running_loop().create_task(self._gate(unit, scope), name=unit.name)
        self._tasks.add(task)
        task.add_done_callback(self._unit_done)

    async def _gate(self, unit: Unit, scope: anyio.CancelScope) -> None:
        runner = self._runner(unit)
        ended: UnitResult | None = None
        with scope:
            ended = await runner.gate()
        del self._gating[unit.name]
        if ended is not None:
            self._ended(unit, ended)
        elif scope.cancelled_caught or self.stopped is not None:
            # stopped while it waited for its answer (or before it could wait: an approval
            # given in advance awaits nothing, and a stop's cancel never reached it)
            self._ended(unit, self._cancelled(runner, unit))
        else:
            self._gated[unit.name] = runner
            heapq.heappush(self._ready, (-self._rank[unit.name], self._order[unit.name], unit.name))
        self._dispatch()
        if unit.name in self._gated:  # approved, and no slot yet: no longer awaiting anyone
            self._wait(unit.name, "a free concurrency slot (approved)")

    def _runner(self, unit: Unit) -> UnitRunner:
        runner = self._gated.pop(unit.name, None) or UnitRunner(self.s, unit)
        runner.attempts = max(runner.attempts, self._attempts_made.get(unit.name, 0))
        return runner

    def _cancelled(self, runner: UnitRunner, unit: Unit) -> UnitResult:
        reason = self.stopped or StopReason(StepStatus.CANCELLED, "cancelled")
        return UnitResult(
            unit.name,
            reason.status,
            attempts=runner.attempts,
            started_at=runner.started_at,
            ended_at=time.time(),
            error_class=ErrorClass.CANCELLED.value,
            reason=reason.message,
        )

    async def _run_unit(self, unit: Unit, scope: anyio.CancelScope) -> None:
        runner = self._runner(unit)
        result: UnitResult | None = None
        with scope:
            result = await runner.run()
        if result is None:  # cancelled by stop()
            result = self._cancelled(runner, unit)
        del self._running[unit.name]
        self._per_step[unit.step.name] -= 1
        self._pools.subtract(unit.step.resources)
        if unit.step.exclusive:
            self._exclusive_running = False
        self._ended(unit, result)
        self._dispatch()

    def _ended(self, unit: Unit, result: UnitResult) -> None:
        if result.refused is not None:  # its gate was answered `abort` or `rollback`
            answer, by = result.refused
            self.decided_before(unit.name, Decision(answer), by, "was refused")
            self._complete(unit.name, result)
        elif result.awaited_decision_in_vain:
            self._time_out(result)
        elif self._should_ask(result):
            self._ask_later(result)
        else:
            self._complete(unit.name, result)

    # --- finishing -----------------------------------------------------------------------

    def _complete(self, name: str, result: UnitResult) -> None:
        self._ready_all(self._record(name, result))

    def _record(self, name: str, result: UnitResult) -> list[str]:
        """Publish a unit's end (at its `ended_at`: a unit a resume reuses ended earlier);
        return the dependents that became ready."""
        self.results[name] = result
        self.s.bus.emit(
            StepFinished,
            step=name,
            status=result.status,
            attempts=result.attempts,
            exit_code=result.exit_code,
            error_class=result.error_class,
            severity=result.severity,
            outputs=result.outputs,
            duration=result.duration,
            cached=result.cached,
            cache_key=result.cache_key,
            reason=result.reason,
            ended_at=result.ended_at if result.ended_at is not None else time.time(),
        )
        if result.status is StepStatus.FAILED and not result.tolerated:
            self._failed_for_good(name)
        if len(self.results) == len(self.graph.units):
            self._finished.set()
        ready = []
        for dependent in self.graph.dependents(name):
            self._remaining[dependent] -= 1
            if self._remaining[dependent] == 0 and dependent not in self.results:
                ready.append(dependent)  # (one toggled off before the run has ended already)
        return ready

    def _failed_for_good(self, name: str) -> None:
        policy = self.on_failure
        if policy is OnFailure.CONTINUE or name in self._settled:
            return
        if policy is OnFailure.ROLLBACK:
            message = (
                f"'{name}' failed; rolling back (on_failure: rollback): no new steps start, "
                f"running ones get {self.rollback_grace:g}s to finish"
            )
            self.stop(StopReason(StepStatus.CANCELLED, message), grace=self.rollback_grace)
            return
        if policy is OnFailure.ABORT:
            message = f"'{name}' failed; aborting (on_failure: abort)"
        elif policy is OnFailure.PAUSE:
            message = (
                f"'{name}' failed; on_failure: pause, but nobody can be asked here, so the run "
                "aborts (run with --wait-for-decision to wait for `tempeh decide`)"
            )
        else:
            message = (
                f"'{name}' failed; on_failure: {policy.value} is not available yet, "
                "so the run aborts"
            )
        self.stop(StopReason(StepStatus.CANCELLED, message))

    # --- operator decisions (on_failure: pause) ------------------------------------------

    def _should_ask(self, result: UnitResult) -> bool:
        return (
            self.on_failure is OnFailure.PAUSE
            and self.s.decisions.can_ask
            and self.stopped is None
            and result.status is StepStatus.FAILED
            and not result.tolerated
        )

    def _ask_later(self, result: UnitResult) -> None:
        """The unit stays open (not in `results`) while its operator decides."""
        assert self._tg is not None
        scope = anyio.CancelScope()
        self._asking[result.name] = scope
        self._tg.start_soon(self._ask, result, scope, name=f"decide {result.name}")

    async def _ask(self, result: UnitResult, scope: anyio.CancelScope) -> None:
        name = result.name
        summary = result.reason or f"ended {result.status.value}"
        self.s.waiting.add(name)

        async def announce() -> None:  # once the question is stored: it can be answered
            self.s.bus.emit(
                StepStatusChanged,
                step=name,
                status=StepStatus.FAILED,
                reason=f"{summary}; waiting for a decision: {' | '.join(FAILURE_CHOICES)}",
                attempt=result.attempts,
                exit_code=result.exit_code,
                error_class=result.error_class,
            )
            self.s.bus.emit(
                DecisionRequested,
                step=name,
                kind=QuestionKind.FAILURE.value,
                question=summary,
                choices=FAILURE_CHOICES,
            )
            if self.s.publish is not None:
                await self.s.publish()  # the run is `paused` in the store before anyone looks

        question = DecisionRecord(
            run_id=self.s.scope.run_id,
            unit=name,
            kind=QuestionKind.FAILURE.value,
            asked_at=time.time(),
            summary=summary,
        )
        answer: str | None = None
        how = "withdrawn"
        by: str | None = None
        changes = RetryValues()
        with scope:
            try:
                got = await self.s.decisions.ask(question, announce)
                answer, by, how, changes = got.value, got.by, got.value, got.changes
            except DecisionTimedOut as exc:
                how = "timed out"
                self.timed_out = str(exc)
        del self._asking[name]
        self.s.waiting.discard(name)
        self.s.bus.emit(
            DecisionAnswered,
            step=name,
            kind=QuestionKind.FAILURE.value,
            answer=how,
            answered_by=by,
            still_waiting=len(self.s.waiting),  # approval gates wait too
            env=self.s.masker.mask_mapping(changes.env),
            params=self.s.masker.mask_mapping(changes.params),
        )
        self._decided(result, answer, by, changes)
        self._dispatch()

    def _decided(
        self,
        result: UnitResult,
        answer: str | None,
        by: str | None,
        changes: RetryValues | None = None,
    ) -> None:
        name = result.name
        if answer is None:  # timed out, or the run stopped meanwhile
            if self.timed_out is not None and self.stopped is None:
                self._time_out(result)
            else:
                self._settled.add(name)
                self._complete(name, result)
            return
        decision = Decision(answer)
        who = f" by {by}" if by else ""
        what = decision.value
        if decision is Decision.RETRY and changes:
            what += f" with {self.s.masker.mask(changes.describe())}"
        self.on_message(f"'{name}': {what} (decided{who})")
        if decision is Decision.RETRY:
            self._attempts_made[name] = result.attempts
            if changes:  # for this unit's next run only
                self.s.scope.retried[name] = changes
            else:
                self.s.scope.retried.pop(name, None)
            self._ready_all([name])  # judged again: its `when` may have failed, not its run
            return
        self._settled.add(name)
        if decision is Decision.SKIP:
            skipped = UnitResult(
                name,
                StepStatus.SKIPPED,
                attempts=result.attempts,
                started_at=result.started_at,
                ended_at=result.ended_at if result.ended_at is not None else time.time(),
                exit_code=result.exit_code,
                error_class=result.error_class,
                reason=f"failed, then skipped by the operator{who}: {result.reason}",
            )
            self._complete(name, skipped)
            return
        self._stop_as_decided(name, decision, who)
        self._complete(name, result)

    def decided_before(
        self, name: str, decision: Decision, by: str | None, what: str = "failed"
    ) -> None:
        """The operator's `abort` or `rollback` of `name`'s failure (or its gate), before the
        unit is recorded: also the one stored that an engine died before acting on (a resume
        acts on it before the run starts)."""
        self._settled.add(name)
        self._stop_as_decided(name, decision, f" by {by}" if by else "", what)

    def _stop_as_decided(
        self, name: str, decision: Decision, who: str, what: str = "failed"
    ) -> None:
        if decision is Decision.ROLLBACK:
            self.rollback_requested = True
            message = (
                f"'{name}' {what}; rolling back (decided{who}): no new steps start, "
                f"running ones get {self.rollback_grace:g}s to finish"
            )
            self.stop(StopReason(StepStatus.CANCELLED, message), grace=self.rollback_grace)
        else:
            self.stop(StopReason(StepStatus.CANCELLED, f"'{name}' {what}; aborting (decided{who})"))

    def _time_out(self, result: UnitResult) -> None:
        """Nobody decided in time: start nothing more; the run ends `paused` (exit 5)."""
        self._settled.add(result.name)
        self.timed_out = self.timed_out or result.reason or f"no decision for '{result.name}'"
        message = f"{self.timed_out}; the run stops (`tempeh resume` continues it)"
        self.stop(StopReason(StepStatus.CANCELLED, message), grace=self.rollback_grace)
        self._complete(result.name, result)

    # --- host load -----------------------------------------------------------------------

    def _watches_load(self) -> bool:
        limits = self.resource_limits
        return self.host_load is not None and (limits.cpu is not None or limits.memory is not None)

    async def _watch_load(self) -> None:
        while True:
            await anyio.sleep(LOAD_SAMPLE_INTERVAL)
            self._sample_load()

    def _sample_load(self) -> None:
        assert self.host_load is not None
        limits = self.resource_limits
        cpu, memory = self.host_load.sample()
        reasons = []
        if limits.cpu is not None and cpu > limits.cpu:
            reasons.append(f"host CPU {cpu:.0f}% > {limits.cpu:g}%")
        if limits.memory is not None and memory > limits.memory:
            reasons.append(f"host memory {memory:.0f}% > {limits.memory:g}%")
        overloaded = "waiting: " + ", ".join(reasons) if reasons else None
        if overloaded != self._overloaded:
            self._overloaded = overloaded
            if overloaded is None:
                self._waiting_reason.clear()
            self._dispatch()


def _listed(names: Iterable[str], most: int = 3) -> str:
    """`its needs: a, b`; a long list is cut: `its needs: a, b, c and 97 more`."""
    items = list(names)
    shown = ", ".join(items[:most])
    if len(items) > most:
        shown += f" and {len(items) - most} more"
    return f"{NEEDS}: {shown}"
