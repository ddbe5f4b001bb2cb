"""`{{ expr }}` in shell commands, made safe: each becomes a reference to an environment variable.

A value is never pasted into shell code. The command is split into literal text and expressions,
and each expression is replaced by `"${TEMPEH_X1}"` (outside quotes) or `${TEMPEH_X1}` (inside
double quotes or an unquoted heredoc), which the shell expands as data. Where the shell would
not expand a variable (single quotes, `$'...'`, a quoted heredoc) the template is an error.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from enum import Enum

from tempeh_tui.definition.expressions import (
    ExpressionError,
    parse_expression,
    template_expressions,
)
from tempeh_tui.definition.shell_handoff import (
    handed_to_an_interpreter,
    heredoc_read_as_code,
    innermost,
    pipelines,
    program_text_of,
    ssh_remote_command,
)

__all__ = [
    "CODE_IN_BRACKETS",
    "Quoting",
    "ShellTemplate",
    "expands_as_code",
    "parse_shell_template",
]


class Quoting(Enum):
    """The shell's quoting at the place of a `{{ }}`."""

    NONE = "none"
    DOUBLE = "double"
    SINGLE = "single"
    ANSI_C = "ansi-c"
    HEREDOC = "heredoc"
    QUOTED_HEREDOC = "quoted-heredoc"
    COMMENT = "comment"


_FORBIDDEN = {
    Quoting.SINGLE: "inside single quotes, where the shell would not expand it",
    Quoting.ANSI_C: "inside $'...' quotes, where the shell would not expand it",
    Quoting.QUOTED_HEREDOC: "inside a quoted heredoc, where the shell would not expand it",
}


def expands_as_code(value: str) -> bool:
    """Whether bash could run part of `value` as code where a script reads it as a number, a
    variable name or an array's items: an array subscript holding an expansion (`a[$(cmd)]`,
    `a[`cmd`]`, `a[$x]`, also in quotes, single ones included, or after an escaped `]`), a
    value starting with `[` holding one (a script may put the name before it: `N=a{{ x }}`),
    or a parenthesized list holding a command (`($(cmd))`, `arr=($(cmd))`: `declare -a`
    runs it). Subscripts are expanded wherever bash reads a value as arithmetic (`$(( ))`,
    `${v:N}`, `local -i`) or as a name (`[ -v ]`, `printf -v`, `unset`, `read`, namerefs),
    directly or through a variable that names it; those places can't all be told from a
    script, so such a value never reaches one (SPEC 1.1: no value becomes shell code). A `[`
    opens a subscript only after a name's character, as in bash: `^v[0-9]+$`, `[::1]:$PORT`
    or `price [about $5]` are fine."""
    if "$" not in value and "`" not in value:
        return False  # (most values: no character-by-character walk)
    if _LIST_WITH_COMMAND.search(value):
        return True
    depth, quote, escaped = 0, "", False
    for i, char in enumerate(value):
        if not depth:
            if char == "[" and (i == 0 or value[i - 1].isalnum() or value[i - 1] == "_"):
                depth = 1
        elif escaped:
            escaped = False
        elif char in "$`":
            return True  # expanded in a subscript whatever quotes surround it
        elif char == "\\":
            escaped = True
        elif quote:
            quote = "" if char == quote else quote
        elif char in "'\"":
            quote = char
        elif char == "[":
            depth += 1
        elif char == "]":
            depth -= 1
    return False


_LIST_WITH_COMMAND = re.compile(r"(?:^|=)\((?:[^)]*?)(?:\$[({]|`)")
"""`(` at the start or after `=`, then a command or parameter expansion: a list
`declare -a` would run."""


CODE_IN_BRACKETS = (
    "a '$' or '`' in an array subscript or a parenthesized list (as in a[$(cmd)] or "
    "($(cmd))), which bash runs as a command where a script uses the value as a number or a "
    "variable name"
)
_HEREDOC = re.compile(
    r"(?<!<)<<(?!<)-?[ \t]*(?:'([^'\n]+)'|\"([^\"\n]+)\"|\\?([A-Za-z_][A-Za-z0-9_]*))"
)

