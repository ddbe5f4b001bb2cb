"""What a Python step receives: the same facts a shell step gets through its environment."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

__all__ = ["StepContext"]


@dataclass(frozen=True)
class StepContext:
    """The argument of a `python:` step's callable.

    `steps` maps each step this one needs to `{"status", "outputs", "attempts"}`; `log(line)`
    writes a line to the step's log. So does what the step prints to `sys.stdout` or
    `sys.stderr` (`print`, `logging`): it is the step's output, as for a shell step.
    """

    run_id: str
    workflow: str
    step: str
    attempt: int
    params: Mapping[str, Any]
    env: Mapping[str, str]
    steps: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)
    outputs: Mapping[str, str] = field(default_factory=dict)
    item: Any = None
    iteration: int = 1
    log: Callable[[str], None] = print
