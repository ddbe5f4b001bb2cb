"""Load a workflow from a file, YAML text or a dict, reporting every problem with its place."""

from __future__ import annotations

import os
import types
import typing
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from pydantic import BaseModel, TypeAdapter, ValidationError
from pydantic_core import ErrorDetails

from tempeh_tui.definition.checks import Finding, WorkflowParts, check_parts
from tempeh_tui.definition.models import STEP_ALIASES, RollbackSpec, Step, Workflow
from tempeh_tui.definition.suggest import did_you_mean
from tempeh_tui.definition.types import Count, Text
from tempeh_tui.definition.yaml_reader import (
    DocPath,
    PlainFloat,
    PlainInt,
    SourceMap,
    YamlDocument,
    format_path,
    read_yaml_file,
    read_yaml_text,
)
from tempeh_tui.errors import Problem, WorkflowError

__all__ = ["load_workflow", "parse_workflow"]

WorkflowSource = Workflow | Mapping[str, Any] | str | os.PathLike[str]


def load_workflow(source: WorkflowSource) -> Workflow:
    """A validated `Workflow` from a path, a dict (the seed's form included) or a `Workflow`.

    Raises `WorkflowError` carrying every problem found, each with its file position.
    """
    if isinstance(source, Workflow):
        return source
    if isinstance(source, Mapping):
        return _build(dict(source), SourceMap("<dict>"), [])
    return _from_document(read_yaml_file(Path(source)))


def parse_workflow(text: str, source: str = "<string>") -> Workflow:
    """A validated `Workflow` from YAML text."""
    return _from_document(read_yaml_text(text, source))


def _from_document(doc: YamlDocument) -> Workflow:
    name = doc.source_map.source
    if doc.data is None:
        raise WorkflowError(
            [
                *doc.problems,
                Problem("the file is empty; expected a workflow with name and steps", name, 1, 1),
            ]
        )
    if not isinstance(doc.data, dict):
        line, col = doc.source_map.locate(()) or (1, 1)
        raise WorkflowError(
            [
                Problem(
                    f"expected a mapping (name:, steps:, ...) at the top level, found "
                    f"{_kind(doc.data)}",
                    name,
                    line,
                    col,
                )
            ]
        )
    return _build(doc.data, doc.source_map, doc.problems)


def _build(data: dict[str, Any], source_map: SourceMap, problems: list[Problem]) -> Workflow:
    problems = list(problems)
    try:
        workflow = Workflow.model_validate(data, context={"checked": True})
    except ValidationError as exc:
        problems.extend(_validation_problems(exc, data, source_map))
        problems.extend(_located(check_parts(_salvage(data)), data, source_map))
        raise WorkflowError(problems) from None
    parts = WorkflowParts(
        steps=list(enumerate(workflow.steps)),
        resources=workflow.resources,
        params=workflow.params.keys(),
        env=workflow.env,
    )
    problems.extend(_located(check_parts(parts), data, source_map))
    if problems:
        raise WorkflowError(problems)
    workflow._source_map = source_map
    return workflow


def _located(findings: list[Finding], data: dict[str, Any], source_map: SourceMap) -> list[Problem]:
    return [
        source_map.problem(f.message, _source_path(f.path, data), key=f.key, at=f.at)
        for f in findings
    ]


def _salvage(data: dict[str, Any]) -> WorkflowParts:
    """The parts of an invalid workflow that are valid, so cross-checks still run on them."""
    raw_steps = data.get("steps")
    steps: list[tuple[int, Step]] = []
    invalid: list[str] = []
    dropped: dict[int, frozenset[str]] = {}
    for index, raw in enumerate(raw_steps if isinstance(raw_steps, list) else []):
        step, dropped[index] = _salvage_step(raw)
        if step is not None:
            steps.append((index, step))
        elif isinstance(raw, dict) and isinstance(raw.get("name"), str):
            invalid.append(raw["name"])
    resources: Mapping[str, int] | None
    try:
        resources = TypeAdapter(dict[Text, Count]).validate_python(data.get("resources") or {})
    except ValidationError:
        resources = None
    params = data.get("params")
    env = data.get("env")
    return WorkflowParts(
        steps=steps,
        resources=resources,
        params=list(params) if isinstance(params, dict) else (),
        env=env if isinstance(env, dict) else {},
        invalid_step_names=invalid,
        dropped=dropped,
    )