_SHELL = r"(?:[\w.+-]*/)?(?:(?:ba|da|z|k|mk|a)?sh)"
"""A shell, by name or path (`bash`, `/bin/sh`)."""


@dataclass(frozen=True)
class ShellTemplate:
    """A command split into literal text and expressions, with each expression's quoting."""

    literals: tuple[str, ...]  # one more than expressions
    expressions: tuple[str, ...]
    quoting: tuple[Quoting, ...]
    offsets: tuple[int, ...] = ()
    """Where each `{{` stands in the command (for errors that point into a long script)."""

    def render(self, values: Sequence[str], prefix: str = "TEMPEH_X") -> tuple[str, dict[str, str]]:
        """The command with variable references, and the environment that holds the values."""
        if len(values) != len(self.expressions):
            raise ValueError("one value per expression")
        out = [self.literals[0]]
        env: dict[str, str] = {}
        for i, (value, quoting) in enumerate(zip(values, self.quoting, strict=True), start=1):
            if "\0" in value:
                raise ExpressionError(
                    f"the value of '{{{{{self.expressions[i - 1]}}}}}' holds a NUL byte, "
                    "which cannot reach a shell command"
                )
            name = f"{prefix}{i}"
            env[name] = value
            ref = "${" + name + "}"
            out.append(f'"{ref}"' if quoting is Quoting.NONE else ref)
            out.append(self.literals[i])
        self._refuse_code(values)
        return "".join(out), env

    def _refuse_code(self, values: Sequence[str]) -> None:
        """No value may hold code for bash (`expands_as_code`), nor the values one after
        another (`N={{ a }}{{ b }}`, `"{{ a }} {{ b }}"`: how they meet in the script, in
        one word or not, is not told apart)."""
        for value, expr in zip(values, self.expressions, strict=True):
            if expands_as_code(value):
                raise ExpressionError(
                    f"the value of '{{{{ {expr} }}}}' holds {CODE_IN_BRACKETS}; "
                    "tempeh does not pass it to a shell command"
                )
        if len(values) > 1 and expands_as_code("".join(values)):
            exprs = " ".join(f"{{{{ {e} }}}}" for e in self.expressions)
            raise ExpressionError(
                f"the values of '{exprs}', one after another, hold {CODE_IN_BRACKETS}; "
                "tempeh does not pass them to a shell command"
            )


def parse_shell_template(command: str) -> ShellTemplate:
    """Split `command`; raise ExpressionError (with its `offset`) for expressions the shell
    would not expand, or that do not parse."""
    literals: list[str] = []
    expressions: list[str] = []
    quoting: list[Quoting] = []
    offsets: list[int] = []
    scanner = _QuoteScanner()
    pos = 0
    for match in template_expressions(command):
        literal = command[pos : match.start()]
        _refuse_statements(literal, pos)
        scanner.feed(literal)
        state = scanner.state
        expr = match.group(1).strip()
        if state in _FORBIDDEN:
            raise ExpressionError(
                f"'{{{{ {expr} }}}}' is {_FORBIDDEN[state]}; "
                "use double quotes or no quotes around it",
                match.start(),
            )
        if state is Quoting.HEREDOC and scanner.in_a_script:
            raise ExpressionError(
                f"'{{{{ {expr} }}}}' is in a heredoc that a shell reads as its script, where "
                "bash evaluates a value as code even from a variable; pass the value as an "
                "argument instead (bash -s -- {{ value }} <<'EOF', then \"$1\" in the script; "
                "through ssh, from the step's env, quoted with printf %q)",
                match.start(),
            )
        try:
            parse_expression(expr)
        except ExpressionError as exc:
            raise ExpressionError(str(exc), match.start()) from None
        literals.append(literal)
        expressions.append(expr)
        quoting.append(state)
        offsets.append(match.start())
        pos = match.end()
    tail = command[pos:]
    _refuse_statements(tail, pos)
    literals.append(tail)
    _refuse_arithmetic(literals, expressions, offsets, quoting)
    return ShellTemplate(tuple(literals), tuple(expressions), tuple(quoting), tuple(offsets))


