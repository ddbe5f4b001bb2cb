"""Secrets: read from the environment, passed to steps, and masked wherever text surfaces."""

from __future__ import annotations

import base64
import contextlib
import dataclasses
import re
import string
import urllib.parse
from collections.abc import Iterable, Iterator, Mapping

from tempeh_tui.errors import TempehError, WorkflowError

__all__ = [
    "MASK",
    "Masker",
    "MissingSecret",
    "SecretInParams",
    "collect_secrets",
    "refuse_secret_params",
]

MASK = "***"
_MIN_LENGTH = 3
"""Shorter values would mask too much ordinary text to be useful (and are weak secrets)."""
_MIN_BASE64_PART = 8
"""The shortest base64 fragment masked on its own (48 bits): shorter ones match random text."""
_RUN = re.compile(r"[A-Za-z0-9+/_-]+")
"""Base64 (standard or URL-safe) characters: a line's first run, or its last read backwards."""
_BASE64 = frozenset(string.ascii_letters + string.digits + "+/_-")
_PERCENT = re.compile(r"%[0-9A-Fa-f]{2}")


def _form_pattern(form: str) -> str:
    """A form as a regex: itself, but each `%XX` escape in either case (`%2f`, `%2F`)."""
    parts = []
    last = 0
    for match in _PERCENT.finditer(form):
        parts.append(re.escape(form[last : match.start()]))
        parts.append("%(?i:" + match.group(0)[1:] + ")")
        last = match.end()
    parts.append(re.escape(form[last:]))
    return "".join(parts)


class MissingSecret(TempehError):
    def __init__(self, names: Iterable[str]) -> None:
        self.names = sorted(names)
        listed = ", ".join(self.names)
        super().__init__(
            f"secret(s) not set in the environment: {listed}; export them before the run"
        )


class SecretInParams(TempehError):
    def __init__(self, param: str, secret: str) -> None:
        self.param, self.secret = param, secret
        super().__init__(
            f"param '{param}' holds the value of secret {secret} (or its base64 or URL-encoded "
            "form), and params are stored with "
            f"the run in clear; pass it to the steps as the secret {secret} (from the "
            "environment) instead"
        )


def refuse_secret_params(params: Mapping[str, object], secrets: Mapping[str, str]) -> None:
    """SPEC 1: a secret is never written to the store in clear, and a run's params are
    (resume runs with them): so no param may hold a secret's value, or a part of it, or its
    base64 or URL-encoded form (whatever the masker would hide)."""
    masker = Masker(secrets.values())
    for name, value in params.items():
        text = value if isinstance(value, str) else str(value)
        if masker.mask(text) == text:
            continue
        secret = next((n for n, v in secrets.items() if Masker([v]).mask(text) != text), "a secret")
        raise SecretInParams(name, secret)


def collect_secrets(names: Iterable[str], environ: Mapping[str, str]) -> dict[str, str]:
    """The values of the named environment variables; raise MissingSecret for unset ones."""
    wanted = list(dict.fromkeys(names))
    missing = [n for n in wanted if n not in environ]
    if missing:
        raise MissingSecret(missing)
    return {n: environ[n] for n in wanted}


class Masker:
    """Replaces each secret, in its plain, base64 (standard and URL-safe, at any alignment,
    also wrapped over lines) and URL-encoded forms, with `***`."""

    def __init__(self, values: Iterable[str] = ()) -> None:
        forms: set[str] = set()
        encoded: set[str] = set()
        escaped: set[str] = set()  # URL-encoded forms with escapes, lower-cased
        for value in _maskable(values):
            quoted = {urllib.parse.quote(value, safe=""), urllib.parse.quote_plus(value)}
            forms.update({value, *quoted})
            # `%2f` is `%2F` too, whatever the case of each escape (see `_form_pattern`)
            escaped.update(q.lower() for q in quoted if "%" in q)
            encoded.update(_base64_forms(value.encode()))
        forms.update(encoded)
        # Base64 wrapped over lines (`base64` wraps at 76 columns, PEM at 64): a line may end
        # with the start of a secret's characters and the next begin with the rest, or lie
        # wholly inside them. Each line is masked on its own, so its ends are looked up.
        self._encoded = tuple(sorted(encoded, key=len, reverse=True))
        ordered = sorted(forms, key=len, reverse=True)  # longest first: no partial masks
        self._pattern = re.compile("|".join(map(_form_pattern, ordered))) if ordered else None
        self._escaped = tuple(escaped)
        # Most text holds no secret: `in` tells that faster than the regex (whose many
        # alternatives make it try a match at most positions). A form that contains another
        # is found only where that one is, so only the others need looking for.
        self._needles = tuple(f for f in ordered if not any(o in f for o in forms if o != f))

    def __bool__(self) -> bool:
        return self._pattern is not None

    def mask(self, text: str) -> str:
        if self._pattern is None:
            return text
        for needle in self._needles:
            if needle in text:
                text = self._pattern.sub(MASK, text)
                break
        else:
            if self._escaped and "%" in text:  # escapes in another case than both needles
                lowered = text.lower()
                if any(form in lowered for form in self._escaped):
                    text = self._pattern.sub(MASK, text)
        return self._mask_line_ends(text) if self._encoded else text

    def _mask_line_ends(self, text: str) -> str:
        """Mask the part of a secret's base64 that a wrapped line starts or ends with (eight
        characters of it at least: fewer carry too few of its bits to tell)."""
        end = len(text.rstrip("="))
        if end < _MIN_BASE64_PART or not _BASE64.issuperset(text[end - _MIN_BASE64_PART : end]):
            return text  # a wrapped line of base64 ends with it (most lines do not: quick)
        last = _RUN.match(text[end - 1 :: -1])
        assert last is not None
        start = end - len(last.group())
        run = text[start:end]
        if any(run in form for form in self._encoded):  # the line lies inside a secret's
            return text[:start] + MASK + text[end:]
        cut = _earliest_start(run, self._encoded)  # ends with how a secret's begin
        if cut is not None:
            text = text[: start + cut] + MASK + text[end:]
        first = _RUN.match(text)
        if first is not None:
            upto = _latest_end(first.group(), self._encoded)  # begins with how one's end
            if upto is not None:
                return MASK + text[upto:]
        return text

    def mask_mapping(self, data: Mapping[str, str]) -> dict[str, str]:
        return {k: self.mask(v) for k, v in data.items()}


