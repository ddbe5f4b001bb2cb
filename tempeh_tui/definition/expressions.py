"""Expressions (`when`, `until`) and `{{ }}` templates, parsed and evaluated in Jinja2's sandbox.

Parsing happens at load time so that a typo fails validation, not a deployment half-way through.
Jinja2 is imported on first use: a workflow with no `{{ }}`, `when` or `until` never needs it
(~30 ms of every start).
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from functools import lru_cache
from typing import TYPE_CHECKING, Any, Final

if TYPE_CHECKING:
    from jinja2 import TemplateSyntaxError, nodes
    from jinja2.sandbox import ImmutableSandboxedEnvironment

__all__ = [
    "CONTEXT_NAMES",
    "EnvironmentView",
    "ExpressionError",
    "References",
    "evaluate",
    "jinja_globals",
    "parse_expression",
    "parse_template",
    "render_template",
    "template_expressions",
]

CONTEXT_NAMES: Final = frozenset(
    {"params", "env", "steps", "outputs", "item", "iteration", "run", "workflow"}
)
"""The names an expression may read (SPEC 1.1)."""

_DELIMITERS = ("{{", "{%", "{#")
_TEMPLATE_EXPR = re.compile(r"\{\{((?:[^}'\"]|'[^']*'|\"[^\"]*\"|\}(?!\}))*)\}\}")


class ExpressionError(ValueError):
    """An expression or template that does not parse, or reads a name that does not exist.
    `offset`: where in the text it was found in (a shell command), if known."""

    def __init__(self, message: str, offset: int | None = None) -> None:
        super().__init__(message)
        self.offset = offset


@dataclass(frozen=True)
class References:
    """What an expression reads: top-level names, `params.X`, and `steps['X']`."""

    names: frozenset[str] = frozenset()
    params: frozenset[str] = frozenset()
    steps: frozenset[str] = frozenset()
    env: frozenset[str] = frozenset()
    dynamic: frozenset[str] = field(default_factory=frozenset)
    """Names indexed by something other than a constant (`steps[x]`): cannot be checked."""

    def __or__(self, other: References) -> References:
        return References(
            self.names | other.names,
            self.params | other.params,
            self.steps | other.steps,
            self.env | other.env,
            self.dynamic | other.dynamic,
        )


@lru_cache(maxsize=1)
def _environment() -> ImmutableSandboxedEnvironment:
    from jinja2 import StrictUndefined
    from jinja2.sandbox import ImmutableSandboxedEnvironment

    return ImmutableSandboxedEnvironment(
        undefined=StrictUndefined, autoescape=False, keep_trailing_newline=True
    )


def _plain(source: str) -> bool:
    """Text without any Jinja delimiter: it renders as itself and reads nothing."""
    return not any(mark in source for mark in _DELIMITERS)


def jinja_globals() -> frozenset[str]:
    """Names Jinja provides itself (`range`, `dict`, ...), which expressions may use."""
    return frozenset(_environment().globals)


def _syntax_message(exc: TemplateSyntaxError, source: str) -> str:
    message = (exc.message or "syntax error").rstrip(".")
    if "')'" in message and ")" not in source:  # the parenthesis jinja wraps expressions in
        message = "unexpected end of the expression"
    return f"expression does not parse: {message} in '{source.strip()}'"


def _references(tree: nodes.Node) -> References:
    from jinja2 import meta, nodes

    names = frozenset(meta.find_undeclared_variables(tree))  # type: ignore[arg-type]
    found: dict[str, set[str]] = {"params": set(), "steps": set(), "env": set()}
    dynamic: set[str] = set()
    for node in tree.find_all((nodes.Getattr, nodes.Getitem)):
        assert isinstance(node, nodes.Getattr | nodes.Getitem)
        base = node.node
        if not (isinstance(base, nodes.Name) and base.name in found):
            continue
        if isinstance(node, nodes.Getattr):
            found[base.name].add(node.attr)
        elif isinstance(node.arg, nodes.Const) and isinstance(node.arg.value, str):
            found[base.name].add(node.arg.value)
        else:
            dynamic.add(base.name)
    return References(
        names,
        frozenset(found["params"]),
        frozenset(found["steps"]),
        frozenset(found["env"]),
        frozenset(dynamic),
    )


class EnvironmentView(dict[str, str]):
    """`env` as expressions read it: a variable that is not set reads as empty text, as
    `$CI` does in a shell (`when: "env.CI == 'true'"` is false where CI is unset; it failed
    the step)."""

    def __missing__(self, key: str) -> str:
        return ""


def _strip_braces(source: str) -> str:
    """`when: "{{ x }}"` means the same as `when: "x"`."""
    match = _TEMPLATE_EXPR.fullmatch(source.strip())
    return match.group(1) if match else source


@lru_cache(maxsize=4096)
def parse_expression(source: str) -> References:
    """Parse a bare expression (`when`, `until`); raise ExpressionError if it does not parse."""
    from jinja2 import TemplateSyntaxError, nodes

    text = _strip_braces(source)
    if not text.strip():
        raise ExpressionError("empty expression")
    try:
        tree = _environment().parse("{{ (" + text + "\n) }}")
        body = tree.body
        if len(body) != 1 or not isinstance(body[0], nodes.Output) or len(body[0].nodes) != 1:
            raise ExpressionError(f"expected one expression, got '{text.strip()}'")
        return _references_of(tree, text)
    except TemplateSyntaxError as exc:
        raise ExpressionError(_syntax_message(exc, text)) from None
    except RecursionError:
        raise ExpressionError(_TOO_DEEP) from None


@lru_cache(maxsize=4096)
def parse_template(source: str) -> References:
    """Parse a string that may hold `{{ }}` (and `{% %}`) parts."""
    if _plain(source):
        return References()
    from jinja2 import TemplateSyntaxError

    try:
        return _references_of(_environment().parse(source), source)
    except TemplateSyntaxError as exc:
        raise ExpressionError(_syntax_message(exc, source)) from None
    except RecursionError:
        raise ExpressionError(_TOO_DEEP) from None


_TOO_DEEP = "expression nested too deeply (or too long a chain of operators) to parse"


def _references_of(tree: nodes.Template, source: str) -> References:
    """`_references`, with what only compiling finds (an unknown filter or test) as an
    ExpressionError."""
    from jinja2 import TemplateSyntaxError

    try:
        refs = _references(tree)
    except TemplateSyntaxError as exc:  # TemplateAssertionError: "No filter named 'x'."
        raise ExpressionError(_syntax_message(exc, source)) from None
    unknown = _unknown_filters_and_tests(tree)
    if unknown:
        raise ExpressionError(f"expression does not parse: {unknown} in '{source.strip()}'")
    return refs


# the filters that take a filter's or a test's name as their first argument
_NAMING_FILTERS = {"map": "filter", "select": "test", "reject": "test"}
_NAMING_ATTR_FILTERS = {"selectattr": "test", "rejectattr": "test"}


def _unknown_filters_and_tests(tree: nodes.Template) -> str | None:
    """What compiling lets through to run time: a filter or test in an `if` (Jinja defers
    those), or named as text (`map('upper')`, `select('odd')`, `selectattr('x', 'odd')`)."""
    from jinja2 import nodes

    env = _environment()
    known = {"filter": env.filters, "test": env.tests}
    for node in tree.find_all((nodes.Filter, nodes.Test)):
        kind = "filter" if isinstance(node, nodes.Filter) else "test"
        name = node.name
        if name not in known[kind]:
            return f"No {kind} named '{name}'"
        position = 0 if name in _NAMING_FILTERS else 1 if name in _NAMING_ATTR_FILTERS else -1
        named = _NAMING_FILTERS.get(name) or _NAMING_ATTR_FILTERS.get(name)
        if not (kind == "filter" and named and len(node.args) > position >= 0):
            continue
        arg = node.args[position]  # (map(attribute='x') takes a keyword: not looked at)
        text = arg.value if isinstance(arg, nodes.Const) else None
        if isinstance(text, str) and text not in known[named]:
            return f"No {named} named '{text}' (in {name})"
    return None


def template_expressions(source: str) -> Iterator[re.Match[str]]:
    """Each `{{ expr }}` in `source`, as a match whose group 1 is the expression."""
    return _TEMPLATE_EXPR.finditer(source)


def evaluate(source: str, context: Mapping[str, Any]) -> Any:
    """Evaluate a bare expression in the sandbox."""
    from jinja2 import TemplateSyntaxError, Undefined

    try:
        # keep Undefined (not None) so that `outputs.missing` fails instead of reading as false
        compiled = _environment().compile_expression(_strip_braces(source), undefined_to_none=False)
        result = compiled(**context)
        if isinstance(result, Undefined):
            result._fail_with_undefined_error()
        return result
    except TemplateSyntaxError as exc:
        raise ExpressionError(_syntax_message(exc, source)) from None
    except Exception as exc:  # user expression: any failure is the expression's
        raise ExpressionError(f"'{source.strip()}' failed: {exc}") from exc


def render_template(source: str, context: Mapping[str, Any]) -> str:
    """Render a `{{ }}` template string in the sandbox."""
    if _plain(source):
        return source
    from jinja2 import TemplateSyntaxError

    try:
        return _environment().from_string(source).render(**context)
    except TemplateSyntaxError as exc:
        raise ExpressionError(_syntax_message(exc, source)) from None
    except Exception as exc:  # user template: any failure is the template's
        raise ExpressionError(f"'{source.strip()}' failed: {exc}") from exc
