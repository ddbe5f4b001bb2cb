"""Read YAML safely into plain data, remembering where every value came from.

PyYAML's constructors are not used: the event stream is walked with an explicit stack, so that
nesting depth, alias expansion and duplicate keys are under our control (PyYAML alone recurses
until RecursionError, expands alias bombs lazily and keeps the last of duplicate keys). Scalars
are resolved by YAML 1.2's core schema, so `on`/`no` stay strings; plain numbers keep their text
so that a string field can refuse `010` or `1.10` instead of silently reading 8 or 1.1.
"""

from __future__ import annotations

import math
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

import yaml

from tempeh_tui.errors import Problem, WorkflowError

__all__ = [
    "MAX_ALIAS_NODES",
    "MAX_DEPTH",
    "MAX_FILE_BYTES",
    "DocPath",
    "PlainFloat",
    "PlainInt",
    "SourceMap",
    "YamlDocument",
    "read_yaml_file",
    "read_yaml_text",
]

MAX_FILE_BYTES: Final = 10 * 1024 * 1024
MAX_DEPTH: Final = 64
MAX_ALIAS_NODES: Final = 100_000
"""Nodes that alias expansion may add to a document; a 341-byte alias bomb would add 9**9."""

DocPath = tuple[str | int, ...]

_Parser: Any = getattr(yaml, "CSafeLoader", yaml.SafeLoader)

_INT = re.compile(r"[-+]?[0-9]+")
_OCT = re.compile(r"0o[0-7]+")
_HEX = re.compile(r"0x[0-9a-fA-F]+")
_FLOAT = re.compile(r"[-+]?(\.[0-9]+|[0-9]+(\.[0-9]*)?)([eE][-+]?[0-9]+)?")
_INF = re.compile(r"[-+]?\.(inf|Inf|INF)")
_NAN = re.compile(r"\.(nan|NaN|NAN)")
_NULLS = frozenset({"", "~", "null", "Null", "NULL"})
_TRUE = frozenset({"true", "True", "TRUE"})
_FALSE = frozenset({"false", "False", "FALSE"})
_TAG = "tag:yaml.org,2002:"
_TOO_DEEP: Final = f"nesting deeper than {MAX_DEPTH} levels"


class PlainInt(int):
    """An int read from a plain scalar, with the text it was written as."""

    raw: str

    def __new__(cls, value: int, raw: str) -> PlainInt:
        obj = super().__new__(cls, value)
        obj.raw = raw
        return obj


class PlainFloat(float):
    """A float read from a plain scalar, with the text it was written as."""

    raw: str

    def __new__(cls, value: float, raw: str) -> PlainFloat:
        obj = super().__new__(cls, value)
        obj.raw = raw
        return obj


@dataclass
class SourceMap:
    """Where each value (and each mapping key) of a document stands in its file (1-based)."""

    source: str
    values: dict[DocPath, tuple[int, int]] = field(default_factory=dict)
    keys: dict[DocPath, tuple[int, int]] = field(default_factory=dict)
    blocks: dict[DocPath, tuple[int, int]] = field(default_factory=dict)
    """Literal block scalars (`run: |`): the line their text starts on, and its indent. Their
    lines are the file's lines, so a place in the text is a place in the file."""

    def locate(self, path: DocPath, *, key: bool = False) -> tuple[int, int] | None:
        """The position of `path`, or of the nearest enclosing value that has one."""
        if key and path in self.keys:
            return self.keys[path]
        for end in range(len(path), -1, -1):
            found = self.values.get(path[:end])
            if found is not None:
                return found
        return None

    def problem(
        self,
        message: str,
        path: DocPath,
        *,
        key: bool = False,
        at: tuple[str, int] | None = None,
    ) -> Problem:
        """`at`: the value's text and an offset in it, to point inside a literal block."""
        block = self.blocks.get(path) if at is not None else None
        if block is not None and at is not None:
            text, offset = at
            line_start = text.rfind("\n", 0, offset) + 1
            line = block[0] + text.count("\n", 0, offset)
            return Problem(message, self.source, line, block[1] + offset - line_start + 1)
        where = self.locate(path, key=key)
        if where is None:
            return Problem(message, self.source, path=format_path(path) or None)
        return Problem(message, self.source, where[0], where[1])


