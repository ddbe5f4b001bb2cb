"""Operator decisions (SPEC 5.2, 6): the one path every answer takes to a waiting run.

A unit that needs its operator (a failure under `on_failure: pause`, an approval gate not
approved in advance) asks a `Decisions` source and awaits the answer. `DecisionDesk` stores the
question (when the run has a store) and waits for an answer given in this process
(`WorkflowEngine.decide`, the app) or by another one (`tempeh decide`, `tempeh approve`), which
it finds by polling the store.

A `retry` may change the unit's environment and params for its next run (`RetryValues`): they
are checked against the run's workflow, stored with the answer, and only that unit sees them.
"""

from __future__ import annotations

import dataclasses
import getpass
import hashlib
import json
import os
import re
import socket
import time
from collections.abc import Awaitable, Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Protocol

import anyio

from tempeh_tui.definition.models import Workflow
from tempeh_tui.definition.shell_template import CODE_IN_BRACKETS, expands_as_code
from tempeh_tui.definition.suggest import did_you_mean
from tempeh_tui.engine.secrets import Masker
from tempeh_tui.errors import TempehError
from tempeh_tui.store.base import DecisionRecord, Store, describe_changes
from tempeh_tui.store.decisions import pick_waiting

__all__ = [
    "APPROVAL_CHOICES",
    "APPROVE",
    "FAILURE_CHOICES",
    "GATE_REFUSALS",
    "Answer",
    "Decision",
    "DecisionDesk",
    "DecisionTimedOut",
    "Decisions",
    "NothingWaits",
    "QuestionKind",
    "RetryValues",
    "RetryValuesRefused",
    "answered_question",
    "approval_hash",
    "check_retry_values",
    "retry_values_by_unit",
    "who_answers",
]

POLL_INTERVAL = 0.5
APPROVE = "yes"
TIMED_OUT = "timed out"
WITHDRAWN = "withdrawn"


class Decision(StrEnum):
    """What an operator may decide for a step that failed for good under `pause`."""

    RETRY = "retry"
    SKIP = "skip"
    ROLLBACK = "rollback"
    ABORT = "abort"


class QuestionKind(StrEnum):
    FAILURE = "failure"
    APPROVAL = "approval"


FAILURE_CHOICES = tuple(d.value for d in Decision)
GATE_REFUSALS = (Decision.SKIP.value, Decision.ABORT.value, Decision.ROLLBACK.value)
"""How `tempeh decide` says no to an approval gate: skip the step, abort, or roll back."""
APPROVAL_CHOICES = (APPROVE, *GATE_REFUSALS)


@dataclass(frozen=True)
class RetryValues:
    """What a `retry` changes for the unit's next run: environment variables (over the
    workflow's and the step's `env`) and params. Other units keep the run's values."""

    env: Mapping[str, str] = field(default_factory=dict)
    params: Mapping[str, str] = field(default_factory=dict)

    def __bool__(self) -> bool:
        return bool(self.env or self.params)

    @classmethod
    def of(cls, record: DecisionRecord) -> RetryValues:
        return cls(dict(record.env), dict(record.params))

    def describe(self) -> str:
        """`params version=2; env LOG=debug`"""
        return describe_changes(self.env, self.params)


@dataclass(frozen=True)
class Answer:
    value: str
    by: str
    changes: RetryValues = field(default_factory=RetryValues)
    """A retry's changed env and params."""


class DecisionTimedOut(TempehError):
    """Nobody answered within the time `--wait-for-decision` allows (exit 5)."""

    def __init__(self, unit: str, timeout: float) -> None:
        self.unit = unit
        self.timeout = timeout
        super().__init__(f"no decision for '{unit}' within {timeout:g}s")


class NothingWaits(TempehError):
    """An answer for a unit that waits for no such question."""

    def __init__(self, run_id: str, step: str, kind: QuestionKind) -> None:
        self.run_id = run_id
        self.step = step
        what = "a decision" if kind is QuestionKind.FAILURE else "an approval"
        super().__init__(f"run {run_id}: '{step}' is not waiting for {what}")


