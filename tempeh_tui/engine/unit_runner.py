"""Running one unit: cache, approval, attempts with retry, `until` loops, `verify`, outputs."""

from __future__ import annotations

import contextlib
import functools
import glob
import hashlib
import os
import re
import tempfile
import time
from collections import deque
from collections.abc import Awaitable, Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import anyio

from tempeh_tui.definition.expressions import ExpressionError, evaluate, render_template
from tempeh_tui.definition.models import ErrorClass, RetryPolicy, Severity
from tempeh_tui.engine.cache import cache_key
from tempeh_tui.engine.context import StepContext
from tempeh_tui.engine.decisions import (
    APPROVAL_CHOICES,
    APPROVE,
    Decision,
    DecisionDesk,
    Decisions,
    DecisionTimedOut,
    QuestionKind,
    approval_hash,
)
from tempeh_tui.engine.executor import (
    ExecResult,
    Executor,
    PythonRequest,
    ShellRequest,
)
from tempeh_tui.engine.outputs import OutputFileError
from tempeh_tui.engine.process_groups import process_start_time
from tempeh_tui.engine.python_output import step_log
from tempeh_tui.engine.recovery import Classification, ErrorRecovery
from tempeh_tui.engine.rendering import RunScope, render_shell
from tempeh_tui.engine.results import UnitResult
from tempeh_tui.engine.secrets import Masker
from tempeh_tui.engine.shell_process import read_outputs
from tempeh_tui.events import (
    DecisionAnswered,
    DecisionRequested,
    EventBus,
    StepOutput,
    StepRetrying,
    StepSpawned,
    StepStarted,
    StepStatus,
    StepStatusChanged,
)
from tempeh_tui.graph.build import Unit
from tempeh_tui.store.base import DecisionRecord, Store

__all__ = ["Approvals", "RunServices", "UnitRunner"]

_TAIL_LINES = 1000
"""How much of an attempt's output `errors` rules with `output:` (and the built-in output
checks) search: the last this many lines (an error is printed near the end, and a step
printing millions of lines must not be searched whole)."""
_DEFAULT_RETRY = RetryPolicy()


@dataclass(frozen=True)
class Approvals:
    """Answers to approval gates known before the run (`--yes`, `--approve STEP`)."""

    all: bool = False
    steps: frozenset[str] = frozenset()

    def granted(self, unit: Unit) -> bool:
        return self.all or unit.name in self.steps or unit.step.name in self.steps


@dataclass
class RunServices:
    """What every unit of a run shares."""

    executor: Executor
    bus: EventBus
    recovery: ErrorRecovery
    scope: RunScope
    masker: Masker
    workdir: str
    tmpdir: str
    store: Store | None = None
    grace: float = 10.0
    approvals: Approvals = field(default_factory=Approvals)
    hold_lease: Callable[[], Awaitable[None]] | None = None
    """Before each process starts or Python step is called: the run is still this process's
    to drive (see `Store.hold_lease`; raises LeaseLost, which stops the run)."""
    checkpoint: Callable[[], None] | None = None
    """The checkpoint barrier, called before each process starts or Python step is called:
    what happened so far survives a crash from then on (the store's journal)."""
    publish: Callable[[], Awaitable[None]] | None = None
    """Writes what happened so far to the store, where other processes see it (before a
    question is asked: `tempeh decide` must find the run `paused`)."""
    attempts_before: Mapping[str, int] = field(default_factory=dict)
    """Attempts each unit made before a resume: numbering goes on from there."""
    tries_before: Mapping[str, int] = field(default_factory=dict)
    """Of its `retry.attempts`, what each unit stopped in a retry chain used before a resume
    (`StepRecord.tries_used`): the chain goes on, it does not start again."""
    probe: frozenset[str] = frozenset()
    """Units in doubt after a crash whose `check` probe runs first (exit 0: already done)."""
    process_groups: set[int] = field(default_factory=set)
    """Process groups of the attempts running now (for killing at once on a second SIGINT)."""
    decisions: Decisions = field(default_factory=lambda: DecisionDesk(None))
    """Where questions for the operator go (failures under `pause`, approval gates)."""
    waiting: set[str] = field(default_factory=set)
    """Units whose question waits now (failures and approvals alike): the run stays `paused`
    while any does, so an answer says how many still wait (`DecisionAnswered.still_waiting`)."""


