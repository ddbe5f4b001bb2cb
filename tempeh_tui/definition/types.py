"""Field types shared by the workflow models: text, counts, durations, names."""

from __future__ import annotations

import re
from typing import Annotated, Any

from pydantic import AfterValidator, BeforeValidator, Field

from tempeh_tui.definition.durations import (
    format_duration,
    format_elapsed,
    parse_duration,
)
from tempeh_tui.definition.yaml_reader import PlainFloat, PlainInt

__all__ = [
    "Count",
    "Duration",
    "EnvName",
    "NeedName",
    "ParamName",
    "ParamValue",
    "Percent",
    "StepName",
    "Text",
    "Timeout",
    "format_duration",
    "format_elapsed",
    "need_step",
    "parse_duration",
    "scalar_as_text",
]


def _text(value: Any) -> Any:
    """Accept text; accept a plain YAML number only if it reads back as written."""
    if isinstance(value, PlainInt | PlainFloat):
        canonical = str(int(value)) if isinstance(value, PlainInt) else repr(float(value))
        if value.raw == canonical:
            return value.raw
        raise ValueError(
            f"YAML reads {value.raw} as the number {canonical}; "
            f'write it in quotes ("{value.raw}") if you mean the text'
        )
    if isinstance(value, bool):
        word = "true" if value else "false"
        raise ValueError(f'expected text, got the boolean {word}; write it in quotes: "{word}"')
    if isinstance(value, int | float):
        return str(value)
    return _no_nul(value)


def _no_nul(value: Any) -> Any:
    """A NUL byte cannot be in a command, an argument or an environment variable."""
    if isinstance(value, str) and "\0" in value:
        raise ValueError("holds a NUL byte (\\0), which no command or environment can carry")
    return value


def scalar_as_text(value: Any) -> Any:
    """A number as the text a process sees (`TEMPEH_ITEM`, instance names), refused where YAML
    would not read it back as written (`010`, `1.10`, `1_000`); other values as they are."""
    if isinstance(value, PlainInt | PlainFloat):
        return _text(value)
    if isinstance(value, int | float) and not isinstance(value, bool):
        return str(value)
    if isinstance(value, dict):
        for item in value.values():
            _no_nul(item)
    return _no_nul(value)


def _count(value: Any) -> Any:
    """Refuse `010`: YAML 1.1 reads it as 8 and YAML 1.2 as 10; and a boolean, which would
    count as 1 or 0."""
    if isinstance(value, bool):
        raise ValueError(f"expected a whole number, got the boolean {str(value).lower()}")
    if isinstance(value, PlainInt) and re.fullmatch(r"[-+]?0[0-9]+", value.raw):
        raise ValueError(
            f"{value.raw} is ambiguous (octal 8 in YAML 1.1, decimal in 1.2); "
            "write it without the leading zero"
        )
    return value


def _param_value(value: Any) -> Any:
    if isinstance(value, PlainInt | PlainFloat):
        return _text(value)
    return _no_nul(value)


_STEP_NAME = re.compile(r"[^\s\[\],'\"{}]([^\[\],'\"{}]*[^\s\[\],'\"{}])?")


def _step_name(value: str) -> str:
    if not _STEP_NAME.fullmatch(value):
        raise ValueError(
            f"'{value}' is not a valid step name: use letters, digits and . _ - "
            "(no brackets, commas, quotes or surrounding spaces)"
        )
    return value


_NEED = re.compile(r"(?P<step>.+?)(\[[^\[\]]+\])?")


def need_step(value: str) -> str:
    """The step a need names: `deploy` for `deploy[eu-1]`."""
    match = _NEED.fullmatch(value)
    return match.group("step") if match is not None else value


def _need_name(value: str) -> str:
    """A step name, or one fan-out instance of it: `deploy[eu-1]`."""
    match = _NEED.fullmatch(value)
    if match is None or not _STEP_NAME.fullmatch(match.group("step")):
        raise ValueError(
            f"'{value}' is not a step name (or a fan-out instance such as 'deploy[eu-1]')"
        )
    return value


def _env_name(value: str) -> str:
    if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", value):
        raise ValueError(
            f"'{value}' is not an environment variable name: use letters, digits and _, "
            "not starting with a digit"
        )
    if value.startswith("TEMPEH_"):
        raise ValueError(
            f"'{value}': TEMPEH_* variables are tempeh's own (TEMPEH_RUN_ID, TEMPEH_STEP, "
            "TEMPEH_PARAM_<NAME>, ...), set for every step; choose another name"
        )
    return value


def _param_name(value: str) -> str:
    if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_.-]*", value):
        raise ValueError(
            f"'{value}' is not a param name: use letters, digits, _, - and ., starting with a "
            "letter or _ (a step sees it as $TEMPEH_PARAM_<NAME>, other characters as _)"
        )
    return value


Text = Annotated[str, BeforeValidator(_text)]
Count = Annotated[int, BeforeValidator(_count), Field(ge=1)]
Duration = Annotated[float, BeforeValidator(parse_duration)]
Timeout = Annotated[float, BeforeValidator(parse_duration), Field(gt=0)]
"""A time limit: `timeout: 0` would fail every attempt at once."""
Percent = Annotated[float, Field(gt=0, le=100)]
StepName = Annotated[str, BeforeValidator(_text), AfterValidator(_step_name)]
NeedName = Annotated[str, BeforeValidator(_text), AfterValidator(_need_name)]
EnvName = Annotated[str, AfterValidator(_env_name)]
ParamName = Annotated[str, AfterValidator(_param_name)]
ParamValue = Annotated[str | bool | int | float, BeforeValidator(_param_value)]