_ARITH_OPERATOR = re.compile(r"(^|\s)-(eq|ne|lt|le|gt|ge)(\s|$)")
_COMMAND_START = r"(?:^|[\n;&|(!{]|\bthen|\bdo|\belse)\s*"
_INTEGER_DECLARATION = re.compile(
    _COMMAND_START + r"(let|(?:declare|typeset|local|export|readonly)\s+-\w*i\w*)\s"
)
_NAME_PLACES = (
    # (what is at the end of the text before the braces, what bash reads there)
    (re.compile(r"(?:\[\[?|\btest)\s+(?:!\s+)?-v\s+[^\s;&|]*$"), "the name after -v"),
    (
        re.compile(_COMMAND_START + r"printf\s+-v\s+[^\s;&|]*$"),
        "the name after printf -v",
    ),
    (
        re.compile(_COMMAND_START + r"(?:declare|typeset|local)\s+-\w*n\w*\s+[^\n;&|]*$"),
        "a nameref",
    ),
    (
        re.compile(_COMMAND_START + r"(?:unset|read|mapfile|readarray)\b[^\n;&|<]*$"),
        "a variable name",
    ),
    (
        re.compile(_COMMAND_START + r"(?:(?:command|builtin)\s+)?eval\b[^\n;&|]*$"),
        "the text of an eval",
    ),
    (re.compile(_COMMAND_START + r"trap\s+[^\n;&|]*$"), "the text of a trap"),
    (
        re.compile(
            _COMMAND_START + r"(?:declare|typeset|local|readonly)\s+-\w*[aA]\w*\s+[^\n;&|]*$"
        ),
        "an array declaration, which reads a value in parentheses as a list of assignments",
    ),
    (
        re.compile(r"\b(?:ba|da|z|k)?sh\s+(?:-\w+\s+)*-\w*c\s+(?:\"[^\"]*|[^\s;&|'\"]*)$"),
        "the script of a sh -c",
    ),
    (
        re.compile(_COMMAND_START + r"(?:declare|typeset|local|export|readonly)\b[^\n;&|=]*$"),
        "a variable name",
    ),
)
_HINTS = {
    "the text of an eval": "run the command directly, without eval",
    "the text of a trap": "have the trap call a function that reads the value from a variable",
    "a script a shell reads from a here-string": "run the commands directly",
    "a script piped into a shell": "run the commands directly",
    "a script a shell reads from a process substitution": "run the commands directly",
    "the command line ssh hands the remote shell": (
        "ssh joins its arguments into a command line the remote shell parses: set the value "
        'in the step\'s env (env: {V: "{{ value }}"}) and quote it for the remote shell: '
        'ssh host "deploy $(printf %q "$V")"'
    ),
    "the program text": (
        "pass the value as an argument or a variable instead: python3 -c 'import sys; "
        "print(sys.argv[1])' {{ value }}, awk -v v={{ value }} '...'"
    ),
    "the script of a sh -c": (
        "pass the value as an argument instead: bash -c '... \"$1\" ...' _ {{ value }}"
    ),
}
_OPEN_EXPANSION = re.compile(r"\$\{[^}]*$")
_SUBSTRING = re.compile(r"\$\{[A-Za-z_][A-Za-z0-9_]*(?:\[[^]]*\])?:(?![-=?+])[^}]*$")
_COMPOUND_ARRAY = re.compile(r"=\([^)]*\[$")