class _Observer:
    """Receives an attempt's output: masks it, publishes it, keeps the tail for diagnosis."""

    def __init__(
        self, bus: EventBus, unit: str, attempt: int, masker: Masker, groups: set[int]
    ) -> None:
        self._groups = groups
        self._bus = bus
        self._unit = unit
        self._attempt = attempt
        self._masker = masker
        self.tail: deque[str] = deque(maxlen=_TAIL_LINES)
        self.pid: int | None = None

    def output(self, stream: str, line: str) -> None:
        line = self._masker.mask(line)
        self.tail.append(line)
        self._bus.emit(StepOutput, step=self._unit, stream=stream, line=line, attempt=self._attempt)

    def spawned(self, pid: int, started: float | None = None) -> None:
        self.pid = pid
        self._groups.add(pid)
        self._bus.emit(
            StepSpawned,
            step=self._unit,
            attempt=self._attempt,
            pid=pid,
            process_started=started if started is not None else process_start_time(pid),
        )

    def done(self) -> None:
        if self.pid is not None:
            self._groups.discard(self.pid)


@dataclass
class _Failure:
    result: ExecResult
    classification: Classification
    note: str


class UnitRunner:
    """Runs one unit to its end and returns how it ended (the driver publishes it)."""

    def __init__(self, services: RunServices, unit: Unit) -> None:
        self.s = services
        self.unit = unit
        self.step = unit.step
        self.attempts = services.attempts_before.get(unit.name, 0)
        self._tries_before = services.tries_before.get(unit.name, 0)
        self.started_at: float | None = None
        self._exit_code: int | None = None  # of the last attempt that succeeded
        self._cache_key: str | None = None
        self._gate_passed = False

    async def gate(self) -> UnitResult | None:
        """What may end the unit before it runs: a cache hit, or its approval gate (a `no`,
        or no one to ask); None: it runs. The scheduler calls this before an approval gate
        takes a slot (waiting for an answer holds no slot, no resource); `run` calls it for
        any other unit."""
        self._gate_passed = True
        self.started_at = time.time()
        if self.step.cache is not None:
            try:
                self._cache_key = await anyio.to_thread.run_sync(self._cache_key_now)
            except ExpressionError as exc:
                return self._failed(self._expression_failure(f"cache key: {exc}"), {})
            except OSError as exc:  # a file of `cache.files` that cannot be read
                return self._failed(self._expression_failure(f"cache files: {exc}"), {})
            hit = await self._cached(self._cache_key)
            if hit is not None:
                return hit
        if self.step.confirm is not None:
            denied = await self._confirm()
            if denied is not None:
                return denied
            if self.step.run is None:
                return self._result(StepStatus.SUCCEEDED, reason="approved")
        return None

    async def run(self) -> UnitResult:
        if not self._gate_passed:
            ended = await self.gate()
            if ended is not None:
                return ended
        self.started_at = time.time()
        cache_key = self._cache_key
        if self.unit.name in self.s.probe:
            try:
                done = await self._probe()
            except ExpressionError as exc:  # no answer: the step is left failed, not re-run
                return self._failed(self._expression_failure(f"check: {exc}"), {})
            if done is not None:
                return done
        outputs: dict[str, str] = {}
        iterations = self.step.max_iterations if self.step.until is not None else 1
        assert iterations is not None
        for iteration in range(1, iterations + 1):
            failure = await self._attempts(iteration, outputs)
            if failure is not None:
                return self._failed(failure, outputs)
            if self.step.until is None:
                break
            try:
                scope = self._scope(outputs, iteration)
                scope["outputs"] = _NotYet(outputs)
                done = evaluate(self.step.until, scope)
            except ExpressionError as exc:
                return self._failed(self._expression_failure(f"until: {exc}"), outputs)
            if done:
                break
            if iteration == iterations:
                note = f"until is still false after {iterations} iterations"
                failure = _Failure(
                    ExecResult(exit_code=0, error=note),
                    Classification(ErrorClass.PERMANENT, Severity.MEDIUM, note),
                    note,
                )
                return self._failed(failure, outputs)
            self._note(f"until is false after iteration {iteration}; running again")
            await self.s.recovery.sleep(self.step.interval or 0.0)
        return self._result(
            StepStatus.SUCCEEDED, outputs=outputs, cache_key=cache_key, exit_code=self._exit_code
        )

    # --- attempts -------------------------------------------------------------------------

    async def _attempts(self, iteration: int, outputs: dict[str, str]) -> _Failure | None:
        policy = self.step.retry or _DEFAULT_RETRY
        first, self._tries_before = min(self._tries_before, policy.attempts - 1) + 1, 0
        for tries in range(first, policy.attempts + 1):
            if tries > 1 or iteration == 1 or self.attempts == 0:
                self.attempts += 1  # a loop's next iteration goes on in the same attempt
            attempt = self.attempts
            observer = _Observer(
                self.s.bus, self.unit.name, attempt, self.s.masker, self.s.process_groups
            )
            try:
                failure = await self._attempt(attempt, iteration, outputs, observer)
            finally:
                observer.done()
            if failure is None:
                return None
            recovery = self.s.recovery
            cls = failure.classification.error_class
            if not recovery.should_retry(policy, cls, tries):
                return failure
            delay = recovery.delay(policy, tries + 1)
            self.s.bus.emit(
                StepRetrying,
                step=self.unit.name,
                attempt=attempt,
                next_attempt=attempt + 1,
                error_class=cls.value,
                exit_code=failure.result.exit_code,
                delay=delay,
            )
            await recovery.sleep(delay)
        raise AssertionError("unreachable: the last attempt returns")  # pragma: no cover

    async def _attempt(
        self, attempt: int, iteration: int, outputs: dict[str, str], observer: _Observer
    ) -> _Failure | None:
        try:
            result = await self._action(attempt, iteration, outputs, observer)
        except ExpressionError as exc:
            return self._expression_failure(str(exc))
        if result.ok:
            self._exit_code = result.exit_code
            outputs.update(self.s.masker.mask_mapping(result.outputs))
            if self.step.verify is not None:
                verified = await self._verify(attempt, iteration, outputs, observer)
                if verified is not None:
                    return verified
            return None
        classification = self.s.recovery.classify(result, "\n".join(observer.tail))
        return _Failure(result, classification, result.describe())

    async def _action(
        self, attempt: int, iteration: int, outputs: dict[str, str], observer: _Observer
    ) -> ExecResult:
        scope = self._scope(outputs, iteration)
        await self._hold_lease()  # before it says it starts: it may not be ours to start
        if self.step.python is not None:
            self.s.bus.emit(
                StepStarted,
                step=self.unit.name,
                attempt=attempt,
                iteration=iteration,
                command=f"python {self.step.python}",
            )
            context = StepContext(
                run_id=self.s.scope.run_id,
                workflow=self.s.scope.workflow.name,
                step=self.unit.name,
                attempt=attempt,
                params=scope["params"],  # a retry's changed params included
                # as a shell step's process gets it, TEMPEH_* included (SPEC 1); made when read
                env=_OnFirstRead(
                    functools.partial(
                        self.s.scope.process_env,
                        self.unit,
                        scope,
                        attempt=attempt,
                        iteration=iteration,
                        output_file=None,
                    )
                ),
                steps=self._needed_steps(scope),
                outputs=dict(outputs),
                item=self.unit.item,
                iteration=iteration,
                log=step_log(observer.output),
            )
            request = PythonRequest(self.step.python, context, self.step.timeout, (self.s.workdir,))
            if self.s.checkpoint is not None:
                self.s.checkpoint()  # the start is durable before user code acts
            return await self.s.executor.call_python(request, observer)
        assert self.step.run is not None
        return await self._shell(self.step.run, attempt, iteration, scope, observer)

    async def _hold_lease(self) -> None:
        if self.s.hold_lease is not None:
            await self.s.hold_lease()

    async def _shell(
        self,
        command: str,
        attempt: int,
        iteration: int,
        scope: Mapping[str, Any],
        observer: _Observer,
        *,
        announce: bool = True,
    ) -> ExecResult:
        rendered, values = render_shell(command, scope)
        output_file = output_file_of(self.s.tmpdir, self.unit.name, attempt, iteration)
        env = self.s.scope.process_env(
            self.unit, scope, attempt=attempt, iteration=iteration, output_file=output_file
        )
        env.update(values)
        await self._hold_lease()  # (at once when confirmed lately, as in `_action`)
        if announce:
            self.s.bus.emit(
                StepStarted,
                step=self.unit.name,
                attempt=attempt,
                iteration=iteration,
                command=self.s.masker.mask(rendered),
            )
        if self.s.checkpoint is not None:
            self.s.checkpoint()  # the start is durable before the process exists
        request = ShellRequest(
            rendered,
            env,
            self.s.workdir,
            timeout=self.step.timeout,
            grace=self.s.grace,
            output_file=output_file,
            pace=self.s.store.wait_for_room if self.s.store is not None else None,
        )
        return await self.s.executor.run_shell(request, observer)

    async def _probe(self) -> UnitResult | None:
        """In doubt after a crash: the `check` probe says whether the effect is in place."""
        assert self.step.check is not None
        self._note("in doubt (its engine stopped while it ran): asking the check probe")
        observer = _Observer(
            self.s.bus,
            self.unit.name,
            max(self.attempts, 1),
            self.s.masker,
            self.s.process_groups,
        )
        try:
            result = await self._shell(
                self.step.check,
                max(self.attempts, 1),
                1,
                self._scope({}, 1),
                observer,
                announce=False,
            )
        finally:
            observer.done()
        if result.ok:  # with what the attempt wrote before its engine stopped
            try:
                left = outputs_left(
                    self.s.scope.run_id,
                    self.unit.name,
                    max(self.attempts, 1),
                    besides=self.s.tmpdir,
                )
            except OutputFileError as exc:  # cut short by the crash: said, not hidden
                self._note(f"what it wrote to $TEMPEH_OUTPUT before cannot be read: {exc}")
                left = {}
            if self.step.until is not None and not self._until_met(left):
                self._note(
                    "the check probe says its effect is in place, but its `until` is not met "
                    "on what it wrote: running the step again"
                )
                return None
            return self._result(
                StepStatus.SUCCEEDED,
                outputs=self.s.masker.mask_mapping(left),
                reason="in doubt; the check probe says its effect is in place",
            )
        self._note(f"the check probe says no ({result.describe()}); running the step again")
        return None

    def _until_met(self, outputs: dict[str, str]) -> bool:
        """The loop's `until` on these outputs (False if it cannot be evaluated on them)."""
        assert self.step.until is not None
        scope = self._scope(outputs, 1)
        scope["outputs"] = _NotYet(outputs)
        try:
            return bool(evaluate(self.step.until, scope))
        except ExpressionError:
            return False

    async def _verify(
        self, attempt: int, iteration: int, outputs: dict[str, str], observer: _Observer
    ) -> _Failure | None:
        assert self.step.verify is not None
        self._note("verifying")
        try:
            result = await self._shell(
                self.step.verify,
                attempt,
                iteration,
                self._scope(outputs, iteration),
                observer,
                announce=False,
            )
        except ExpressionError as exc:
            return self._expression_failure(f"verify: {exc}")
        if result.ok:
            return None
        classification = self.s.recovery.classify(result, "\n".join(observer.tail))
        return _Failure(result, classification, f"verify failed: {result.describe()}")

    # --- outcomes -------------------------------------------------------------------------

    def _scope(self, outputs: Mapping[str, str], iteration: int) -> dict[str, Any]:
        return self.s.scope.expression_scope(self.unit, outputs=outputs, iteration=iteration)

    def _needed_steps(self, scope: Mapping[str, Any]) -> dict[str, Mapping[str, Any]]:
        """`steps` of a Python step: what `steps[...]` gives its expressions, for each step it
        needs as written (a fan-out step as a whole) and each unit it needs."""
        view = scope["steps"]
        names = dict.fromkeys([*self.step.needs, *self._needs_done()])
        return {name: view[name] for name in names if name in view}

    def _needs_done(self) -> list[str]:
        return [n for n in self.s.scope.graph.needs(self.unit.name) if n in self.s.scope.results]

    def _note(self, text: str) -> None:
        self.s.bus.emit(
            StepOutput,
            step=self.unit.name,
            stream="tempeh",
            line=text,
            attempt=max(self.attempts, 1),
        )

    def _expression_failure(self, message: str) -> _Failure:
        note = self.s.masker.mask(message)
        self._note(note)
        return _Failure(
            ExecResult(exit_code=None, error=note),
            Classification(ErrorClass.PERMANENT, Severity.HIGH, "expression failed"),
            note,
        )

    async def _confirm(self) -> UnitResult | None:
        assert self.step.confirm is not None
        scope = self._scope({}, 1)
        try:
            question = render_template(self.step.confirm, scope)
            command, values = (
                render_shell(self.step.run, scope) if self.step.run is not None else (None, {})
            )
        except ExpressionError as exc:
            return self._failed(self._expression_failure(f"confirm: {exc}"), {})
        if self.s.approvals.granted(self.unit):
            self._note(f"approved in advance: {question}")
            return None
        decisions = self.s.decisions
        tied_to = approval_hash(question, command, values)
        before = await decisions.approved_before(self.s.scope.run_id, self.unit.name, tied_to)
        if before is not None:
            self._note(f"approved by {before.by} (stored; the same inputs): {question}")
            return None
        if not decisions.can_ask:
            reason = (
                f"needs approval: {question} (run again with --approve {self.step.name} or "
                "--yes, or with --wait-for-decision and answer with `tempeh approve`)"
            )
            self._note(reason)
            return self._result(
                StepStatus.FAILED,
                error_class=ErrorClass.PERMANENT.value,
                severity=Severity.MEDIUM.value,
                reason=reason,
            )
        return await self._await_approval(question, tied_to)

    async def _await_approval(self, question: str, tied_to: str) -> UnitResult | None:
        """Wait for `tempeh approve RUN STEP` (or the app); the question is stored first."""
        bus = self.s.bus
        kind = QuestionKind.APPROVAL.value
        waiting = f"waiting for approval: {question} (`tempeh approve {self.s.scope.run_id} "
        waiting += f"{self.step.name}`)"
        self.s.waiting.add(self.unit.name)

        async def announce() -> None:  # once the question is stored: it can be answered
            bus.emit(
                StepStatusChanged,
                step=self.unit.name,
                status=StepStatus.AWAITING_CONFIRMATION,
                reason=waiting,
            )
            bus.emit(
                DecisionRequested,
                step=self.unit.name,
                kind=kind,
                question=question,
                choices=APPROVAL_CHOICES,
            )
            self._note(waiting)
            if self.s.publish is not None:
                await self.s.publish()

        record = DecisionRecord(
            run_id=self.s.scope.run_id,
            unit=self.unit.name,
            kind=kind,
            asked_at=time.time(),
            summary=question,
            input_hash=tied_to,
        )
        try:
            answer = await self.s.decisions.ask(record, announce)
        except DecisionTimedOut as exc:
            self.s.waiting.discard(self.unit.name)
            bus.emit(
                DecisionAnswered,
                step=self.unit.name,
                kind=kind,
                answer="timed out",
                still_waiting=len(self.s.waiting),
            )
            self._note(str(exc))
            return self._result(
                StepStatus.FAILED,
                error_class=ErrorClass.PERMANENT.value,
                severity=Severity.MEDIUM.value,
                reason=f"needs approval: {question} ({exc})",
                awaited_decision_in_vain=True,
            )
        finally:
            self.s.waiting.discard(self.unit.name)  # also when the run stops meanwhile
        bus.emit(
            DecisionAnswered,
            step=self.unit.name,
            kind=kind,
            answer=answer.value,
            answered_by=answer.by,
            still_waiting=len(self.s.waiting),
        )
        if answer.value == APPROVE:
            self._note(f"approved by {answer.by}: {question}")
            return None
        refused = f"refused by {answer.by} ({answer.value}): {question}"
        self._note(refused)
        if answer.value == Decision.SKIP:  # the rest of the run goes on without it
            return self._result(StepStatus.SKIPPED, reason=refused)
        return self._result(
            StepStatus.FAILED,
            error_class=ErrorClass.PERMANENT.value,
            severity=Severity.MEDIUM.value,
            reason=refused,
            refused=(answer.value, answer.by),
        )

    def _cache_key_now(self) -> str:
        assert self.step.cache is not None
        rendered = render_template(self.step.cache.key, self._scope({}, 1))
        return cache_key(rendered, Path(self.s.workdir), self.step.cache.files)

    async def _cached(self, key: str) -> UnitResult | None:
        if self.s.store is None:
            return None
        hit = await self.s.store.find_cached(self.s.scope.workflow.name, self.unit.name, key)
        if hit is None:
            return None
        self._note(f"cache hit: key {key} succeeded in run {hit.run_id}")
        return self._result(
            StepStatus.SUCCEEDED,
            outputs=dict(hit.outputs),
            cached=True,
            cache_key=key,
            reason=f"cached from run {hit.run_id}",
        )

    def _failed(self, failure: _Failure, outputs: dict[str, str]) -> UnitResult:
        c = failure.classification
        return self._result(
            StepStatus.FAILED,
            outputs=outputs,
            exit_code=failure.result.exit_code,
            error_class=c.error_class.value,
            severity=c.severity.value,
            reason=self.s.masker.mask(f"{failure.note} ({c.error_class.value}: {c.reason})"),
            tolerated=self.step.continue_on_error,
        )

    def _result(self, status: StepStatus, **fields: Any) -> UnitResult:
        return UnitResult(
            name=self.unit.name,
            status=status,
            attempts=self.attempts,
            started_at=self.started_at,
            ended_at=time.time(),
            **fields,
        )