class RetryValuesRefused(TempehError):
    """Values a retry may not change: each problem says which and why."""

    def __init__(self, problems: list[str]) -> None:
        self.problems = problems
        super().__init__("; ".join(problems))


_ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
RESERVED_PREFIX = "TEMPEH_"


def check_retry_values(
    workflow: Workflow,
    decision: str,
    changes: RetryValues,
    environ: Mapping[str, str] | None = None,
) -> None:
    """Refuse what a retry may not change: values with another decision, names that are not
    environment variable names, tempeh's own `TEMPEH_*` variables, secrets (an answer is
    stored and shown in clear: neither a secret's name nor its value, as `environ` has it,
    in any form the masker hides), params the workflow does not declare or values outside
    their choices, values bash could run as code (`expands_as_code`), and NUL bytes (no
    process can see them)."""
    if not changes:
        return
    problems: list[str] = []
    env = os.environ if environ is None else environ
    problems.extend(_unsafe_values(workflow, changes, env))
    if decision != Decision.RETRY:
        problems.append(f"changed env or params go with retry only, not with {decision}")
    secrets = {*workflow.secrets, *(name for step in workflow.steps for name in step.secrets)}
    for name, value in changes.env.items():
        if not _ENV_NAME.fullmatch(name):
            problems.append(f"-e {name}: not an environment variable name")
        elif name.startswith(RESERVED_PREFIX):
            problems.append(f"-e {name}: TEMPEH_* variables are tempeh's own")
        elif name in secrets:
            problems.append(
                f"-e {name}: a secret cannot be changed by a decision (the answer is stored "
                "and shown in clear); change it in the environment of the driving process and "
                "resume"
            )
        if "\0" in value:
            problems.append(f"-e {name}: the value has a NUL byte")
    declared = workflow.params
    for name, value in changes.params.items():
        param = declared.get(name)
        if param is None:
            hint = did_you_mean(name, declared) or (
                f" (declared: {', '.join(declared)})" if declared else " (it declares none)"
            )
            problems.append(f"-p {name}: workflow '{workflow.name}' has no param '{name}'{hint}")
        elif param.choices is not None and value not in {str(c) for c in param.choices}:
            choices = ", ".join(str(c) for c in param.choices)
            problems.append(f"-p {name}: '{value}' is not one of {choices}")
        if "\0" in value:
            problems.append(f"-p {name}: the value has a NUL byte")
    if problems:
        raise RetryValuesRefused(problems)


def _unsafe_values(
    workflow: Workflow, changes: RetryValues, environ: Mapping[str, str]
) -> Iterator[str]:
    names = {*workflow.secrets, *(name for step in workflow.steps for name in step.secrets)}
    known = {name: environ[name] for name in sorted(names) if name in environ}
    given = [("-e", n, v) for n, v in changes.env.items()]
    given += [("-p", n, v) for n, v in changes.params.items()]
    for flag, name, value in given:
        if expands_as_code(value):
            yield f"{flag} {name}: the value holds {CODE_IN_BRACKETS}"
        for secret, secret_value in known.items():
            if Masker([secret_value]).mask(value) != value:
                yield (
                    f"{flag} {name}: the value holds secret {secret} (or its base64 or "
                    "URL-encoded form), and an answer is stored in clear"
                )
                break


def answered_question(
    asked: Iterable[DecisionRecord],
    step: str,
    kind: QuestionKind,
    value: str,
    changes: RetryValues | None = None,
) -> QuestionKind:
    """The kind of question an answer is for: `skip`, `abort` or `rollback` (with no changed
    values) for a step whose failure waits for nothing but whose approval gate waits refuse
    that gate; anything else answers `kind`."""
    refusal = kind is QuestionKind.FAILURE and value in GATE_REFUSALS and not changes
    waiting = [d for d in asked if d.waiting]
    if (
        refusal
        and pick_waiting(waiting, step, QuestionKind.FAILURE.value) is None
        and pick_waiting(waiting, step, QuestionKind.APPROVAL.value) is not None
    ):
        return QuestionKind.APPROVAL
    return kind