def format_path(path: DocPath) -> str:
    out = ""
    for part in path:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out


@dataclass
class YamlDocument:
    """One YAML document as plain data, its source map, and the non-fatal problems found."""

    data: Any
    source_map: SourceMap
    problems: list[Problem]


def read_yaml_file(path: str | Path) -> YamlDocument:
    """Read a workflow file, refusing at once what is not a reasonable YAML text file."""
    name = str(path)
    p = Path(path)
    try:
        st = p.stat()
    except FileNotFoundError:
        raise WorkflowError.single("no such file", name) from None
    except OSError as exc:
        raise WorkflowError.single(f"cannot read: {exc.strerror}", name) from None
    if p.is_dir():
        raise WorkflowError.single("is a directory; expected a YAML workflow file", name)
    if st.st_size > MAX_FILE_BYTES:
        raise WorkflowError.single(
            f"file is {st.st_size / 1048576:.1f} MB; workflow files are limited to "
            f"{MAX_FILE_BYTES // 1048576} MB",
            name,
        )
    try:
        # Opened without waiting: a named pipe nobody writes to would block the open for ever
        # (then it reads as empty); a pipe that has a writer (`<(generate)`) is read as usual.
        fd = os.open(p, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
        os.set_blocking(fd, True)
        with open(fd, "rb") as file:  # bounded: /dev/zero or a pipe reports no size
            raw = file.read(MAX_FILE_BYTES + 1)
    except OSError as exc:
        raise WorkflowError.single(f"cannot read: {exc.strerror}", name) from None
    return read_yaml_text(_decode(raw, name), name)


def _decode(raw: bytes, name: str) -> str:
    if len(raw) > MAX_FILE_BYTES:
        raise WorkflowError.single(f"file is over {MAX_FILE_BYTES // 1048576} MB", name)
    nul = raw.find(b"\0")
    if nul >= 0:
        raise WorkflowError.single(
            f"binary data (a NUL byte at offset {nul}); expected a YAML text file", name
        )
    try:
        return raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = raw.count(b"\n", 0, exc.start) + 1
        col = exc.start - (raw.rfind(b"\n", 0, exc.start) + 1) + 1
        raise WorkflowError.single(
            f"not UTF-8 text (byte 0x{raw[exc.start]:02x}); save the file as UTF-8",
            name,
            line,
            col,
        ) from None


def read_yaml_text(text: str, source: str = "<string>") -> YamlDocument:
    """Parse one YAML document from `text` (see the module doc for what differs from PyYAML)."""
    if len(text) > MAX_FILE_BYTES:
        raise WorkflowError.single(f"text is over {MAX_FILE_BYTES // 1048576} MB", source)
    if "\0" in text:
        raise WorkflowError.single("binary data (a NUL character); expected YAML text", source)
    builder = _Builder(source, text)
    try:
        for event in yaml.parse(text, Loader=_Parser):
            builder.feed(event)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        what = exc.problem or exc.context or "not valid YAML"
        line, col = (mark.line + 1, mark.column + 1) if mark else (None, None)
        if "maximum nesting depth" in what:  # libyaml's own limit, met before ours in flow style
            raise WorkflowError.single(_TOO_DEEP, source, line, col) from None
        if mark is not None and _tab_at(text, mark.line, mark.column):
            what = "a tab character; YAML indents with spaces only (replace the tab with spaces)"
        raise WorkflowError.single(f"YAML syntax error: {what}", source, line, col) from None
    except yaml.YAMLError as exc:
        raise WorkflowError.single(f"YAML error: {exc}", source) from None
    return YamlDocument(builder.result, builder.source_map, builder.problems)


def _tab_at(text: str, line: int, column: int) -> bool:
    """Whether the character at 0-based `line`:`column` of `text` is a tab."""
    lines = text.split("\n", line + 1)
    return line < len(lines) and lines[line][column : column + 1] == "\t"


@dataclass
class _Frame:
    """A mapping or sequence being built."""

    path: DocPath
    anchor: str | None
    container: dict[str, Any] | list[Any]
    size: int = 1
    key: str | None = None  # mapping: the key waiting for its value
    key_mark: tuple[int, int] | None = None
    key_marks: dict[str, tuple[int, int]] = field(default_factory=dict)
    merges: list[tuple[Any, tuple[int, int]]] = field(default_factory=list)


class _Builder:
    def __init__(self, source: str, text: str = "") -> None:
        self.source_map = SourceMap(source)
        self._text = text
        self._lines: list[str] | None = None  # split on the first literal block
        self.problems: list[Problem] = []
        self.result: Any = None
        self._stack: list[_Frame] = []
        self._anchors: dict[str, tuple[Any, int]] = {}
        self._expanded = 0
        self._documents = 0

    def _fatal(self, message: str, mark: Any) -> WorkflowError:
        if mark is None:
            return WorkflowError.single(message, self.source_map.source)
        return WorkflowError.single(message, self.source_map.source, mark.line + 1, mark.column + 1)

    def _problem(self, message: str, where: tuple[int, int]) -> None:
        self.problems.append(Problem(message, self.source_map.source, where[0], where[1]))

    def feed(self, event: Any) -> None:
        mark = event.start_mark
        pos = (mark.line + 1, mark.column + 1)
        if isinstance(event, yaml.DocumentStartEvent):
            self._documents += 1
            if self._documents > 1:
                raise self._fatal(
                    "expected one YAML document; found a second one (remove the '---')", mark
                )
        elif isinstance(event, yaml.ScalarEvent):
            frame = self._stack[-1] if self._stack else None
            if frame is not None and isinstance(frame.container, dict) and frame.key is None:
                self._take_key(frame, event.value, event.style, pos)
                return
            value = self._scalar(event, pos)
            if event.style == "|" and self._text:
                self._note_block(mark.line + 1)
            self._place(value, 1, pos, event.anchor)
        elif isinstance(event, yaml.AliasEvent):
            anchored = self._anchors.get(event.anchor or "")
            if anchored is None:
                raise self._fatal(f"unknown alias *{event.anchor}", mark)
            value, size = anchored
            self._expanded += size
            if self._expanded > MAX_ALIAS_NODES:
                raise self._fatal(
                    f"aliases expand to more than {MAX_ALIAS_NODES:,} nodes (an alias bomb?); "
                    "refusing to read further",
                    mark,
                )
            frame = self._stack[-1] if self._stack else None
            if frame is not None and isinstance(frame.container, dict) and frame.key is None:
                if isinstance(value, str | int | float | bool):
                    self._take_key(frame, str(value), "", pos)
                else:
                    raise self._fatal(
                        "a mapping key must be text, not an alias to a collection", mark
                    )
                return
            self._place(value, size, pos, None)
        elif isinstance(event, yaml.MappingStartEvent | yaml.SequenceStartEvent):
            if len(self._stack) >= MAX_DEPTH:
                raise self._fatal(_TOO_DEEP, mark)
            frame_parent = self._stack[-1] if self._stack else None
            if (
                frame_parent is not None
                and isinstance(frame_parent.container, dict)
                and frame_parent.key is None
            ):
                raise self._fatal("a mapping key must be text, not a collection", mark)
            self._check_tag(event.tag, event)
            path = self._child_path()
            self.source_map.values[path] = pos
            container: dict[str, Any] | list[Any] = (
                {} if isinstance(event, yaml.MappingStartEvent) else []
            )
            self._stack.append(_Frame(path, event.anchor, container))
        elif isinstance(event, yaml.MappingEndEvent | yaml.SequenceEndEvent):
            frame = self._stack.pop()
            if isinstance(frame.container, dict):
                self._apply_merges(frame)
            self._place(frame.container, frame.size, None, frame.anchor, registered=True)

    def _note_block(self, first: int) -> None:
        """A literal block's text starts on the line after its `|` (0-based `first`), indented
        as its first line that is not blank."""
        if self._lines is None:
            self._lines = self._text.splitlines()
        for line in self._lines[first : first + 200]:
            if line.strip():
                indent = len(line) - len(line.lstrip(" "))
                self.source_map.blocks[self._child_path()] = (first + 1, indent)
                return

    def _child_path(self) -> DocPath:
        if not self._stack:
            return ()
        frame = self._stack[-1]
        if isinstance(frame.container, dict):
            assert frame.key is not None
            return (*frame.path, frame.key)
        return (*frame.path, len(frame.container))

    def _take_key(self, frame: _Frame, text: str, style: str | None, pos: tuple[int, int]) -> None:
        if text == "<<" and not style:
            frame.key = "<<"
            frame.key_mark = pos
            return
        first = frame.key_marks.get(text)
        if first is not None:
            self._problem(
                f"duplicate key '{text}' (first at line {first[0]}); each key may appear once",
                pos,
            )
        else:
            frame.key_marks[text] = pos
        frame.key = text
        frame.key_mark = pos
        self.source_map.keys[(*frame.path, text)] = pos

    def _place(
        self,
        value: Any,
        size: int,
        pos: tuple[int, int] | None,
        anchor: str | None,
        *,
        registered: bool = False,
    ) -> None:
        if anchor:
            self._anchors[anchor] = (value, size)
        if not self._stack:
            if pos is not None:
                self.source_map.values[()] = pos
            self.result = value
            return
        frame = self._stack[-1]
        frame.size += size
        if isinstance(frame.container, list):
            if pos is not None and not registered:
                self.source_map.values[(*frame.path, len(frame.container))] = pos
            frame.container.append(value)
            return
        key = frame.key
        assert key is not None
        assert frame.key_mark is not None
        if key == "<<":
            frame.merges.append((value, frame.key_mark))
        else:
            if pos is not None and not registered:
                self.source_map.values[(*frame.path, key)] = pos
            if key not in frame.container:  # a duplicate was reported; the first one stands
                frame.container[key] = value
        frame.key = None

    def _apply_merges(self, frame: _Frame) -> None:
        assert isinstance(frame.container, dict)
        for value, where in frame.merges:
            sources = value if isinstance(value, list) else [value]
            for src in sources:
                if not isinstance(src, dict):
                    self._problem("'<<' merges a mapping (or a list of mappings) only", where)
                    continue
                for k, v in src.items():
                    frame.container.setdefault(k, v)

    def _check_tag(self, tag: str | None, event: Any) -> None:
        if tag is None or tag == "!":
            return
        allowed = "map" if isinstance(event, yaml.MappingStartEvent) else "seq"
        if tag != _TAG + allowed:
            raise self._unsupported_tag(tag, event.start_mark)

    def _unsupported_tag(self, tag: str, mark: Any) -> WorkflowError:
        """Refuse the file: a tagged value (`!!python/...`) means something we will not build."""
        shown = "!!" + tag.removeprefix(_TAG) if tag.startswith(_TAG) else tag
        return self._fatal(f"unsupported YAML tag {shown}; tags are not used in workflows", mark)

    def _scalar(self, event: yaml.ScalarEvent, pos: tuple[int, int]) -> Any:
        text: str = event.value
        tag = event.tag
        if tag is not None and tag != "!":
            kind = tag.removeprefix(_TAG) if tag.startswith(_TAG) else None
            if kind == "str":
                return text
            if kind in {"int", "float", "bool", "null"}:
                value = _resolve_plain(text)
                expected = {"int": int, "float": float, "bool": bool, "null": type(None)}[kind]
                if kind == "float" and type(value) is PlainInt:
                    return PlainFloat(float(value), text)
                if isinstance(value, expected) and not (kind == "int" and isinstance(value, bool)):
                    return value
                self._problem(f"'{text}' is not a valid !!{kind}", pos)
                return text
            raise self._unsupported_tag(tag, event.start_mark)
        if event.style:  # quoted, literal or folded: always a string
            return text
        return _resolve_plain(text)


def _resolve_plain(text: str) -> Any:
    """YAML 1.2 core schema resolution of a plain scalar."""
    if text in _NULLS:
        return None
    if text in _TRUE:
        return True
    if text in _FALSE:
        return False
    if _INT.fullmatch(text):
        return PlainInt(int(text), text)
    if _OCT.fullmatch(text):
        return PlainInt(int(text[2:], 8), text)
    if _HEX.fullmatch(text):
        return PlainInt(int(text[2:], 16), text)
    if _FLOAT.fullmatch(text):
        return PlainFloat(float(text), text)
    if _INF.fullmatch(text):
        return PlainFloat(-math.inf if text.startswith("-") else math.inf, text)
    if _NAN.fullmatch(text):
        return PlainFloat(math.nan, text)
    return text
