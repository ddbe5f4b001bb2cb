"""Secrets: read from the environment, passed to steps, and masked wherever text surfaces."""

from __future__ import annotations

import base64
import re
import urllib.parse
from collections.abc import Iterable, Mapping

from tempeh_tui.errors import TempehError

__all__ = ["MASK", "Masker", "MissingSecret", "collect_secrets"]

MASK = "***"
_MIN_LENGTH = 3
"""Shorter values would mask too much ordinary text to be useful (and are weak secrets)."""


class MissingSecret(TempehError):
    def __init__(self, names: Iterable[str]) -> None:
        self.names = sorted(names)
        listed = ", ".join(self.names)
        super().__init__(
            f"secret(s) not set in the environment: {listed}; export them before the run"
        )


def collect_secrets(names: Iterable[str], environ: Mapping[str, str]) -> dict[str, str]:
    """The values of the named environment variables; raise MissingSecret for unset ones."""
    wanted = list(dict.fromkeys(names))
    missing = [n for n in wanted if n not in environ]
    if missing:
        raise MissingSecret(missing)
    return {n: environ[n] for n in wanted}


class Masker:
    """Replaces each secret, in its plain, base64 and URL-encoded forms, with `***`."""

    def __init__(self, values: Iterable[str] = ()) -> None:
        forms: set[str] = set()
        for value in values:
            if len(value) < _MIN_LENGTH:
                continue
            raw = value.encode()
            forms.update(
                {
                    value,
                    base64.b64encode(raw).decode().rstrip("="),
                    base64.urlsafe_b64encode(raw).decode().rstrip("="),
                    urllib.parse.quote(value, safe=""),
                    urllib.parse.quote_plus(value),
                }
            )
        ordered = sorted(forms, key=len, reverse=True)  # longest first: no partial masks
        self._pattern = re.compile("|".join(map(re.escape, ordered))) if ordered else None

    def __bool__(self) -> bool:
        return self._pattern is not None

    def mask(self, text: str) -> str:
        if self._pattern is None or not text:
            return text
        return self._pattern.sub(MASK, text)

    def mask_mapping(self, data: Mapping[str, str]) -> dict[str, str]:
        return {k: self.mask(v) for k, v in data.items()}