def scratch_prefix(run_id: str) -> str:
    """A run's engine keeps its steps' `$TEMPEH_OUTPUT` files in a folder of the temp
    directory whose name starts so."""
    return f"tempeh-{run_id}-"


def scratch_folders(run_id: str) -> list[str]:
    """The scratch folders this run's engines made: a dead engine's outlives it. (Not those
    of a run whose id goes on after this one's, `rel` and `rel-eu`: `mkdtemp`'s own part of
    a name has no `-`.)"""
    prefix = os.path.join(tempfile.gettempdir(), scratch_prefix(run_id))
    return [path for path in glob.glob(prefix + "*") if "-" not in path[len(prefix) :]]


def outputs_left(
    run_id: str, unit: str, attempt: int, *, besides: str | None = None
) -> dict[str, str]:
    """What an attempt that an engine never saw end wrote to `$TEMPEH_OUTPUT`: its loop
    iterations' files in order (a later value wins, as in a run), in the scratch folder of
    the engine that ran it (a dead engine's outlives it; one stopped half-way keeps it; the
    folder with the newest of them). Nothing if there is none (a reboot). OutputFileError if
    one cannot be read (cut short by the crash). `besides`: a folder not to look in."""
    pattern = re.compile(rf"{re.escape(_safe(unit))}\.{attempt}\.(\d+)\.out")
    found: dict[str, list[tuple[int, str]]] = {}
    for folder in scratch_folders(run_id):
        if folder == besides:
            continue
        with contextlib.suppress(OSError):
            for name in os.listdir(folder):
                if (match := pattern.fullmatch(name)) is not None:
                    found.setdefault(folder, []).append((int(match[1]), os.path.join(folder, name)))
    if not found:
        return {}
    newest = max(found, key=lambda f: max(os.path.getmtime(path) for _, path in found[f]))
    outputs: dict[str, str] = {}
    for _, path in sorted(found[newest]):
        outputs.update(read_outputs(path))
    return outputs