def _refuse_arithmetic(
    literals: list[str],
    expressions: list[str],
    offsets: list[int],
    quoting: list[Quoting],
) -> None:
    """Refuse `{{ }}` where bash evaluates a variable's value as arithmetic.

    There even a quoted `${X}` is evaluated as code (`X='a[$(cmd)]'; $((X))` runs cmd): inside
    `$(( ))`, `$[ ]`, `(( ))`, `let`, integer declarations, array subscripts, substring offsets
    (`${v:N}`) and `[[ ]]` with -eq, -lt and the like; and where bash reads a variable's name
    (`-v`, `printf -v`, `unset`, `read`, `declare NAME`, namerefs). The values themselves are
    checked too when they are rendered (`expands_as_code`): this is for a clear early error.
    """
    text = ""
    places: list[tuple[int, str]] = []
    for literal, expr in zip(literals, expressions, strict=False):
        text += literal
        places.append((len(text), expr))
        text += "0"  # stands for the value: a word, not an operator
    text += literals[-1]
    for (offset, expr), found_at, quotes in zip(places, offsets, quoting, strict=True):
        context = _arith_context(text, offset)
        if (
            context == "an array subscript"
            and quotes in (Quoting.DOUBLE, Quoting.HEREDOC)
            and not _OPEN_EXPANSION.search(text, 0, offset)
        ):
            context = None  # `echo "x[{{ v }}]"`: text in quotes, not a subscript
        if context is None:
            context = _read_as_a_script(text, offset)
        if context is not None:
            hint = _HINTS.get(
                "the program text" if context.startswith("the program text") else context,
                "compare with [ ] (test) instead, or check that the value is a number first "
                "(or pass a variable name literally)",
            )
            raise ExpressionError(
                f"'{{{{ {expr} }}}}' is in {context}, where bash evaluates a value as "
                f"code even from a variable; {hint}",
                found_at,
            )


_SHELL_READS_SUBSTITUTION = re.compile(
    r"(?:\bsource|(?:^|[\s;&|(])\.|(?<![\w-])" + _SHELL + r")\s+(?:-\w+\s+)*<?\s*<\([^)]*$"
)
"""`source <(...)`, `bash <(...)`, `bash < <(...)`: a shell's script from a substitution."""


def _read_as_a_script(text: str, offset: int) -> str | None:
    """Whether the value at `offset` reaches another interpreter as code (`shell_handoff`):
    piped into one (also from a group, or inside a command substitution), read through a
    process substitution or a here-string, or in the command line ssh hands the remote
    shell."""
    start, line = _logical_line(text, offset)
    at = offset - start
    inner_start, inner, _ = innermost(line, at)
    if inner_start:  # `out=$(echo "{{ v }}" | bash)`: its own command line
        line, at = inner, at - inner_start
    for pipeline in pipelines(line):
        index = pipeline.index_at(at)
        if index is None:
            continue
        command, begins = pipeline.commands[index], pipeline.starts[index]
        if any(handed_to_an_interpreter(c) for c in pipeline.commands[index + 1 :]):
            return "a script piped into a shell"
        if _group_pipes_into_one(line, at):
            return "a script piped into a shell"
        if any(_substitution_runs_it(c) for c in pipeline.commands[index:]):
            return "a script a shell reads from a process substitution"
        if "<<<" in command[: at - begins] and handed_to_an_interpreter(command):
            return "a script a shell reads from a here-string"
        if ssh_remote_command(command, at - begins):
            return "the command line ssh hands the remote shell"
        if (program := program_text_of(command, at - begins)) is not None:
            return program
        break
    if _SHELL_READS_SUBSTITUTION.search(text, text.rfind("\n", 0, offset) + 1, offset):
        return "a script a shell reads from a process substitution"
    return None


def _group_pipes_into_one(line: str, at: int) -> bool:
    """`{ echo "{{ v }}"; } | bash`, `(echo "{{ v }}") | sh`: the group `at` is in pipes its
    output into an interpreter."""
    depth = 0
    for match in re.finditer(r"(?:^|(?<=[\s;&|(]))[{(](?=\s|\S)|[})](?=\s*\|)", line[:at]):
        depth += 1 if match.group() in "({" else -1
    if depth <= 0:
        return False
    for match in re.finditer(r"[})]\s*(\|&?)", line[at:]):
        after = line[at + match.end() :]
        commands = pipelines(after)
        if commands and commands[0].commands and handed_to_an_interpreter(commands[0].commands[0]):
            return True
    return False


