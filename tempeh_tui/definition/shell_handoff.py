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

__all__ = [
    "Pipeline",
    "handed_to_an_interpreter",
    "heredoc_read_as_code",
    "innermost",
    "pipelines",
    "program_text_of",
    "ssh_remote_command",
]

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
_WORD = re.compile(r"""\d*[<>]+(?:&\d*|-)?|(?:'[^']*'|"(?:\\.|[^"\\])*"|[^\s'"<>])+""")
"""A word of a command, or a redirection operator (`2>&1`, `<<-`, `>`) on its own."""
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
    """`line` cut into pipelines at unquoted `;`, `&&`, `||`, `&` and newlines, and each into
    commands at unquoted `|` and `|&`. Quotes, escapes, `$(...)`, backticks and process
    substitutions stay inside the command they are in; so do grouping's `(`, `)`, `{`, `}`
    (`(cmd) | bash` pipes into bash); comments are left out."""
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
        if ch == "#" and (i == 0 or line[i - 1] in " \t\n;&|("):
            end = line.find("\n", i)
            cut(i, pipe=False)  # the comment is no command
            i = n if end < 0 else end
            word_start = i
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
        if ch in ";&\n":
            cut(i, pipe=False)
            i += 1
            word_start = i
            continue
        i += 1
    cut(n, pipe=False)
    return [p for p in out if any(c.strip() for c in p.commands)]


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
    for word in _WORD.findall(command):
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


def _name(word: str) -> str:
    """A command word as bash finds the program: quotes and backslashes gone (`"bash"`,
    `\\bash`, `b""ash`), then the path's last part (`/bin/bash`)."""
    return re.sub(r"""['"\\(){}]""", "", word).rsplit("/", 1)[-1]


_RESERVED = frozenset({"if", "then", "else", "elif", "do", "while", "until", "time", "!", "{", "("})
"""Words before a command that leave it the command (`then ssh ...`, `do bash`)."""
_SHELLS = frozenset({"sh", "bash", "dash", "zsh", "ksh", "mksh", "ash", "fish", "rbash", "yash"})
_SHELL_OPTIONS_WITH_ARGUMENT = frozenset({"-o", "+o", "-O", "+O"})


def handed_to_an_interpreter(command: str) -> bool:
    """Whether the simple command `command` runs a program that reads its script from its
    standard input: `bash`, `sh -s`, `bash -x -s arg`, `/bin/sh`, `python3 -`, `bash
    /dev/stdin`, `sudo -u app bash`, `sudo -i`, `su - app`, `timeout 5 bash`, `ssh host`,
    `ssh host 'bash -s'`, `docker exec -i c sh`, `kubectl exec -i p -- sh`; not
    `sh deploy.sh`, `bash -c '...'`, `grep bash` or `ssh host cat`."""
    return _runs_stdin(_words(command))


