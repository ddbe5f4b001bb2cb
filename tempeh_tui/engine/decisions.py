"""Operator decisions (SPEC 5.2, 6): the one path every answer takes to a waiting run.

A unit that needs its operator (a failure under `on_failure: pause`, an approval gate not
approved in advance) asks a `Decisions` source and awaits the answer. `DecisionDesk` stores the
question (when the run has a store) and waits for an answer given in this process
(`WorkflowEngine.decide`, the app) or by another one (`tempeh decide`, `tempeh approve`), which
it finds by polling the store.
"""

from __future__ import annotations

import getpass
import hashlib
import json
import os
import socket
import time
from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import Protocol

import anyio

from tempeh_tui.errors import TempehError
from tempeh_tui.store.base import DecisionRecord, Store

__all__ = [
    "APPROVE",
    "FAILURE_CHOICES",
    "Answer",
    "Decision",
    "DecisionDesk",
    "DecisionTimedOut",
    "Decisions",
    "NothingWaits",
    "QuestionKind",
    "approval_hash",
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


@dataclass(frozen=True)
class Answer:
    value: str
    by: str


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


class Decisions(Protocol):
    """Where a run's questions go and its answers come from."""

    @property
    def can_ask(self) -> bool:
        """Whether anyone can answer: if not, `pause` acts as `abort` and gates fail."""
        ...

    async def ask(self, question: DecisionRecord) -> Answer:
        """Wait for the answer; raises DecisionTimedOut."""
        ...

    async def approved_before(self, run_id: str, unit: str, input_hash: str) -> Answer | None:
        """A stored approval of this gate for the same rendered inputs, if there is one."""
        ...

    async def answer(
        self, run_id: str, step: str, kind: QuestionKind, value: str, by: str | None = None
    ) -> DecisionRecord:
        """Answer a waiting question; raises NothingWaits."""
        ...


class DecisionDesk:
    """Questions stored (with a store) and answered from this process or another one.

    `wait=False` is headless with nobody to ask; `timeout` (seconds, None: forever) bounds
    each wait.
    """

    def __init__(
        self,
        store: Store | None,
        *,
        wait: bool = False,
        timeout: float | None = None,
        poll: float = POLL_INTERVAL,
    ) -> None:
        self.store = store
        self.wait = wait
        self.timeout = timeout
        self.poll = poll
        self._local: dict[int, DecisionRecord] = {}  # without a store
        self._wakeups: dict[tuple[str, str], anyio.Event] = {}

    @property
    def can_ask(self) -> bool:
        return self.wait

    async def ask(self, question: DecisionRecord) -> Answer:
        number = await self._store_question(question)
        try:
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
        self, run_id: str, step: str, kind: QuestionKind, value: str, by: str | None = None
    ) -> DecisionRecord:
        who = by or who_answers()
        if self.store is not None:
            found = await self.store.answer_decision(run_id, step, kind.value, value, who)
        else:
            found = self._answer_locally(run_id, step, kind, value, who)
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
                return Answer(record.answer, record.answered_by or "unknown")
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

    def _answer_locally(
        self, run_id: str, step: str, kind: QuestionKind, value: str, who: str
    ) -> DecisionRecord | None:
        for number, record in reversed(self._local.items()):
            names = record.unit == step or record.unit.startswith(step + "[")
            if record.run_id == run_id and record.kind == kind and record.waiting and names:
                answered = DecisionRecord(
                    **{
                        **record.__dict__,
                        "answer": value,
                        "answered_by": who,
                        "answered_at": time.time(),
                    }
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