def _substitution_runs_it(command: str) -> bool:
    """`tee >(bash)`: a process substitution that runs what it is written."""
    return any(handed_to_an_interpreter(inner) for inner in re.findall(r">\(([^()]*)\)", command))


def _logical_line(text: str, offset: int) -> tuple[int, str]:
    """The command line around `offset` (where it starts, and its text): over backslash-
    newlines and over a newline after a trailing `|`, both turned into spaces (so that
    offsets in it are offsets in `text` less its start)."""
    start = text.rfind("\n", 0, offset) + 1
    while start > 0:
        before = text[text.rfind("\n", 0, start - 1) + 1 : start - 1]
        if not (before.endswith("\\") or before.rstrip().endswith(("|", "|&"))):
            break
        start = text.rfind("\n", 0, start - 1) + 1
    end = offset
    while True:
        newline = text.find("\n", end)
        if newline < 0:
            end = len(text)
            break
        physical = text[start:newline]
        if physical.endswith("\\") or physical.rstrip().endswith(("|", "|&")):
            end = newline + 1
            continue
        end = newline
        break
    line = text[start:end].replace("\\\n", "  ")
    line = re.sub(r"(\|&?[ \t]*)\n", lambda m: m.group(1) + " ", line)
    return start, line


def _arith_context(text: str, offset: int) -> str | None:
    """The arithmetic context around `offset` in `text`, if any."""
    stack: list[tuple[str, int]] = []
    i = 0
    while i < offset:
        two = text[i : i + 2]
        if two == "((":
            stack.append(("$(( ))" if text[i - 1 : i] == "$" else "(( ))", i))
            i += 2
            continue
        if two == "))" and stack and stack[-1][0] in ("$(( ))", "(( ))"):
            stack.pop()
            i += 2
            continue
        if two == "[[":
            stack.append(("[[ ]]", i))
            i += 2
            continue
        if two == "]]" and stack and stack[-1][0] == "[[ ]]":
            stack.pop()
            i += 2
            continue
        ch = text[i]
        if ch == "[" and i > 0 and text[i - 1] == "$":
            stack.append(("$[ ]", i))
        elif ch == "[" and _subscript_opens(text, i):
            stack.append(("an array subscript", i))
        elif ch == "]" and stack and stack[-1][0] in ("an array subscript", "$[ ]"):
            stack.pop()
        i += 1
    if stack:
        kind, start = stack[-1]
        if kind != "[[ ]]":
            return kind
        end = text.find("]]", offset)
        if _ARITH_OPERATOR.search(text[start + 2 : end if end >= 0 else len(text)]):
            return "[[ ]] with an arithmetic comparison"
    line = text[text.rfind("\n", 0, offset) + 1 : offset]
    if _SUBSTRING.search(line):
        return "a substring offset (${v:N})"
    if _INTEGER_DECLARATION.search(line):
        return "let (or an integer declaration)"
    for pattern, place in _NAME_PLACES:
        if pattern.search(line):
            return place
    return None


def _subscript_opens(text: str, i: int) -> bool:
    """Whether the `[` at `i` opens an array subscript: `name[`, or `([` / ` [` in `a=(...)`."""
    before = text[i - 1] if i else ""
    return before.isalnum() or before in ("_", "(") or bool(_COMPOUND_ARRAY.search(text, 0, i + 1))


def _refuse_statements(literal: str, at: int) -> None:
    for opener in ("{{", "{%"):
        if opener in literal:
            raise ExpressionError(
                f"unclosed or unsupported '{opener}' in a shell command; "
                "only {{ expression }} is allowed there",
                at + literal.index(opener),
            )


@dataclass
class _Level:
    """One quoting level: the top level, or the inside of `$(...)` or backticks."""

    kind: str  # "top", "$(" or "`"
    quote: str = ""  # "", "'", '"' or "$'"
    parens: int = 0