def _runs_stdin(words: list[str]) -> bool:
    i = 0
    while i < len(words) and (_ASSIGNMENT.match(words[i]) or words[i] in _RESERVED):
        i += 1
    if i >= len(words):
        return False
    name = _name(words[i])
    rest = words[i + 1 :]
    if name in _WRAPPERS:
        return _wrapped(name, rest)
    if name in (".", "source"):  # `. /dev/stdin`: the script it reads is standard input
        return bool(rest) and _unquoted(rest[0]) in _STDIN_SCRIPTS
    if name in ("su", "ssh", "docker", "podman", "kubectl", "busybox"):
        return _remote_or_other_user(name, rest)
    if name not in _INTERPRETERS and not re.fullmatch(r"python[\d.]*", name):
        return False
    shell = name in _SHELLS
    program = "c" if shell else "cemE"  # the options whose argument is the program
    j = 0
    while j < len(rest):
        word = rest[j]
        if _unquoted(word) in _STDIN_SCRIPTS:
            return True  # `python3 - arg`, `bash /dev/stdin`
        flags = word[1:] if re.fullmatch(r"[-+][a-zA-Z]+", word) else ""
        if word.startswith("-") and set(flags) & set(program):
            return False  # the program is an argument (`sh -c`, `python3 -c`, `perl -e`)
        if shell and "s" in flags:
            return True  # the script is stdin, what follows is its arguments
        if word == "--":
            return not rest[j + 1 :] or _unquoted(rest[j + 1]) in _STDIN_SCRIPTS
        if not word.startswith(("-", "+")):
            return False  # a script file
        takes = word in _SHELL_OPTIONS_WITH_ARGUMENT or flags.endswith(("o", "O"))
        j += 2 if shell and takes else 1
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
    replace: str | None = None  # xargs -I{}: where the input lands in the command
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
            if name == "xargs" and word.startswith(("-I", "-i", "--replace")):
                given = word[2:] if word.startswith(("-I", "-i")) else word[10:].lstrip("=")
                if not given and word in ("-I",) and j + 1 < len(rest):
                    given = rest[j + 1]
                replace = _unquoted(given) or "{}"
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
        return _runs_code_argument(inner, replace)
    if login and not inner:
        return True
    return _runs_stdin(inner)


