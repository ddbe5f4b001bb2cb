"""Operator decisions in rows: one place for how both stores keep a question and its answer."""

from __future__ import annotations

import dataclasses
import json
import sqlite3
import time
from collections.abc import Iterable, Mapping
from typing import Any

from tempeh_tui.store.base import DecisionRecord
from tempeh_tui.store.sqlite_writer import immediate

__all__ = [
    "DECISION_COLUMNS",
    "SUPERSEDED",
    "SUPERSEDED_BY",
    "AnswerRequest",
    "answer_row",
    "decision_from_row",
    "decision_row",
    "pick_waiting",
    "sqlite_answer",
    "sqlite_ask",
]

DECISION_COLUMNS = (
    "run_id",
    "unit",
    "kind",
    "asked_at",
    "summary",
    "input_hash",
    "answer",
    "answered_by",
    "answered_at",
)


def decision_row(question: DecisionRecord) -> dict[str, Any]:
    return {column: getattr(question, column) for column in DECISION_COLUMNS}


def decision_from_row(row: Mapping[str, Any] | sqlite3.Row) -> DecisionRecord:
    return DecisionRecord(
        id=int(row["id"]),
        run_id=str(row["run_id"]),
        unit=str(row["unit"]),
        kind=str(row["kind"]),
        asked_at=float(row["asked_at"]),
        summary=str(row["summary"]),
        input_hash=row["input_hash"],
        answer=row["answer"],
        answered_by=row["answered_by"],
        answered_at=row["answered_at"],
        env=_texts(row["env"]),
        params=_texts(row["params"]),
    )


def _texts(column: str | None) -> dict[str, str]:
    """A JSON object column (NULL: nothing) as names and their text values."""
    if not column:
        return {}
    return {str(k): str(v) for k, v in json.loads(column).items()}


def _names(unit: str, name: str) -> bool:
    """`unit` names this unit: exactly, or as its step (`deploy` for `deploy[eu-1]`)."""
    return name == unit or name.startswith(unit + "[")


def pick_waiting(rows: Iterable[DecisionRecord], unit: str, kind: str) -> DecisionRecord | None:
    """The newest question of `kind` for `unit` that still waits."""
    waiting = [r for r in rows if r.waiting and r.kind == kind and _names(unit, r.unit)]
    return max(waiting, key=lambda r: r.id, default=None)


def answer_row(
    answer: str,
    answered_by: str,
    env: Mapping[str, str] | None = None,
    params: Mapping[str, str] | None = None,
) -> dict[str, Any]:
    """The fields an answer sets on its `DecisionRecord`."""
    return {
        "answer": answer,
        "answered_by": answered_by,
        "answered_at": time.time(),
        "env": dict(env or {}),
        "params": dict(params or {}),
    }


AnswerRequest = tuple[str, str, str, str, str, Mapping[str, str], Mapping[str, str]]
"""run_id, unit, kind, answer, answered_by, env, params"""


SUPERSEDED = "withdrawn"
"""The answer a question gets when its unit asks again (a resume asking a gate anew)."""
SUPERSEDED_BY = "a new question"


def sqlite_ask(db: sqlite3.Connection, question: DecisionRecord) -> int:
    """Store the question; one the same unit left open before is closed (it is asked anew)."""
    row = decision_row(question)
    with immediate(db):
        db.execute(
            "UPDATE decisions SET answer = ?, answered_by = ?, answered_at = ? "
            "WHERE run_id = ? AND unit = ? AND kind = ? AND answer IS NULL",
            (SUPERSEDED, SUPERSEDED_BY, time.time(), question.run_id, question.unit, question.kind),
        )
        cursor = db.execute(
            f"INSERT INTO decisions ({', '.join(row)}) VALUES ({', '.join('?' * len(row))})",
            tuple(row.values()),
        )
    assert cursor.lastrowid is not None
    return cursor.lastrowid


def sqlite_answer(db: sqlite3.Connection, request: AnswerRequest) -> DecisionRecord | None:
    """Answer the newest waiting question, atomically: two answers never both win."""
    run_id, unit, kind, answer, answered_by, env, params = request
    with immediate(db):
        rows = db.execute(
            "SELECT * FROM decisions WHERE run_id = ? AND answer IS NULL", (run_id,)
        ).fetchall()
        found = pick_waiting([decision_from_row(r) for r in rows], unit, kind)
        if found is None:
            return None
        values = answer_row(answer, answered_by, env, params)
        db.execute(
            "UPDATE decisions SET answer = ?, answered_by = ?, answered_at = ?, env = ?, "
            "params = ? WHERE id = ?",
            (
                values["answer"],
                values["answered_by"],
                values["answered_at"],
                _json(values["env"]),
                _json(values["params"]),
                found.id,
            ),
        )
    return dataclasses.replace(found, **values)


def _json(values: Mapping[str, str]) -> str | None:
    return json.dumps(values, ensure_ascii=False) if values else None