def retry_values_by_unit(asked: Iterable[DecisionRecord]) -> dict[str, RetryValues]:
    """Per unit, the values its latest run used: those of the operator's last decision on
    its failure, if that was a retry that changed any (resume and rollback render with them)."""
    last: dict[str, DecisionRecord] = {}
    for record in sorted(asked, key=lambda d: d.id):
        if record.kind == QuestionKind.FAILURE and record.answer in FAILURE_CHOICES:
            last[record.unit] = record
    return {
        unit: RetryValues.of(record)
        for unit, record in last.items()
        if record.answer == Decision.RETRY and (record.env or record.params)
    }


class Decisions(Protocol):
    """Where a run's questions go and its answers come from."""

    @property
    def can_ask(self) -> bool:
        """Whether anyone can answer: if not, `pause` acts as `abort` and gates fail."""
        ...

    async def ask(
        self, question: DecisionRecord, announce: Callable[[], Awaitable[None]] | None = None
    ) -> Answer:
        """Store the question, then `announce` it (publish its event: whoever reacts can
        answer at once), then wait for the answer; raises DecisionTimedOut."""
        ...

    async def approved_before(self, run_id: str, unit: str, input_hash: str) -> Answer | None:
        """A stored approval of this gate for the same rendered inputs, if there is one."""
        ...

    async def answer(
        self,
        run_id: str,
        step: str,
        kind: QuestionKind,
        value: str,
        by: str | None = None,
        *,
        changes: RetryValues | None = None,
    ) -> DecisionRecord:
        """Answer a waiting question (a retry with its `changes`); raises NothingWaits,
        RetryValuesRefused."""
        ...