def _runs_code_argument(words: list[str], replace: str | None) -> bool:
    """What xargs runs, `sh -c [SCRIPT] ...`, takes its input as code: as the script itself
    (`xargs sh -c`), or inside it (`xargs -I{} sh -c "echo {}"`). Not `xargs -I{} sh -c
    'echo "$1"' _ {}`, where it is an argument."""
    if not words:
        return False
    name = _name(words[0])
    if name not in _INTERPRETERS and not re.fullmatch(r"python[\d.]*", name):
        return False
    for j, word in enumerate(words[1:], 1):
        if word in ("-c", "-e") or re.fullmatch(r"-[a-zA-Z]*c", word):
            script = words[j + 1] if j + 1 < len(words) else None
            if script is None:
                return True
            return replace is not None and replace in script
    return False


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
    arguments into one command line, which the remote shell parses, quotes and all. Local
    redirections (`> "{{ v }}.log"`) are not part of it."""
    tokens = [(m.group(), m.start(), m.end()) for m in _WORD.finditer(command)]
    i = 0
    while i < len(tokens) and _name(tokens[i][0]) != "ssh":
        word = tokens[i][0]
        before_command = (
            _ASSIGNMENT.match(word)
            or word in _RESERVED
            or _name(word) in _WRAPPERS
            or word.startswith("-")
            or re.fullmatch(r"\d+(?:\.\d+)?[smhd]?", word)
        )
        if not before_command:
            return False  # another command, which ssh is an argument of at most
        i += 1
    i += 1
    while i < len(tokens) and tokens[i][0].startswith("-") and len(tokens[i][0]) > 1:
        word = tokens[i][0]
        i += 2 if len(word) == 2 and word[1] in _SSH_OPTIONS_WITH_ARGUMENT else 1
    remote = tokens[i + 1 :]
    skip = False
    for word, start, end in remote:
        if skip:
            skip = False
            continue
        if _REDIRECTION.match(word):
            skip = (
                word in _SEPARATE_TARGET
                or word.rstrip("&-").lstrip("0123456789") in _SEPARATE_TARGET
            )
            continue
        if start <= offset <= end:
            return True
    return False


_EVALUATED = re.compile(
    r"(?:\beval|\b(?:[\w.+-]*/)?(?:ba|da|z|k|mk|a)?sh\s+(?:-\w+\s+)*-\w*c|\bsource|(?:^|\s)\.)"
    r"\s+[\"']?$"
)
"""What runs the output of a command substitution as code: `eval "$(...)"`, `sh -c "$(...)"`."""


def innermost(line: str, at: int) -> tuple[int, str, str]:
    """The command substitution (`$(`, `<(`, `>(`, a backtick) that `at` is in, if any, as
    (where its text starts, its text, the line before it); else (0, line, "")."""
    stack: list[int] = []
    quote = ""
    i = 0
    while i < at:
        ch, two = line[i], line[i : i + 2]
        if quote == "'":
            quote = "" if ch == "'" else quote
        elif ch == "\\":
            i += 1
        elif two in ("$(", "<(", ">("):
            stack.append(i + 2)
            i += 1
        elif ch == "`":
            if stack and line[stack[-1] - 1] == "`":
                stack.pop()
            else:
                stack.append(i + 1)
        elif ch == ")" and stack and line[stack[-1] - 1] == "(" and not quote:
            stack.pop()
        elif ch == "'" and not quote:
            quote = "'"
        elif ch == '"':
            quote = "" if quote == '"' else (quote or '"')
        i += 1
    if not stack:
        return 0, line, ""
    start = stack[-1]
    end = _closing(line, start - 1) if line[start - 1] == "(" else line.find("`", start)
    return start, line[start : end if end > start else len(line)], line[: start - 2]


def heredoc_read_as_code(line: str, at: int) -> bool:
    """Whether the heredoc whose `<<` stands at `at` in `line` is read as a script: by the
    command it is given to (`bash <<EOF`, `ssh host <<EOF`), by one that command pipes into
    (`cat <<EOF | sh`), or by one a group it is in pipes into (`{ cat <<EOF; } | bash`);
    also inside a command substitution (`v=$(bash <<EOF`), and one whose output is run
    (`eval "$(cat <<EOF`)."""
    start, inner, before = innermost(line, at)
    if start:
        if _EVALUATED.search(before):
            return True
        line, at = inner, at - start
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


_AWKS = frozenset({"awk", "gawk", "mawk", "nawk", "busybox-awk"})


def program_text_of(command: str, offset: int) -> str | None:
    """The program whose text `offset` lies in, if it does: the script of `sh -c`,
    `python3 -c`, `perl -e`, `su -c`, `script -c`, `watch`, or an awk program (`awk -v
    v="{{ x }}" '...'` passes it as a variable instead)."""
    tokens = [(m.group(), m.start(), m.end()) for m in _WORD.finditer(command)]
    i = 0
    while i < len(tokens):
        word = tokens[i][0]
        if not (_ASSIGNMENT.match(word) or word in _RESERVED or _name(word) in _WRAPPERS):
            break
        i += 1
        while i < len(tokens) and tokens[i][0].startswith("-"):
            i += 1  # a wrapper's options (their arguments are read as the command: rare)
    if i >= len(tokens):
        return None
    name = _name(tokens[i][0])
    interpreter = name in _INTERPRETERS or re.fullmatch(r"python[\d.]*", name)
    program_options = "c" if name in _SHELLS or name in ("su", "script") else "ce"
    rest = tokens[i + 1 :]
    j = 0
    while j < len(rest):
        word, start, end = rest[j]
        if name in _AWKS or name == "watch":
            if word in ("-v", "-F", "-n", "-d", "-f"):
                if word == "-f":
                    return None  # the program is a file
                j += 2
                continue
            if word.startswith("-"):
                j += 1
                continue
            in_it = start <= offset and (name == "watch" or offset <= end)
            return f"the program text of {name}" if in_it else None
        if (interpreter or name in ("su", "script")) and re.fullmatch(r"-[a-zA-Z]+", word):
            if set(word[1:]) & set(program_options) or word == "--command":
                k = j + 1
                while k < len(rest) and rest[k][0] in ("--",):
                    k += 1
                if k < len(rest) and rest[k][1] <= offset <= rest[k][2]:
                    return f"the program text of {name} {word}"
                return None
            j += 2 if word in _SHELL_OPTIONS_WITH_ARGUMENT else 1
            continue
        if word in _SHELL_OPTIONS_WITH_ARGUMENT:
            j += 2
            continue
        if not word.startswith("-") or not (interpreter or name in ("su", "script")):
            return None
        j += 1
    return None
