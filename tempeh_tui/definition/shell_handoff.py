"""Where a script hands text to another interpreter, which runs it as code.

A `{{ }}` becomes `"${TEMPEH_X1}"`: data to the shell that runs the step. But a script can give
what it prints or reads to another program that runs it: `echo "{{ v }}" | bash`, a heredoc
`bash` reads, `ssh host "deploy {{ v }}"` (ssh joins its arguments into a command line for the
remote shell). There the value is code again. This module finds the known ways in a command
line, with bash's quoting, pipes and lists understood well enough to tell `sed 's|a|b|'` from a
pipe. It is a list kept by hand, not a proof: a script that writes a value into a file and
then runs that file is not seen.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

__all__ = ["Pipeline", "handed_to_an_interpreter", "heredoc_read_as_code", "pipelines"]

_INTERPRETERS = frozenset(
    {
        *("sh", "bash", "dash", "zsh", "ksh", "mksh", "ash", "fish"),
        *(
            "python",
            "python2",
            "python3",
            "perl",
            "ruby",
            "node",
            "php",
            "lua",
            "tclsh",
        ),
    }
)
"""Programs that run the script they read from their standard input when given none."""
_STDIN_SCRIPTS = frozenset({"-", "/dev/stdin", "/dev/fd/0", "/proc/self/fd/0"})
"""Script names that are standard input."""
_SCRIPT_OPTIONS = frozenset({"-c", "-e", "-m", "-E", "-r"})
"""Interpreter options whose argument is the program: the script is not read from stdin."""

_WRAPPERS: dict[str, frozenset[str]] = {
    # a command that runs the command after it, and its options that take an argument
    "env": frozenset({"-u", "-C", "-S", "--unset", "--chdir"}),
    "command": frozenset(),
    "builtin": frozenset(),
    "exec": frozenset({"-a"}),
    "nice": frozenset({"-n", "--adjustment"}),
    "nohup": frozenset(),
    "time": frozenset({"-f", "-o"}),
    "timeout": frozenset({"-k", "-s", "--kill-after", "--signal"}),
    "sudo": frozenset({"-u", "-g", "-C", "-h", "-p", "-r", "-t", "-U", "-D", "-R", "-T"}),
    "doas": frozenset({"-u", "-C"}),
    "runuser": frozenset({"-u", "-g", "-G", "-l"}),
    "stdbuf": frozenset({"-i", "-o", "-e"}),
    "setsid": frozenset(),
    "ionice": frozenset({"-c", "-n", "-p", "-t"}),
    "chrt": frozenset(),
    "flock": frozenset({"-w", "-E", "--timeout", "--conflict-exit-code"}),
    "xargs": frozenset({"-a", "-d", "-E", "-I", "-L", "-n", "-P", "-s", "--delimiter"}),
}
_POSITIONAL_BEFORE_COMMAND = {"flock": 1, "timeout": 1, "chrt": 1}
"""Arguments a wrapper takes before the command: a lock file, a duration, a priority."""
_ASSIGNMENT = re.compile(r"[A-Za-z_][A-Za-z0-9_]*=")
_REDIRECTION = re.compile(r"\d*(?:<|>|&>)")
_SEPARATE_TARGET = frozenset({"<", ">", ">>", "2>", "&>", "<>", "<<", "<<-", "<<<"})


@dataclass
class Pipeline:
    """Commands joined by `|` (or `|&`), with where each starts in the line it came from."""

    commands: list[str] = field(default_factory=list)
    starts: list[int] = field(default_factory=list)
    end: int = 0

    def index_at(self, offset: int) -> int | None:
        """The command that holds `offset`, if one of these does."""
        found = None
        for i, start in enumerate(self.starts):
            if start <= offset:
                found = i
        return found if found is not None and offset <= self.end else None


def pipelines(line: str) -> list[Pipeline]:
    """`line` cut into pipelines at unquoted `;`, `&&`, `||`, `&`, newlines and grouping
    (`(`, `)`, `{`, `}`), and each into commands at unquoted `|` and `|&`. Quotes, escapes,
    `$(...)`, backticks and process substitutions stay inside the command they are in."""
    out: list[Pipeline] = [Pipeline()]
    word_start = 0
    i, n = 0, len(line)

    def cut(at: int, pipe: bool) -> None:
        nonlocal word_start
        current = out[-1]
        current.commands.append(line[word_start:at])
        current.starts.append(word_start)
        current.end = at
        if not pipe:
            out.append(Pipeline())

    quote = ""
    while i < n:
        ch = line[i]
        if quote:
            if ch == "\\" and quote == '"':
                i += 2
                continue
            if ch == quote:
                quote = ""
            i += 1
            continue
        if ch == "\\":
            i += 2
            continue
        if ch in "'\"`":
            quote = ch
            i += 1
            continue
        two = line[i : i + 2]
        if two in ("$(", "<(", ">("):
            i = _closing(line, i + 1) + 1
            continue
        if two in ("||", "&&"):
            cut(i, pipe=False)
            i += 2
            word_start = i
            continue
        if ch == "|":
            cut(i, pipe=True)
            i += 2 if two == "|&" else 1
            word_start = i
            continue
        if ch == "&" and (two == "&>" or (i and line[i - 1] in "<>")):
            i += 1  # a redirection: `&>`, `2>&1`
            continue
        if ch in ";&\n(){}" and (ch not in "{}" or _stands_alone(line, i)):
            cut(i, pipe=False)
            i += 1
            word_start = i
            continue
        i += 1
    cut(n, pipe=False)
    return [p for p in out if any(c.strip() for c in p.commands)]


def _stands_alone(line: str, i: int) -> bool:
    """A `{` or `}` that groups commands is a word of its own (`${x}` and `{a,b}` are not)."""
    before = line[i - 1] if i else " "
    after = line[i + 1] if i + 1 < len(line) else " "
    return before in " \t\n;&|(" and (after in " \t\n;&|)" or line[i] == "{")


def _closing(line: str, i: int) -> int:
    """The `)` that closes the `(` at `i` (quotes and nesting followed), or the line's end."""
    depth, quote = 0, ""
    while i < len(line):
        ch = line[i]
        if quote:
            if ch == quote:
                quote = ""
        elif ch == "\\":
            i += 1
        elif ch in "'\"`":
            quote = ch
        elif ch == "(":
            depth += 1
        elif ch == ")":
            depth -= 1
            if depth == 0:
                return i
        i += 1
    return len(line) - 1