class DecisionDesk:
    """Questions stored (with a store) and answered from this process or another one.

    `wait=False` is headless with nobody to ask; `timeout` (seconds, None: forever) bounds
    each wait. `workflow` is what a retry's changes are checked against (else the definition
    stored with the run).
    """

    def __init__(
        self,
        store: Store | None,
        *,
        wait: bool = False,
        timeout: float | None = None,
        poll: float = POLL_INTERVAL,
        workflow: Workflow | None = None,
        environ: Mapping[str, str] | None = None,
    ) -> None:
        self.store = store
        self.wait = wait
        self.timeout = timeout
        self.poll = poll
        self.workflow = workflow
        self.environ = environ
        """Where the run's secrets are (answers holding one are refused); default os.environ."""
        self._local: dict[int, DecisionRecord] = {}  # without a store
        self._wakeups: dict[tuple[str, str], anyio.Event] = {}

    @property
    def can_ask(self) -> bool:
        return self.wait

    async def ask(
        self, question: DecisionRecord, announce: Callable[[], Awaitable[None]] | None = None
    ) -> Answer:
        number = await self._store_question(question)
        try:
            if announce is not None:
                await announce()
            with anyio.fail_after(self.timeout):
                return await self._await_answer(question, number)
        except TimeoutError:
            assert self.timeout is not None
            await self._close(question, number, TIMED_OUT)
            raise DecisionTimedOut(question.unit, self.timeout) from None
        except anyio.get_cancelled_exc_class():
            await self._close(question, number, WITHDRAWN)
            raise

    async def approved_before(self, run_id: str, unit: str, input_hash: str) -> Answer | None:
        past = await self._all(run_id)
        for record in reversed(past):
            if (
                record.kind == QuestionKind.APPROVAL
                and record.unit == unit
                and record.input_hash == input_hash
                and record.answer == APPROVE
            ):
                return Answer(record.answer, record.answered_by or "unknown")
        return None

    async def answer(
        self,
        run_id: str,
        step: str,
        kind: QuestionKind,
        value: str,
        by: str | None = None,
        *,
        changes: RetryValues | None = None,
    ) -> DecisionRecord:
        who = by or who_answers()
        changes = changes or RetryValues()
        if changes:
            check_retry_values(await self._workflow(run_id), value, changes, self.environ)
        kind = answered_question(await self._all(run_id), step, kind, value, changes)
        if self.store is not None:
            found = await self.store.answer_decision(
                run_id, step, kind.value, value, who, env=changes.env, params=changes.params
            )
        else:
            found = self._answer_locally(run_id, step, kind, value, who, changes=changes)
        if found is None:
            raise NothingWaits(run_id, step, kind)
        wakeup = self._wakeups.get((run_id, found.unit))
        if wakeup is not None:
            wakeup.set()
        return found

    # --- inside -----------------------------------------------------------------------

    async def _store_question(self, question: DecisionRecord) -> int:
        if self.store is not None:
            return await self.store.ask_decision(question)
        number = len(self._local) + 1
        self._local[number] = question
        return number

    async def _await_answer(self, question: DecisionRecord, number: int) -> Answer:
        key = (question.run_id, question.unit)
        while True:
            wakeup = self._wakeups[key] = anyio.Event()
            record = await self._find(question.run_id, number)
            if record is not None and record.answer is not None:
                by = record.answered_by or "unknown"
                return Answer(record.answer, by, RetryValues.of(record))
            with anyio.move_on_after(self.poll):
                await wakeup.wait()

    async def _find(self, run_id: str, number: int) -> DecisionRecord | None:
        if self.store is None:
            return self._local.get(number)
        return next((d for d in await self.store.decisions(run_id) if d.id == number), None)

    async def _all(self, run_id: str) -> list[DecisionRecord]:
        if self.store is None:
            return [d for d in self._local.values() if d.run_id == run_id]
        return await self.store.decisions(run_id)

    async def _workflow(self, run_id: str) -> Workflow:
        if self.workflow is not None:
            return self.workflow
        if self.store is None:
            raise RetryValuesRefused(["no workflow to check the changed values against"])
        record = await self.store.get_run(run_id)
        return Workflow.model_validate(record.definition, context={"checked": True})

    def _answer_locally(
        self,
        run_id: str,
        step: str,
        kind: QuestionKind,
        value: str,
        who: str,
        *,
        changes: RetryValues,
    ) -> DecisionRecord | None:
        for number, record in reversed(self._local.items()):
            names = record.unit == step or record.unit.startswith(step + "[")
            if record.run_id == run_id and record.kind == kind and record.waiting and names:
                answered = dataclasses.replace(
                    record,
                    answer=value,
                    answered_by=who,
                    answered_at=time.time(),
                    env=dict(changes.env),
                    params=dict(changes.params),
                )
                self._local[number] = answered
                return answered
        return None

    async def _close(self, question: DecisionRecord, number: int, how: str) -> None:
        """The run stops waiting: the question no longer takes answers."""
        with anyio.CancelScope(shield=True):
            if self.store is None:
                self._local.pop(number, None)
                return
            await self.store.answer_decision(
                question.run_id, question.unit, question.kind, how, "tempeh"
            )


def approval_hash(question: str, command: str | None, values: Mapping[str, str]) -> str:
    """What an approval is tied to: the confirm text, the rendered command and the values it
    will see. Changed inputs make another hash, and void the approval."""
    payload = json.dumps([question, command, dict(sorted(values.items()))], ensure_ascii=False)
    return hashlib.sha256(payload.encode()).hexdigest()


def who_answers() -> str:
    """`user@host (pid N)`: who gave an answer, as the history records it."""
    try:
        user = getpass.getuser()
    except (KeyError, OSError):
        user = str(os.getuid())
    return f"{user}@{socket.gethostname()} (pid {os.getpid()})"