def _maskable(values: Iterable[str]) -> Iterator[str]:
    """What is masked of each secret: the value, and when it spans lines (a key in PEM form,
    a credentials file, a value with a trailing newline), each of its lines too, without the
    spaces around it: a step's output is masked line by line, so a line never holds all of
    such a value (its lines reached logs, events and the store in clear)."""
    for value in values:
        lines = {line.strip() for line in value.splitlines()} - {value, value.strip()}
        yield from (p for p in {value, value.strip()} if len(p) >= _MIN_LENGTH)
        # a line of punctuation (`---`, `-----`, `}`) is structure, not secret: masking it
        # would hide every such line in every log
        yield from (p for p in lines if len(p) >= _MIN_LENGTH and any(c.isalnum() for c in p))


def _base64_forms(raw: bytes) -> set[str]:
    """How `raw` looks inside base64 (standard and URL-safe) text, wherever it starts.

    The whole encoding of `raw` alone, and for each of the three alignments (`raw` after 0, 1
    or 2 other bytes: `"user:" + token` in HTTP basic auth) the characters that depend on
    `raw` only: those that also carry bits of the bytes before or after differ from text to
    text. A fragment shorter than `_MIN_BASE64_PART` is left out.
    """
    forms: set[str] = set()
    for encode in (base64.b64encode, base64.urlsafe_b64encode):
        forms.add(encode(raw).decode().rstrip("="))
        for before in range(3):
            encoded = encode(bytes(before) + raw).decode()
            first = -(-8 * before // 6)  # the first character made of `raw`'s bits only
            end = 8 * (before + len(raw)) // 6  # the characters after need the next bytes
            part = encoded[first:end]
            if len(part) >= _MIN_BASE64_PART:
                forms.add(part)
    return forms


def _earliest_start(run: str, forms: Iterable[str]) -> int | None:
    """Where the longest tail of `run` that a form begins with starts (None: no such tail)."""
    earliest: int | None = None
    for form in forms:
        head = form[:_MIN_BASE64_PART]
        at = run.find(head)
        while at >= 0 and (earliest is None or at < earliest):
            if form.startswith(run[at:]):
                earliest = at
                break
            at = run.find(head, at + 1)
    return earliest


def _latest_end(run: str, forms: Iterable[str]) -> int | None:
    """Where the longest head of `run` that a form ends with ends (None: no such head)."""
    latest: int | None = None
    for form in forms:
        tail = form[-_MIN_BASE64_PART:]
        at = run.rfind(tail)
        while at >= 0 and (latest is None or at + len(tail) > latest):
            if form.endswith(run[: at + len(tail)]):
                latest = at + len(tail)
                break
            at = run.rfind(tail, 0, at + len(tail) - 1)
    return latest


def known_secrets(names: Iterable[str], environ: Mapping[str, str]) -> dict[str, str]:
    """The values of the named secrets that `environ` has (the others: not known here)."""
    return {name: environ[name] for name in dict.fromkeys(names) if name in environ}


@contextlib.contextmanager
def secrets_masked(secrets: Mapping[str, str]) -> Iterator[None]:
    """An error the block raises, with the secrets' values masked in what it says: an error
    about what an operator gave (a param, a step name) echoes it back."""
    try:
        yield
    except WorkflowError as exc:
        masker = Masker(secrets.values())
        if not masker:
            raise
        problems = [dataclasses.replace(p, message=masker.mask(p.message)) for p in exc.problems]
        raise WorkflowError(problems) from None
    except TempehError as exc:
        masker = Masker(secrets.values())
        said = str(exc)
        if masker.mask(said) == said:
            raise
        raise TempehError(masker.mask(said)) from None