def _salvage_step(raw: Any) -> tuple[Step | None, frozenset[str]]:
    """The step without the keys that are wrong in it (their errors are reported already)."""
    dropped: set[str] = set()
    if not isinstance(raw, dict):
        return None, frozenset()
    data = dict(raw)
    for _ in range(3):
        try:
            return Step.model_validate(data, context={"salvage": True}), frozenset(dropped)
        except ValidationError as exc:
            locs = [e["loc"] for e in exc.errors()]
            if any(not loc or loc[0] == "name" for loc in locs):
                return None, frozenset()  # nothing to check without a name
            bad = {str(loc[0]) for loc in locs}
            for key in bad:
                name = STEP_ALIASES.get(key, key)
                dropped.add(name)
                data.pop(key, None)
                data.pop(name, None)
                data.pop(next((a for a, n in STEP_ALIASES.items() if n == key), ""), None)
    return None, frozenset()


# --- pydantic errors, in the operator's words -------------------------------------------------


def _validation_problems(
    exc: ValidationError, data: dict[str, Any], source_map: SourceMap
) -> list[Problem]:
    out = []
    errors = exc.errors(include_url=False)
    inner = {tuple(e["loc"])[:n] for e in errors for n in range(len(e["loc"]))}
    for error in errors:
        loc = tuple(error["loc"])
        if error["type"] == "too_short" and loc in inner:
            continue  # `steps` "too short" only because its invalid steps were left out
        key_error = "[key]" in loc
        path: DocPath = tuple(p for p in loc if p != "[key]")
        message, on_key = _describe(error, path, data)
        out.append(source_map.problem(message, _source_path(path, data), key=on_key or key_error))
    return out


def _source_path(path: DocPath, data: dict[str, Any]) -> DocPath:
    """The path as written in the file (`command` where the model says `run`)."""
    if len(path) >= 3 and path[0] == "steps" and isinstance(path[1], int):
        raw = _at(data, path[:2])
        if isinstance(raw, dict):
            for alias, name in STEP_ALIASES.items():
                if path[2] == name and alias in raw:
                    return (*path[:2], alias, *path[3:])
            if path[2] == "exclusive" and "parallel" in raw and "exclusive" not in raw:
                return (*path[:2], "parallel", *path[3:])
    return path


def _at(data: Any, path: DocPath) -> Any:
    for part in path:
        try:
            data = data[part]
        except (KeyError, IndexError, TypeError):
            return None
    return data


def _where(path: DocPath, data: dict[str, Any]) -> tuple[str, DocPath]:
    """A phrase naming the thing at `path` (`step 'migrate-db'`) and the rest of the path."""
    if len(path) >= 2 and path[0] == "steps" and isinstance(path[1], int):
        name = _at(data, (*path[:2], "name"))
        label = f"step '{name}'" if isinstance(name, str) else f"step {path[1] + 1}"
        return label, path[2:]
    if len(path) >= 2 and path[0] == "params":
        return f"param '{path[1]}'", path[2:]
    if len(path) >= 2 and path[0] == "errors" and isinstance(path[1], int):
        return f"error rule {path[1] + 1}", path[2:]
    return "", path


def _describe(error: ErrorDetails, path: DocPath, data: dict[str, Any]) -> tuple[str, bool]:
    """The message for one pydantic error, and whether it points at a key."""
    where, rest = _where(path, data)
    kind = error["type"]
    value = error.get("input")
    on_key = False
    if kind == "extra_forbidden":
        key = str(path[-1])
        model = _model_at(path[:-1])
        allowed = _allowed_keys(model) if model else []
        hint = did_you_mean(key, allowed)
        nested = format_path(rest[:-1]) if where else ""
        inside = (
            f"{nested} of {where}" if nested else where or format_path(path[:-1]) or "the workflow"
        )
        msg = f"unknown key '{key}' in {inside}{hint}"
        if allowed and not hint:
            msg += f"; allowed: {', '.join(allowed)}"
        return msg, True
    if kind == "missing":
        key = str(path[-1])
        inside = where if len(rest) == 1 else format_path(path[:-1]) or "the workflow"
        return f"{inside or 'the workflow'} is missing required key '{key}'", False
    text = _message(kind, error, value)
    field = format_path(rest)
    prefix = ": ".join(p for p in (where, field) if p)
    return (f"{prefix}: {text}" if prefix else text), on_key


