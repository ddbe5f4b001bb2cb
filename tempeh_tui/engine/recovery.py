"""ErrorRecovery: why an attempt failed, and whether and when to try again (SPEC 5.1).

The workflow's `errors` rules are asked first (first match wins), then the built-ins. Sleeping
and randomness are injected so that backoff is testable without waiting.
"""

from __future__ import annotations

import re
import signal
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from functools import lru_cache
from random import Random
from typing import Any

import anyio

from tempeh_tui.definition.models import ErrorClass, ErrorRule, RetryPolicy, Severity
from tempeh_tui.engine.executor import ExecResult

__all__ = ["Classification", "ErrorRecovery", "Sleep"]

Sleep = Callable[[float], Awaitable[None]]

_TRANSIENT_EXIT_CODES = frozenset({75, 111})  # EX_TEMPFAIL; ECONNREFUSED as an exit status
_PERMANENT_EXIT_CODES = frozenset({126, 127})  # found but not executable; not found
_TRANSIENT_OUTPUT = re.compile(
    r"connection refused|temporarily unavailable|connection reset|try again", re.IGNORECASE
)
_RESOURCE_OUTPUT = re.compile(r"out of memory|cannot allocate memory|no space left", re.I)
_TRANSIENT_EXCEPTIONS = (
    "ConnectionError",
    "ConnectionRefusedError",
    "ConnectionResetError",
    "TimeoutError",
    "BrokenPipeError",
)
_DEFAULT_SEVERITY = {
    ErrorClass.TRANSIENT: Severity.LOW,
    ErrorClass.PERMANENT: Severity.HIGH,
    ErrorClass.TIMEOUT: Severity.MEDIUM,
    ErrorClass.CANCELLED: Severity.LOW,
    ErrorClass.RESOURCE: Severity.HIGH,
    ErrorClass.UNKNOWN: Severity.MEDIUM,
}


@dataclass(frozen=True)
class Classification:
    error_class: ErrorClass
    severity: Severity
    reason: str
    """Which rule decided, in words (`exit code 127: command not found`)."""


@lru_cache(maxsize=256)
def _compiled(pattern: str) -> re.Pattern[str]:
    return re.compile(pattern)


class ErrorRecovery:
    """Classifies failures and paces retries for one run."""

    def __init__(
        self,
        rules: Sequence[ErrorRule | Mapping[str, Any]] = (),
        *,
        sleep: Sleep = anyio.sleep,
        rng: Random | None = None,
    ) -> None:
        # rules as a workflow's `errors` says them (dicts) or as models
        self.rules = tuple(
            rule if isinstance(rule, ErrorRule) else ErrorRule.model_validate(rule)
            for rule in rules
        )
        self.sleep = sleep
        self.rng = rng or Random()

    def classify(self, result: ExecResult, output_tail: str = "") -> Classification:
        """The class of a failed attempt. `output_tail` is the end of what it printed."""
        if result.cancelled:
            return self._built_in(ErrorClass.CANCELLED, "cancelled")
        # Rules read what the step said (and a Python step's exception); never tempeh's own
        # "timed out after 5s", or a rule for a command's "timed out" would catch timeouts too.
        text = (
            output_tail
            if result.error is None or result.timed_out
            else f"{output_tail}\n{result.error}"
        )
        for number, rule in enumerate(self.rules, start=1):
            if self._matches(rule, result, text):
                return Classification(
                    rule.error_class, rule.severity, f"matched error rule {number}"
                )
        if result.timed_out:
            return self._built_in(ErrorClass.TIMEOUT, "timed out")
        if result.signal is not None:
            name = _signal_name(result.signal)
            return self._built_in(ErrorClass.RESOURCE, f"killed by {name}")
        code = result.exit_code
        if code in _TRANSIENT_EXIT_CODES:
            return self._built_in(ErrorClass.TRANSIENT, f"exit code {code}")
        if code in _PERMANENT_EXIT_CODES:
            what = "command not found" if code == 127 else "command not executable"
            return self._built_in(ErrorClass.PERMANENT, f"exit code {code}: {what}")
        if code is not None and code > 128 and code - 128 in (signal.SIGKILL, signal.SIGSEGV):
            return self._built_in(ErrorClass.RESOURCE, f"exit code {code}: killed by a signal")
        if result.error and result.error.split(":", 1)[0] in _TRANSIENT_EXCEPTIONS:
            return self._built_in(ErrorClass.TRANSIENT, result.error.split(":", 1)[0])
        if result.error and result.error.startswith("MemoryError"):
            return self._built_in(ErrorClass.RESOURCE, "MemoryError")
        if _TRANSIENT_OUTPUT.search(text):
            return self._built_in(ErrorClass.TRANSIENT, "output says the failure is temporary")
        if _RESOURCE_OUTPUT.search(text):
            return self._built_in(ErrorClass.RESOURCE, "output says a resource ran out")
        return self._built_in(ErrorClass.UNKNOWN, f"exit code {code}" if code else "failed")

    @staticmethod
    def _built_in(error_class: ErrorClass, reason: str) -> Classification:
        return Classification(error_class, _DEFAULT_SEVERITY[error_class], reason)

    @staticmethod
    def _matches(rule: ErrorRule, result: ExecResult, text: str) -> bool:
        if rule.exit_codes is not None and result.exit_code not in rule.exit_codes:
            return False
        return rule.output is None or _compiled(rule.output).search(text) is not None

    def should_retry(self, policy: RetryPolicy, error_class: ErrorClass, attempt: int) -> bool:
        """Whether attempt number `attempt` (just failed with `error_class`) gets another try."""
        return (
            attempt < policy.attempts
            and error_class in policy.classes
            and error_class is not ErrorClass.CANCELLED
        )

    def delay(self, policy: RetryPolicy, next_attempt: int) -> float:
        """The pause before `next_attempt`: backoff, capped, and with jitter when asked.

        Jitter is "equal jitter": between half the delay and the whole of it, so retries of
        many steps spread out without ever retrying sooner than half the backoff.
        """
        base = policy.delay_before(next_attempt)
        if policy.jitter and base > 0:
            return base / 2 + self.rng.uniform(0, base / 2)
        return base


def _signal_name(number: int) -> str:
    try:
        return signal.Signals(number).name
    except ValueError:
        return f"signal {number}"