def _words(command: str) -> list[str]:
    """A command's words, without redirections and outer quotes (`'bash -s'` is one word)."""
    words: list[str] = []
    skip_next = False
    for word in re.findall(r"""(?:'[^']*'|"(?:\\.|[^"\\])*"|[^\s'"])+""", command):
        if skip_next:
            skip_next = False
            continue
        if _REDIRECTION.match(word):
            skip_next = word in _SEPARATE_TARGET  # its target is the next word
            continue
        words.append(word)
    return words


def _unquoted(word: str) -> str:
    return word[1:-1] if len(word) > 1 and word[0] == word[-1] and word[0] in "'\"" else word


def handed_to_an_interpreter(command: str) -> bool:
    """Whether the simple command `command` runs a program that reads its script from its
    standard input: `bash`, `sh -s`, `bash -x -s arg`, `/bin/sh`, `python3 -`, `bash
    /dev/stdin`, `sudo -u app bash`, `sudo -i`, `su - app`, `timeout 5 bash`, `ssh host`,
    `ssh host 'bash -s'`, `docker exec -i c sh`, `kubectl exec -i p -- sh`; not
    `sh deploy.sh`, `bash -c '...'`, `grep bash` or `ssh host cat`."""
    return _runs_stdin(_words(command))


def _runs_stdin(words: list[str]) -> bool:
    i = 0
    while i < len(words) and _ASSIGNMENT.match(words[i]):
        i += 1
    if i >= len(words):
        return False
    name = words[i].rsplit("/", 1)[-1]
    rest = words[i + 1 :]
    if name in _WRAPPERS:
        return _wrapped(name, rest)
    if name in (".", "source"):  # `. /dev/stdin`: the script it reads is standard input
        return bool(rest) and _unquoted(rest[0]) in _STDIN_SCRIPTS
    if name in ("su", "ssh", "docker", "podman", "kubectl", "busybox"):
        return _remote_or_other_user(name, rest)
    if name not in _INTERPRETERS and not re.fullmatch(r"python[\d.]*", name):
        return False
    for j, word in enumerate(rest):
        if _unquoted(word) in _STDIN_SCRIPTS:
            return True  # `python3 - arg`, `bash /dev/stdin`
        if word in _SCRIPT_OPTIONS or (
            re.fullmatch(r"-[a-zA-Z]+", word) and word[-1] in "ce" and name not in ("fish",)
        ):
            return False  # the program is an argument
        if word == "-s" or (re.fullmatch(r"-[a-zA-Z]+", word) and "s" in word[1:]):
            return True  # the script is stdin, what follows is its arguments
        if word == "--":
            return not rest[j + 1 :] or rest[j + 1] in _STDIN_SCRIPTS
        if not word.startswith("-"):
            return _unquoted(word) in _STDIN_SCRIPTS
    return True


def _takes_argument(word: str, takes: frozenset[str]) -> bool:
    """Whether option `word` is followed by its argument: `-u app`, or `-iu app` (flags
    run together, the last one taking the argument)."""
    if word in takes:
        return True
    return not word.startswith("--") and len(word) > 2 and "-" + word[-1] in takes