def _message(kind: str, error: ErrorDetails, value: Any) -> str:
    ctx = error.get("ctx") or {}
    if kind in {"value_error", "assertion_error"}:
        return str(ctx.get("error", error["msg"]))
    if kind == "string_type":
        return f"expected text, got {_kind(value)}"
    if kind in {"int_type", "int_parsing", "int_from_float"}:
        return f"expected a whole number, got {_shown(value)}"
    if kind in {"float_type", "float_parsing"}:
        return f"expected a number, got {_shown(value)}"
    if kind in {"bool_type", "bool_parsing"}:
        return f"expected true or false, got {_shown(value)}"
    if kind in {"dict_type", "model_type", "model_attributes_type"}:
        return f"expected a mapping, got {_kind(value)}"
    if kind in {"list_type", "tuple_type"}:
        return f"expected a list, got {_kind(value)}"
    if kind in {"enum", "literal_error"}:
        return f"expected one of {ctx.get('expected', '?')}, got {_shown(value)}"
    if kind in {"greater_than_equal", "greater_than", "less_than_equal", "less_than"}:
        return error["msg"].replace("Input should be", "must be") + f", got {_shown(value)}"
    if kind == "too_short" and isinstance(value, list | tuple) and not value:
        return "must not be empty"
    return error["msg"].replace("Input should be", "expected")


def _kind(value: Any) -> str:
    if value is None:
        return "nothing (null)"
    if isinstance(value, bool):
        return f"the boolean {str(value).lower()}"
    if isinstance(value, PlainInt | PlainFloat):
        return f"the number {value.raw}"
    if isinstance(value, int | float):
        return f"the number {value}"
    if isinstance(value, str):
        return f"the text {value!r}"
    if isinstance(value, dict):
        return "a mapping"
    if isinstance(value, list | tuple):
        return "a list"
    return type(value).__name__


def _shown(value: Any) -> str:
    if isinstance(value, PlainInt | PlainFloat):
        return value.raw
    if isinstance(value, str):
        return repr(value)
    return _kind(value) if isinstance(value, dict | list | type(None)) else str(value)


def _model_at(path: DocPath) -> type[BaseModel] | None:
    """The model class whose mapping sits at `path` (to list its allowed keys)."""
    current: Any = Workflow
    for part in path:
        if isinstance(current, type) and issubclass(current, BaseModel):
            if not isinstance(part, str) or part not in current.model_fields:
                return None
            current = current.model_fields[part].annotation
        else:  # a container: this part is an index or a key
            current = _element(current)
        current = _unwrap(current)
    return current if isinstance(current, type) and issubclass(current, BaseModel) else None


def _unwrap(tp: Any) -> Any:
    """Strip Optional and Annotated down to a model or a container type."""
    while True:
        origin = typing.get_origin(tp)
        if origin is typing.Annotated:
            tp = typing.get_args(tp)[0]
        elif origin in (typing.Union, types.UnionType):
            args = [a for a in typing.get_args(tp) if a is not type(None)]
            tp = args[0] if len(args) == 1 else tp
            if len(args) != 1:
                return tp
        else:
            return tp


def _element(tp: Any) -> Any:
    origin = typing.get_origin(tp)
    args = typing.get_args(tp)
    if origin is dict and len(args) == 2:
        return args[1]
    if origin in (tuple, list) and args:
        return args[0]
    return None


def _allowed_keys(model: type[BaseModel]) -> list[str]:
    keys = [info.alias or name for name, info in model.model_fields.items()]
    if model is Step:
        keys += [*STEP_ALIASES, "parallel"]
    if model is RollbackSpec:
        keys.append("command")
    return keys
