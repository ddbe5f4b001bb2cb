"""WorkflowEngine: the public face of a run (SPEC 7).

It loads the workflow, resolves params, opens the store, publishes the run's events and hands
the graph to the scheduler. Views never reach past it: they subscribe to events and call its
small API (execute, set the concurrency, cancel).
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import os
import secrets as _random
import shutil
import signal
import tempfile
import time
from collections.abc import Callable, Coroutine, Iterable, Mapping
from contextlib import AsyncExitStack
from dataclasses import dataclass, field
from pathlib import Path
from random import Random
from typing import TYPE_CHECKING, Any, Concatenate, ParamSpec

import anyio

from tempeh_tui.definition.loader import WorkflowSource, load_workflow
from tempeh_tui.definition.models import OnFailure, Workflow
from tempeh_tui.definition.params import resolve_params
from tempeh_tui.engine.cache import workflow_dir
from tempeh_tui.engine.decisions import (
    APPROVE,
    Decision,
    DecisionDesk,
    Decisions,
    NothingWaits,
    QuestionKind,
    RetryValues,
    retry_values_by_unit,
)
from tempeh_tui.engine.executor import DEFAULT_GRACE, Executor
from tempeh_tui.engine.host_load import HostLoad, PsutilHostLoad
from tempeh_tui.engine.recovery import ErrorRecovery, Sleep
from tempeh_tui.engine.rendering import RunScope
from tempeh_tui.engine.results import RunResult, UnitResult
from tempeh_tui.engine.resume import (
    InDoubt,
    ResumePlan,
    RolledBack,
    as_unit_result,
    interrupted_rollback,
    kill_leftovers,
    plan_resume,
    stored_workflow,
)
from tempeh_tui.engine.scheduler import Scheduler, StopReason
from tempeh_tui.engine.secrets import (
    Masker,
    collect_secrets,
    refuse_secret_params,
    secrets_masked,
)
from tempeh_tui.engine.unit_runner import (
    Approvals,
    RunServices,
    scratch_folders,
    scratch_prefix,
)
from tempeh_tui.errors import TempehError
from tempeh_tui.events import (
    EventBus,
    RunFinished,
    RunStarted,
    RunStatus,
    StepFinished,
    StepOutput,
    StepStatus,
)
from tempeh_tui.events.bus import EventStream, Subscriber
from tempeh_tui.graph.build import WorkflowGraph, build_graph
from tempeh_tui.graph.selection import Selection, SelectionError, not_selected
from tempeh_tui.store.base import DecisionRecord, RunRecord, Store, StoreError

if TYPE_CHECKING:
    from tempeh_tui.engine.rollback import RollbackManager, RollbackResult
    from tempeh_tui.engine.rollback_plan import RollbackPlan

__all__ = ["WorkflowEngine", "new_run_id"]


P = ParamSpec("P")


def _refusal_ends_waits(
    method: Callable[Concatenate[WorkflowEngine, P], Coroutine[Any, Any, RunResult]],
) -> Callable[Concatenate[WorkflowEngine, P], Coroutine[Any, Any, RunResult]]:
    """A run refused before it starts (it raises, and no `run_started` went out) ends the
    `async for event in engine.events()` loops waiting for its `run_finished`."""

    @functools.wraps(method)
    async def wrapper(engine: WorkflowEngine, /, *args: P.args, **kwargs: P.kwargs) -> RunResult:
        started = engine._runs_started
        try:
            return await method(engine, *args, **kwargs)
        except BaseException:
            if engine._runs_started == started:
                engine._refused()
            raise

    return wrapper


def new_run_id() -> str:
    """Sortable and short enough to type: `20261125-190812-a3f9`."""
    return time.strftime("%Y%m%d-%H%M%S", time.gmtime()) + "-" + _random.token_hex(2)


class WorkflowEngine:
    """Runs workflows. Both collaborators are optional: local processes and the default store.

    `store=None` with checkpointing on opens the default SQLite store (SPEC 4) for the run.
    """

    def __init__(
        self,
        executor: Executor | None = None,
        store: Store | None = None,
        *,
        sleep: Sleep = anyio.sleep,
        rng: Random | None = None,
        host_load: HostLoad | None = None,
        environ: Mapping[str, str] | None = None,
        grace: float = DEFAULT_GRACE,
        decisions: Decisions | None = None,
    ) -> None:
        self._executor = executor
        self._decisions = decisions
        self._desk: Decisions | None = None
        self._store = store
        self._sleep = sleep
        self._rng = rng
        self._host_load = host_load
        self._environ = environ
        self._grace = grace
        self._subscribers: list[Subscriber] = []
        self._refusal_watchers: list[Callable[[], None]] = []
        self._runs_started = 0
        self._scheduler: Scheduler | None = None
        self._starting = False  # a run is on its way to its scheduler (see `interrupt`)
        self._has_run = False
        self._stop_requested: str | None = None
        self._rolling_back: anyio.CancelScope | None = None  # an automatic or resumed rollback
        self._compensating: set[int] = set()  # its running compensations' process groups

    # --- observing -----------------------------------------------------------------------

    def subscribe(self, subscriber: Subscriber) -> Callable[[], None]:
        """Receive every event of the runs this engine executes; returns the unsubscriber."""
        self._subscribers.append(subscriber)
        return lambda: self._subscribers.remove(subscriber)

    def events(self) -> EventStream:
        """`async for event in engine.events():` (until the run's `run_finished`), or
        `async with engine.events() as events: async for event in events:` (every run, until
        the block ends)."""
        return EventStream(self.subscribe, self._on_refusal)

    def _on_refusal(self, callback: Callable[[], None]) -> Callable[[], None]:
        self._refusal_watchers.append(callback)
        return lambda: self._refusal_watchers.remove(callback)

    def _refused(self) -> None:
        """A run was refused before it started (a bad param, a missing secret, a run that
        cannot be resumed): whoever waits for its `run_finished` stops waiting."""
        for callback in list(self._refusal_watchers):
            callback()

    # --- controlling a run in progress ---------------------------------------------------

    def set_max_concurrency(self, limit: int) -> None:
        if self._scheduler is not None:
            self._scheduler.set_max_concurrency(limit)

    def cancel(self, message: str = "cancelled by the operator") -> None:
        if self._scheduler is not None:
            self._scheduler.stop(StopReason(StepStatus.CANCELLED, message))

    def kill_now(self) -> None:
        """SIGKILL every running step's and compensation's process group at once (a second
        SIGINT)."""
        services = self._scheduler.s if self._scheduler is not None else None
        groups = [*(services.process_groups if services else ()), *self._compensating]
        for group in groups:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(group, signal.SIGKILL)

    def interrupt(self, message: str = "interrupted") -> bool:
        """Stop for now (SIGINT): the run ends `interrupted` and can be resumed; one that is
        still starting (loading, opening its lease) starts nothing. False if no run's steps
        are going on or about to (none was started, or its steps are all done)."""
        if self._scheduler is not None:
            self._scheduler.stop(StopReason(StepStatus.INTERRUPTED, message))
            return True
        if self._rolling_back is not None:  # an automatic rollback: stopped where it is
            self._rolling_back.cancel()
            self._stop_requested = message
            return True
        if self._starting:
            self._stop_requested = message
            return True
        return False

    @property
    def has_run(self) -> bool:
        """Whether a run was started with this engine (`execute_workflow` or `resume`)."""
        return self._has_run

    def _arm(self, stack: AsyncExitStack) -> None:
        """A run is starting: an `interrupt` from now on stops it as soon as it can."""
        self._has_run = self._starting = True

        def disarm() -> None:
            self._starting = False
            self._stop_requested = None

        stack.callback(disarm)

    async def decide(
        self,
        run_id: str,
        step: str,
        decision: Decision | str,
        *,
        by: str | None = None,
        env: Mapping[str, str] | None = None,
        params: Mapping[str, str] | None = None,
    ) -> DecisionRecord:
        """Answer a step of this engine's run that failed under `pause` and waits (SPEC 5.2):
        the same path `tempeh decide` takes, stored with who answered. `skip`, `abort` and
        `rollback` also refuse an approval gate that waits.

        `retry` may change `env` and `params` for the step's next run only (not for other
        steps, nor for a later retry that changes nothing); names of secrets and `TEMPEH_*`
        are refused, as are params the workflow does not declare. `rollback` is taken as
        confirmed: show the plan first (`RollbackManager.plan_rollback`) where a person
        decides. Raises NothingWaits, RetryValuesRefused."""
        changes = RetryValues(dict(env or {}), dict(params or {}))
        return await self._answer(
            run_id, step, QuestionKind.FAILURE, Decision(decision), by, changes=changes
        )

    async def approve(self, run_id: str, step: str, *, by: str | None = None) -> DecisionRecord:
        """Approve a waiting approval gate (what `tempeh approve` does). Raises NothingWaits."""
        return await self._answer(run_id, step, QuestionKind.APPROVAL, APPROVE, by)

    async def _answer(
        self,
        run_id: str,
        step: str,
        kind: QuestionKind,
        value: str,
        by: str | None,
        *,
        changes: RetryValues | None = None,
    ) -> DecisionRecord:
        desk = self._desk or self._decisions
        if desk is None:
            raise NothingWaits(run_id, step, kind)
        return await desk.answer(run_id, step, kind, value, by, changes=changes)

    # --- running -------------------------------------------------------------------------

    @_refusal_ends_waits
    async def execute_workflow(
        self,
        workflow: WorkflowSource,
        *,
        params: Mapping[str, Any] | None = None,
        max_concurrency: int | None = None,
        enable_checkpointing: bool = True,
        auto_rollback: bool = False,
        on_failure: OnFailure | str | None = None,
        approve: Iterable[str] | str = (),
        approve_all: bool = False,
        run_id: str | None = None,
        wait_for_decision: bool = False,
        decision_timeout: float | None = None,
        select: Selection | None = None,
    ) -> RunResult:
        """Run `workflow` (a Workflow, a dict such as the seed's example, or a path).

        `select` toggles units off before the run starts (plan, pick, apply): they end
        `skipped`, "not selected in the plan", count as done for the units still selected,
        and are recorded with the run so that a resume never runs them."""
        wf = load_workflow(workflow)
        secrets = self._secrets(wf)  # refused before a run is recorded, not half-way into one
        graph = build_graph(wf)  # once: the run uses it too
        with secrets_masked(secrets):  # what the operator gave, echoed back in an error
            values = resolve_params(wf, params or {})
            refuse_secret_params(values, secrets)
            approvals = _approvals(graph, approve_all, approve)
        off = not_selected(graph, select)
        run = _RunSetup(
            workflow=wf,
            params=values,
            run_id=run_id or new_run_id(),
            policy=_policy(wf, on_failure, auto_rollback),
            max_concurrency=_concurrency(max_concurrency) or wf.max_concurrency,
            approvals=approvals,
            wait_for_decision=wait_for_decision,
            decision_timeout=decision_timeout,
            not_selected=off,
            graph=graph,
            secrets=secrets,
        )
        async with AsyncExitStack() as stack:
            self._arm(stack)
            store: Store | None = None
            if enable_checkpointing:
                store = await self._open_store(stack)
            elif run.policy is OnFailure.ROLLBACK or (
                run.policy is OnFailure.PAUSE and wait_for_decision
            ):
                from tempeh_tui.store.memory import MemoryStore

                # a rollback reads what succeeded from a store; a question waits in one
                store = MemoryStore()
                await store.open()
                stack.push_async_callback(store.close)
            if store is not None:
                await store.create_run(_run_record(run.run_id, wf, values, off, run.policy))
                await stack.enter_async_context(store.lease(run.run_id))
            return await self._drive(run, store, stack)

    @_refusal_ends_waits
    async def resume(
        self,
        run_id: str,
        *,
        confirm_in_doubt: bool = False,
        max_concurrency: int | None = None,
        on_failure: OnFailure | str | None = None,
        approve: Iterable[str] | str = (),
        approve_all: bool = False,
        explain: Callable[[ResumePlan], None] | None = None,
        wait_for_decision: bool = False,
        decision_timeout: float | None = None,
    ) -> RunResult:
        """Continue a run from its last checkpoint, with the definition stored with it (SPEC 4).

        Succeeded units are reused; failed, cancelled and unstarted ones run; a unit that was
        running when its engine died is in doubt: its `check` probe decides, else it runs
        again, unless it is not idempotent and `confirm_in_doubt` is false (InDoubt is raised
        before anything happens). `explain` receives the decisions before anything acts.
        """
        async with AsyncExitStack() as stack:
            self._arm(stack)
            store = await self._open_store(stack)
            record = await store.get_run(run_id)
            seen = await store.last_seq(record.id)
            await stack.enter_async_context(store.lease(record.id))
            if await store.last_seq(record.id) != seen:  # a dead driver's journal, replayed
                record = await store.get_run(record.id)
            if (rollback := interrupted_rollback(record)) is not None:
                requested = rollback.plan.get("requested")
                return await self._continue_rollback(record, requested, store, max_concurrency)
            if record.status in (RunStatus.ROLLED_BACK, RunStatus.ROLLBACK_FAILED):
                raise RolledBack(record)
            try:
                workflow = stored_workflow(record)
            except StoreError as damaged:  # a damaged definition
                await _let_go(record, store, str(damaged))
                raise
            plan = plan_resume(record, workflow)
            if explain is not None:
                explain(plan)
            decided = plan.operator_stop()  # then nothing runs again: nothing to confirm
            unconfirmed = plan.needing_confirmation() if decided is None else []
            if unconfirmed and not confirm_in_doubt:
                refused = InDoubt(record.id, unconfirmed)
                await _let_go(record, store, str(refused))
                raise refused
            await kill_leftovers(record, self._grace)
            if decided is not None and decided.answer == Decision.ROLLBACK:
                why = (
                    f"'{decided.unit}': rollback (decided by {decided.answered_by}, before "
                    "its engine died): rolling back the run"
                )
                return await self._continue_rollback(record, None, store, max_concurrency, why=why)
            for stale in record.waiting_for:  # the process that asked is gone
                if stale.kind == QuestionKind.FAILURE:  # approvals given meanwhile still count
                    await store.answer_decision(
                        record.id, stale.unit, stale.kind, "withdrawn", "tempeh resume"
                    )
            run = _RunSetup(
                workflow=workflow,
                params=dict(record.params),
                run_id=record.id,
                policy=_policy(workflow, on_failure or record.on_failure, False),
                max_concurrency=_concurrency(max_concurrency) or record.max_concurrency or 4,
                approvals=_approvals(plan.graph, approve_all, approve),
                graph=plan.graph,
                reused=plan.reused(),
                attempts_before={s.name: s.attempts for s in record.steps},
                tries_before=plan.tries_before(),
                probe=plan.probes(),
                resumed=True,
                first_seq=await store.last_seq(record.id),
                wait_for_decision=wait_for_decision,
                decision_timeout=decision_timeout,
                retried=retry_values_by_unit(record.decisions),
                not_selected=dict(record.not_selected),
                decided=decided,
            )
            return await self._drive(run, store, stack)

    def _environment(self) -> dict[str, str]:
        return dict(os.environ if self._environ is None else self._environ)

    def _secrets(self, wf: Workflow) -> dict[str, str]:
        """The declared secrets' values; MissingSecret if one is not set."""
        names = [*wf.secrets, *(n for s in wf.steps for n in s.secrets)]
        return collect_secrets(names, self._environment())

    async def _drive(self, run: _RunSetup, store: Store | None, stack: AsyncExitStack) -> RunResult:
        wf = run.workflow
        environ = self._environment()
        secret_values = run.secrets if run.secrets is not None else self._secrets(wf)
        graph = run.graph or build_graph(wf)
        recorder = [store.record] if store is not None else []
        bus = EventBus(run.run_id, run.first_seq, [*recorder, *self._subscribers])
        desk = self._decisions or DecisionDesk(
            store,
            wait=run.wait_for_decision,
            timeout=run.decision_timeout,
            workflow=wf,
            environ=environ,
        )
        # The scratch folders of earlier engines of the run (dead, or stopped by Ctrl-C) hold
        # what their in-doubt steps wrote to `$TEMPEH_OUTPUT`: a probe that finds a step's
        # effect in place takes its outputs from there, and so does a rollback. See the end.
        stale = scratch_folders(run.run_id) if run.resumed else []
        tmpdir = tempfile.mkdtemp(prefix=scratch_prefix(run.run_id))
        if store is None:  # never resumed: nothing in it is ever needed again
            stack.callback(shutil.rmtree, tmpdir, ignore_errors=True)
        results: dict[str, UnitResult] = {}
        scope = RunScope(wf, graph, run.run_id, run.params, results, environ, secret_values)
        scope.retried.update(run.retried)
        services = RunServices(
            executor=self._executor or _local_executor(),
            bus=bus,
            recovery=ErrorRecovery(wf.errors, sleep=self._sleep, rng=self._rng),
            scope=scope,
            masker=Masker(secret_values.values()),
            workdir=_workdir(wf),
            tmpdir=tmpdir,
            store=store,
            grace=self._grace,
            approvals=run.approvals,
            hold_lease=functools.partial(store.hold_lease, run.run_id) if store else None,
            checkpoint=store.checkpoint if store is not None else None,
            publish=store.flush if store is not None else None,
            attempts_before=run.attempts_before,
            tries_before=run.tries_before,
            probe=run.probe,
            decisions=desk,
        )
        scheduler = Scheduler(
            services,
            graph,
            max_concurrency=run.max_concurrency,
            on_failure=run.policy,
            resource_limits=wf.resource_limits,
            host_load=self._host_load or _default_load(wf),
            on_message=lambda text: _note(bus, text),
        )
        scheduler.results = results
        started = time.time()
        self._runs_started += 1
        bus.emit(
            RunStarted,
            workflow=wf.name,
            params=run.params,
            units=tuple(graph.units),
            max_concurrency=run.max_concurrency,
            resumed=run.resumed,
        )
        self._scheduler = scheduler
        self._starting = False
        if self._stop_requested is not None:  # interrupted while it started: nothing runs
            scheduler.stop(StopReason(StepStatus.INTERRUPTED, self._stop_requested))
        if (decided := run.decided) is not None and decided.answer is not None:
            what = "was refused" if decided.kind == QuestionKind.APPROVAL else "failed"
            scheduler.decided_before(
                decided.unit, Decision(decided.answer), decided.answered_by, what
            )
        self._desk = desk
        ended = run.reused  # ended before this process started
        scheduler.passing = run.toggled_off()
        try:
            if store is None:
                await scheduler.run(ended)
            else:
                async with store.autoflush():  # a moment's writes, one transaction
                    await scheduler.run(ended)
        except BaseException as exc:
            with anyio.CancelScope(shield=True):
                await _record_abandoned(bus, store, scheduler, services.masker.mask(_why(exc)))
            raise
        finally:
            self._scheduler = None
        status, message = _run_status(results, scheduler.stopped)
        if scheduler.timed_out is not None and status is not RunStatus.INTERRUPTED:
            status, message = RunStatus.PAUSED, scheduler.timed_out
        rolls_back = run.policy is OnFailure.ROLLBACK or scheduler.rollback_requested
        if status is RunStatus.FAILED and rolls_back and store is not None:
            await store.flush()  # the rollback plans from what the store says succeeded
            status, message = await self._roll_back(run, store, bus, services.executor, environ)
            for step in (await store.get_run(run.run_id)).steps:  # what the rollback undid
                if step.status in _UNDONE and step.name in results:
                    results[step.name] = dataclasses.replace(results[step.name], status=step.status)
        counts: dict[str, int] = {}  # the units' ends, after what a rollback undid
        for result in results.values():
            counts[result.status.value] = counts.get(result.status.value, 0) + 1
        # last: what the run came to, rollback included (`rolled_back` goes with exit 3)
        bus.emit(RunFinished, status=status, message=message, counts=counts)
        if store is not None:
            await store.flush()
        # This engine's folder stays if the run may go on with a step of its in doubt (stopped
        # half-way: Ctrl-C, an error, a caller's cancel). Earlier engines' folders stay unless
        # the run is over for good: a step of theirs in doubt may not have been probed yet.
        if status not in (RunStatus.INTERRUPTED, RunStatus.PAUSED):
            shutil.rmtree(tmpdir, ignore_errors=True)
        if status in (RunStatus.SUCCEEDED, RunStatus.ROLLED_BACK):
            for folder in stale:
                shutil.rmtree(folder, ignore_errors=True)
        return RunResult(run.run_id, wf.name, status, dict(results), message, started, time.time())

    async def _continue_rollback(
        self,
        record: RunRecord,
        requested: list[str] | None,
        store: Store,
        max_concurrency: int | None,
        *,
        why: str | None = None,
    ) -> RunResult:
        """Resume a run whose rollback stopped half-way: the rollback goes on, with the same
        steps, and never compensates a unit twice (SPEC 4); nothing is deployed again. Also
        the rollback an operator decided that the dead engine never started (`why`): the
        whole run, what it left running included (in doubt)."""
        from tempeh_tui.engine.rollback import RollbackManager

        self._starting = False  # no steps of its own start: `interrupt` stops the rollback
        self._rolling_back = anyio.CancelScope()
        manager = RollbackManager(store, self._executor, environ=self._environ, grace=self._grace)
        plan = await manager.plan_rollback(record.id, requested)
        graph = build_graph(stored_workflow(record))
        first_seq = await store.last_seq(record.id)
        bus = EventBus(record.id, first_seq, [store.record, *self._subscribers])
        if why is not None:
            _note(bus, why)
        done = await self._rollback(manager, plan, max_concurrency=max_concurrency, bus=bus)
        # the run's last word, as after any run: what it came to
        bus.emit(RunFinished, status=done.status, message=done.message)
        await store.flush()
        units = {s.name: as_unit_result(s) for s in (await store.get_run(record.id)).steps}
        return RunResult(
            record.id,
            record.workflow,
            done.status,
            units,
            done.message,
            done.started_at,
            done.ended_at,
            rollback_on_request=why is None and not _failed_before(record, graph),
        )

    async def _roll_back(
        self,
        run: _RunSetup,
        store: Store,
        bus: EventBus,
        executor: Executor,
        environ: Mapping[str, str],
    ) -> tuple[RunStatus, str | None]:
        """on_failure: rollback — compensate what succeeded, in reverse dependency order."""
        from tempeh_tui.engine.rollback import RollbackManager

        self._rolling_back = anyio.CancelScope()  # from now on, `interrupt` stops the rollback
        manager = RollbackManager(store, executor, environ=environ, grace=self._grace)
        plan = await manager.plan_rollback(run.run_id)
        _note(bus, f"rolling back {len(plan.units)} step(s): {', '.join(plan.order) or 'none'}")
        done = await self._rollback(manager, plan, max_concurrency=run.max_concurrency, bus=bus)
        return done.status, done.message

    async def _rollback(
        self,
        manager: RollbackManager,
        plan: RollbackPlan,
        *,
        max_concurrency: int | None,
        bus: EventBus,
    ) -> RollbackResult:
        """`execute_rollback`, which `interrupt` (SIGINT) stops: its compensations are
        terminated, and it is recorded, and comes out, `interrupted` (the next resume
        continues it)."""
        from tempeh_tui.engine.rollback import RollbackResult

        scope = self._rolling_back or anyio.CancelScope()
        try:
            with scope:
                if self._stop_requested is not None:  # interrupted while it planned
                    scope.cancel()
                return await manager.execute_rollback(
                    plan,
                    max_concurrency=max_concurrency,
                    bus=bus,
                    process_groups=self._compensating,
                )
        finally:
            self._rolling_back = None
        stopped = self._stop_requested or "interrupted"
        message = f"{stopped} while rolling back; `tempeh resume` continues it"
        return RollbackResult(
            plan.run_id, "", RunStatus.INTERRUPTED, {}, message, time.time(), time.time()
        )

    async def _open_store(self, stack: AsyncExitStack) -> Store:
        if self._store is not None:
            return self._store
        from tempeh_tui.store import open_store

        store = open_store(None)
        await store.open()
        stack.push_async_callback(store.close)
        return store


@dataclass(frozen=True)
class _RunSetup:
    """What a run (new or resumed) is about to do."""

    workflow: Workflow
    params: dict[str, Any]
    run_id: str
    policy: OnFailure
    max_concurrency: int
    approvals: Approvals
    reused: dict[str, UnitResult] = field(default_factory=dict)
    attempts_before: dict[str, int] = field(default_factory=dict)
    tries_before: dict[str, int] = field(default_factory=dict)
    probe: frozenset[str] = frozenset()
    resumed: bool = False
    first_seq: int = 0
    wait_for_decision: bool = False
    """Headless, wait for `tempeh decide`/`approve` answers through the store."""
    decision_timeout: float | None = None
    retried: dict[str, RetryValues] = field(default_factory=dict)
    """Units whose last decision was a retry with changed values: they run with them."""
    not_selected: dict[str, str] = field(default_factory=dict)
    """Units toggled off before the run (plan, pick, apply), with why; never run."""
    graph: WorkflowGraph | None = None
    """The workflow's graph, if built already (10,000 steps: ~50 ms to build again)."""
    secrets: dict[str, str] | None = None
    """The secrets' values, if read already (a new run reads them before it is recorded)."""
    decided: DecisionRecord | None = None
    """An operator's `rollback` or `abort` of a failure, stored, that the engine which asked
    died before acting on: a resume acts on it first."""

    def toggled_off(self) -> dict[str, UnitResult]:
        """Not-selected units as ended: skipped, counting as done for what still runs."""
        return {
            name: UnitResult(name, StepStatus.SKIPPED, reason=why)
            for name, why in self.not_selected.items()
        }


_UNDONE = frozenset({StepStatus.ROLLED_BACK, StepStatus.ROLLBACK_FAILED})


def _concurrency(limit: int | None) -> int | None:
    if limit is not None and (isinstance(limit, bool) or limit < 1):
        raise ValueError(f"max_concurrency must be a whole number of at least 1, not {limit!r}")
    return limit


def _approvals(graph: WorkflowGraph, approve_all: bool, approve: Iterable[str] | str) -> Approvals:
    """`approve`: step names (a fan-out step, or one instance) as a list, or one name as a
    string (not its letters). An unknown one is refused: its gate would wait in vain."""
    names = frozenset([approve] if isinstance(approve, str) else approve)
    known = [*dict.fromkeys(u.step.name for u in graph), *graph.units]
    unknown = sorted(names - set(known))
    if unknown:
        raise SelectionError("--approve", unknown[0], graph.workflow.name, known)
    steps = {u.step.name: u.step for u in graph}
    gates = [name for name, step in steps.items() if step.confirm is not None]
    for name in sorted(names):
        step = graph.units[name].step if name in graph.units else steps[name]
        if step.confirm is None:
            raise TempehError(
                f"--approve: step '{name}' is not an approval gate (a step with confirm:); "
                f"the gates of '{graph.workflow.name}': {', '.join(gates) or 'none'}"
            )
    return Approvals(approve_all, names)


def _policy(wf: Workflow, on_failure: OnFailure | str | None, auto_rollback: bool) -> OnFailure:
    if auto_rollback:
        return OnFailure.ROLLBACK
    return OnFailure(on_failure) if on_failure is not None else wf.on_failure


async def _record_abandoned(
    bus: EventBus, store: Store | None, scheduler: Scheduler, why: str
) -> None:
    """The run's caller cancelled it, or something raised through it (a subscriber's bug):
    record it `interrupted`, with the units it was running, so that it reads as resumable
    instead of `running` for ever. A subscriber that raises again costs nothing: the store
    hears each event first."""
    with contextlib.suppress(Exception):
        for name in scheduler.unfinished():
            bus.emit(
                StepFinished,
                step=name,
                status=StepStatus.INTERRUPTED,
                reason=f"{why} while it ran",
                ended_at=time.time(),
            )
    await _record_interrupted(bus, store, f"{why}; `tempeh resume` continues it")


async def _record_interrupted(bus: EventBus, store: Store | None, message: str) -> None:
    """The run's last word when nobody drives it any more: `interrupted`, resumable."""
    with contextlib.suppress(Exception):
        bus.emit(RunFinished, status=RunStatus.INTERRUPTED, message=message)
    if store is not None:
        with contextlib.suppress(Exception):
            await store.flush()


async def _let_go(record: RunRecord, store: Store, why: str) -> None:
    """A resume that refused to act: nobody drives the run now, so an unfinished one reads
    `interrupted` (why), not `running`, once its lease goes. A run that had ended (failed,
    succeeded) keeps what it came to."""
    if record.status not in (RunStatus.RUNNING, RunStatus.INTERRUPTED):
        return
    bus = EventBus(record.id, await store.last_seq(record.id), [store.record])
    await _record_interrupted(bus, store, why)


def _why(exc: BaseException) -> str:
    while isinstance(exc, BaseExceptionGroup):  # from the run's task group: what raised
        exc = exc.exceptions[0]
    if isinstance(exc, anyio.get_cancelled_exc_class()):
        return "stopped by its caller (cancelled)"
    return f"stopped by an error: {type(exc).__name__}: {exc}"


def _failed_before(record: RunRecord, graph: WorkflowGraph) -> bool:
    """Whether the run had failed before its rollback began: a unit failed (one whose step
    has `continue_on_error` does not fail the run), or an operator stopped it (an `abort`
    or `rollback` answer, to a failure or an approval gate)."""
    tolerated = {n for n, u in graph.units.items() if u.step.continue_on_error}
    if any(s.status is StepStatus.FAILED and s.name not in tolerated for s in record.steps):
        return True
    return any(d.answer in (Decision.ABORT, Decision.ROLLBACK) for d in record.decisions)


def _note(bus: EventBus, text: str) -> None:
    """A line of the engine's own about the run as a whole (not about one step)."""
    bus.emit(StepOutput, stream="tempeh", line=text)


def _run_status(
    results: Mapping[str, UnitResult], stopped: StopReason | None
) -> tuple[RunStatus, str | None]:
    if stopped is not None and stopped.status is StepStatus.INTERRUPTED:
        return RunStatus.INTERRUPTED, stopped.message
    failed = [r.name for r in results.values() if r.status is StepStatus.FAILED and not r.tolerated]
    if failed:
        return RunStatus.FAILED, f"failed: {', '.join(failed)}"
    if stopped is not None:
        return RunStatus.CANCELLED, stopped.message
    blocked = [r.name for r in results.values() if r.blocked]
    if blocked:
        return RunStatus.FAILED, f"not run: {', '.join(blocked)}"
    return RunStatus.SUCCEEDED, None


def _run_record(
    run_id: str,
    wf: Workflow,
    params: Mapping[str, Any],
    off: Mapping[str, str],
    policy: OnFailure,
) -> RunRecord:
    smap = wf.source_map
    return RunRecord(
        id=run_id,
        workflow=wf.name,
        status=RunStatus.RUNNING,
        definition=wf.model_dump(mode="json", by_alias=True),
        definition_hash=wf.fingerprint(),
        params=dict(params),
        source=_recorded_source(smap.source) if smap else None,
        started_at=time.time(),
        max_concurrency=wf.max_concurrency,
        not_selected=dict(off),
        on_failure=policy.value,
    )


def _recorded_source(source: str) -> str:
    """The workflow file as an absolute path: `resume` and `rollback` run steps in its
    directory, and may be started from another one than the run."""
    return source if source.startswith("<") else str(Path(source).resolve())


def _workdir(wf: Workflow) -> str:
    """Steps run in the workflow file's directory (or the current one for a dict)."""
    return str(workflow_dir(wf))


def _default_load(wf: Workflow) -> HostLoad | None:
    limits = wf.resource_limits
    if limits.cpu is None and limits.memory is None:
        return None
    return PsutilHostLoad()


def _local_executor() -> Executor:
    from tempeh_tui.engine.local_executor import LocalExecutor

    return LocalExecutor()