def _wrapped(name: str, rest: list[str]) -> bool:
    takes = _WRAPPERS[name]
    positional = _POSITIONAL_BEFORE_COMMAND.get(name, 0)
    replaces = False  # xargs -I: the input lands inside the command's arguments
    login = False  # sudo -i / -s: with no command, a shell that reads stdin
    j = 0
    while j < len(rest):
        word = rest[j]
        if word == "--":
            j += 1
            break
        if word.startswith("-") and len(word) > 1:
            if name == "sudo" and not word.startswith("--") and set(word[1:]) & {"i", "s"}:
                login = True
            if name == "xargs" and (word.startswith(("-I", "-i")) or word == "--replace"):
                replaces = True
            j += 2 if _takes_argument(word, takes) else 1
            continue
        if name == "env" and _ASSIGNMENT.match(word):
            j += 1
            continue
        if positional:
            positional -= 1
            j += 1
            continue
        break
    inner = rest[j:]
    if name == "xargs":  # its input becomes arguments: code only if put inside a script
        return replaces and bool(inner) and _runs_code_argument(inner)
    if login and not inner:
        return True
    return _runs_stdin(inner)


def _runs_code_argument(words: list[str]) -> bool:
    """`sh -c SCRIPT ...`: a program whose program text is an argument."""
    if not words:
        return False
    name = words[0].rsplit("/", 1)[-1]
    interpreter = name in _INTERPRETERS or re.fullmatch(r"python[\d.]*", name)
    return bool(interpreter) and any(w in _SCRIPT_OPTIONS for w in words[1:])


def _remote_or_other_user(name: str, rest: list[str]) -> bool:
    if name == "busybox":
        return _runs_stdin(rest)
    if name == "su":  # `su [-] [-l] [user]` without -c: the user's shell reads stdin
        return not any(w in ("-c", "--command") or w.startswith("--command=") for w in rest)
    if name == "ssh":
        after = _ssh_command(rest)
        return after is not None and (not after or _runs_stdin(_words(" ".join(after))))
    # docker/podman exec [-i] CONTAINER CMD..., kubectl exec [-i] POD -- CMD...
    if not rest or rest[0] != "exec":
        return False
    args = rest[1:]
    if name == "kubectl":
        return "--" in args and _runs_stdin(args[args.index("--") + 1 :])
    j = 0
    while j < len(args) and args[j].startswith("-"):
        j += 2 if args[j] in ("-u", "-w", "-e", "--user", "--workdir", "--env") else 1
    return _runs_stdin(args[j + 1 :])


_SSH_OPTIONS_WITH_ARGUMENT = frozenset("BbcDEeFIiJLlmOoPpQRSWw")


def _ssh_command(rest: list[str]) -> list[str] | None:
    """The remote command words after `ssh [options] host [options]`, unquoted (None: no
    host)."""
    words = _without_ssh_options(rest)
    if not words:
        return None
    return [_unquoted(w) for w in _without_ssh_options(words[1:])]


def _without_ssh_options(words: list[str]) -> list[str]:
    while words and words[0].startswith("-") and len(words[0]) > 1:
        takes = len(words[0]) == 2 and words[0][1] in _SSH_OPTIONS_WITH_ARGUMENT
        words = words[2:] if takes else words[1:]
    return words


def ssh_remote_command(command: str, offset: int) -> bool:
    """Whether `offset` (in `command`) lies in the remote command of an ssh: ssh joins its
    arguments into one command line, which the remote shell parses, quotes and all."""
    words = [
        (m.group(), m.end())
        for m in re.finditer(r"""(?:'[^']*'|"(?:\\.|[^"\\])*"|[^\s'"])+""", command)
    ]
    i = 0
    while i < len(words) and (
        _ASSIGNMENT.match(words[i][0]) or words[i][0] in _WRAPPERS or words[i][0][:1] == "-"
    ):
        i += 1
    if i >= len(words) or words[i][0].rsplit("/", 1)[-1] != "ssh":
        return False
    i += 1
    while i < len(words) and words[i][0].startswith("-") and len(words[i][0]) > 1:
        word = words[i][0]
        i += 2 if len(word) == 2 and word[1] in _SSH_OPTIONS_WITH_ARGUMENT else 1
    return i < len(words) and offset > words[i][1]


def heredoc_read_as_code(line: str, at: int) -> bool:
    """Whether the heredoc whose `<<` stands at `at` in `line` is read as a script: by the
    command it is given to (`bash <<EOF`, `ssh host <<EOF`), by one that command pipes into
    (`cat <<EOF | sh`), or by one a group it is in pipes into (`{ cat <<EOF; } | bash`)."""
    found = pipelines(line)
    for p, pipeline in enumerate(found):
        index = pipeline.index_at(at)
        if index is None:
            continue
        if any(handed_to_an_interpreter(c) for c in pipeline.commands[index:]):
            return True
        # `{ cat <<EOF; } | bash`, `(cat <<EOF) | bash`: what the group pipes into
        closer = re.compile(r"[)}]\s*\|&?")
        rest = line[pipeline.end :]
        match = closer.search(rest)
        if match and p + 1 < len(found):
            after = line[pipeline.end + match.end() :]
            return any(
                handed_to_an_interpreter(c) for q in pipelines(after)[:1] for c in q.commands
            )
        return False
    return False