class _QuoteScanner:
    """Tracks bash's quoting across text fed in pieces, enough to place each `{{ }}`.

    Knows single, double and $'...' quotes, backslash escapes, comments, $(...) and backticks
    (which open a fresh quoting level even inside double quotes) and heredocs.
    """

    def __init__(self) -> None:
        self._levels = [_Level("top")]
        self._escape = False
        self._comment = False
        self._prev = "\n"
        self._line = ""
        self._quoted: list[bool] = []  # per character of `_line`: read inside quotes
        self._pending_heredocs: list[tuple[str, bool, bool]] = []
        # delimiter, quoted, read as a script (`bash <<EOF`: see `heredoc_read_as_code`)
        self._heredoc: tuple[str, bool, bool] | None = None

    @property
    def in_a_script(self) -> bool:
        """Whether the heredoc being read is read as a script (`bash <<EOF`)."""
        return self._heredoc is not None and self._heredoc[2]

    @property
    def state(self) -> Quoting:
        if self._heredoc is not None:
            return Quoting.QUOTED_HEREDOC if self._heredoc[1] else Quoting.HEREDOC
        if self._comment:
            return Quoting.COMMENT
        return _QUOTING[self._levels[-1].quote]

    def feed(self, text: str) -> None:
        for ch in text:
            self._char(ch)
            self._prev = ch

    def _char(self, ch: str) -> None:
        if ch == "\n" and self._heredoc is not None:
            if self._line.lstrip("\t") == self._heredoc[0]:
                self._heredoc = self._pending_heredocs.pop(0) if self._pending_heredocs else None
            self._line = ""
            self._quoted.clear()
            return
        if self._heredoc is not None:
            self._line += ch
            return
        if self._comment:
            if ch == "\n":
                self._comment = False
                self._end_line()
            return
        self._line += ch
        level = self._levels[-1]
        self._quoted.append(bool(level.quote) or self._escape)
        if self._escape:
            self._escape = False
        elif level.quote == "'":
            if ch == "'":
                level.quote = ""
        elif level.quote == "$'":
            if ch == "\\":
                self._escape = True
            elif ch == "'":
                level.quote = ""
        elif level.quote == '"':
            if ch == "\\":
                self._escape = True
            elif ch == '"':
                level.quote = ""
            elif (ch == "(" and self._prev == "$") or ch == "`":
                self._levels.append(_Level("$(" if ch == "(" else "`"))
        else:
            self._unquoted(level, ch)

    def _unquoted(self, level: _Level, ch: str) -> None:
        if ch == "\\":
            self._escape = True
        elif ch == "'":
            level.quote = "$'" if self._prev == "$" else "'"
        elif ch == '"':
            level.quote = '"'
        elif ch == "#" and self._prev in " \t\n;&|()":
            self._comment = True
        elif ch == "(":
            if self._prev == "$":
                self._levels.append(_Level("$("))
            else:
                level.parens += 1
        elif ch == ")":
            if level.parens:
                level.parens -= 1
            elif level.kind == "$(":
                self._levels.pop()
        elif ch == "`":
            if level.kind == "`":
                self._levels.pop()
            else:
                self._levels.append(_Level("`"))
        elif ch == "\n":  # (also inside `$( )`: a heredoc there starts on the next line)
            self._end_line()

    def _end_line(self) -> None:
        for match in _HEREDOC.finditer(self._line):
            if self._quoted[match.start()]:
                continue  # `echo "a <<X"`: text, not a heredoc
            quoted = match.group(3) is None or "\\" in match.group(0)
            delimiter = match.group(1) or match.group(2) or match.group(3)
            read = heredoc_read_as_code(self._line, match.start())
            self._pending_heredocs.append((delimiter, quoted, read))
        self._line = ""
        self._quoted.clear()
        if self._pending_heredocs:
            self._heredoc = self._pending_heredocs.pop(0)


_QUOTING = {
    "": Quoting.NONE,
    "'": Quoting.SINGLE,
    '"': Quoting.DOUBLE,
    "$'": Quoting.ANSI_C,
}
