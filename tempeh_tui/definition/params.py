"""Param values for a run: given with `-p NAME=VALUE`, else the declared default."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from tempeh_tui.definition.checks import param_env_name
from tempeh_tui.definition.models import Workflow
from tempeh_tui.definition.shell_template import CODE_IN_BRACKETS, expands_as_code
from tempeh_tui.definition.suggest import did_you_mean
from tempeh_tui.definition.yaml_reader import SourceMap
from tempeh_tui.errors import Problem, WorkflowError

__all__ = ["parse_param_assignments", "resolve_params"]


def parse_param_assignments(pairs: list[str], flag: str = "-p") -> dict[str, str]:
    """`["a=1", "b=x=y"]` → `{"a": "1", "b": "x=y"}`; raise WorkflowError on a missing `=`."""
    out: dict[str, str] = {}
    for pair in pairs:
        name, sep, value = pair.partition("=")
        if not sep or not name:
            raise WorkflowError.single(f"{flag} {pair}: expected NAME=VALUE", "<command line>")
        out[name.strip()] = value
    return out


def resolve_params(workflow: Workflow, given: Mapping[str, Any]) -> dict[str, Any]:
    """Every declared param's value; raise WorkflowError listing all that are unknown,
    not among their choices, or required without a value."""
    smap = workflow.source_map or SourceMap("<workflow>")
    declared = workflow.params
    problems: list[Problem] = []
    values: dict[str, Any] = {}
    for name in given:
        if name not in declared:
            hint = did_you_mean(name, declared) or (
                f" (declared: {', '.join(declared)})" if declared else " (it declares none)"
            )
            problems.append(
                Problem(
                    f"-p {name}: workflow '{workflow.name}' has no param '{name}'{hint}",
                    smap.source,
                )
            )
    for name, param in declared.items():
        value = given.get(name, param.default)
        if isinstance(value, str) and _is_boolean(param.default, param.choices):
            flag = _BOOLEAN_WORDS.get(value.strip().lower())
            if flag is None:
                problems.append(
                    smap.problem(
                        f"param '{name}' is a boolean, so '{value}' is not a value for it: "
                        "give true or false",
                        ("params", name),
                        key=True,
                    )
                )
                continue
            value = flag
        if isinstance(value, str) and expands_as_code(value):
            problems.append(
                smap.problem(
                    f"param '{name}' holds {CODE_IN_BRACKETS} (every step gets it as "
                    f"${param_env_name(name)}); tempeh refuses such a value",
                    ("params", name),
                    key=True,
                )
            )
            continue
        if value is None:
            if param.required:
                problems.append(
                    smap.problem(
                        f"param '{name}' is required and has no value: give it with "
                        f"-p {name}=VALUE"
                        + (f" (one of {_choices(param.choices)})" if param.choices else ""),
                        ("params", name),
                        key=True,
                    )
                )
            values[name] = None
            continue
        if param.choices is not None and _shown(value) not in {_shown(c) for c in param.choices}:
            problems.append(
                smap.problem(
                    f"param '{name}' is '{_shown(value)}', expected one of "
                    f"{_choices(param.choices)}",
                    ("params", name),
                    key=True,
                )
            )
        values[name] = value
    if problems:
        raise WorkflowError(problems)
    return values


_BOOLEAN_WORDS = {
    **dict.fromkeys(("true", "yes", "on", "1"), True),
    **dict.fromkeys(("false", "no", "off", "0"), False),
}
"""What `-p NAME=VALUE` may say for a boolean param (a default or choices of true/false)."""


def _is_boolean(default: Any, choices: tuple[Any, ...] | None) -> bool:
    if choices:
        return all(isinstance(c, bool) for c in choices)
    return isinstance(default, bool)


def _choices(choices: tuple[Any, ...] | None) -> str:
    return ", ".join(_shown(c) for c in choices or ())


def _shown(value: Any) -> str:
    """A value as YAML (and `-p`) writes it: `true`, not `True`."""
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)