def output_file_of(folder: str, unit: str, attempt: int, iteration: int | str) -> str:
    """The `$TEMPEH_OUTPUT` file of one attempt (and loop iteration) of a unit (`*`: a glob
    of them)."""
    return os.path.join(folder, f"{_safe(unit)}.{attempt}.{iteration}.out")


def _safe(name: str) -> str:
    """The unit's name as a file name; one that had to change carries a hash of the name, so
    that two fan-out items (`eu/1`, `eu_1`) never share a file."""
    safe = "".join(c if c.isalnum() or c in "-_." else "_" for c in name)
    if safe == name:
        return safe
    return f"{safe}-{hashlib.sha256(name.encode()).hexdigest()[:12]}"


class _NotYet(dict[str, str]):
    """This step's outputs as `until` reads them: one not written yet is empty (None), not an
    error: `until: "outputs.healthy == 'true'"` loops until a run writes `healthy=true`."""

    def __missing__(self, key: str) -> None:
        return None


class _OnFirstRead(Mapping[str, str]):
    """A mapping made when first read (a Python step's `ctx.env`: most never read it, and
    copying the environment for each of 10,000 steps costs ~8 µs a step)."""

    def __init__(self, make: Callable[[], Mapping[str, str]]) -> None:
        self._make = make
        self._made: Mapping[str, str] | None = None

    def _mapping(self) -> Mapping[str, str]:
        if self._made is None:
            self._made = self._make()
        return self._made

    def __getitem__(self, key: str) -> str:
        return self._mapping()[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self._mapping())

    def __len__(self) -> int:
        return len(self._mapping())

    def __repr__(self) -> str:
        return repr(dict(self._mapping()))
