"""'Did you mean ...?' for names that are almost right."""

from __future__ import annotations

from collections.abc import Iterable

__all__ = ["did_you_mean"]


def did_you_mean(word: str, candidates: Iterable[str]) -> str:
    """` (did you mean 'x'?)`, or an empty string when nothing is close."""
    import difflib  # only for a mistake: not on every start (~3 ms)

    close = difflib.get_close_matches(word, list(candidates), n=1, cutoff=0.6)
    return f" (did you mean '{close[0]}'?)" if close else ""
