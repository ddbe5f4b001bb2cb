"""The workflow definition: YAML reading with positions, models, and validation.

Its names are imported when first used: `tempeh runs`, `show` and `logs` read durations from
here (`definition.durations`) and never need the models (pydantic, ~150 ms to import).
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from tempeh_tui.definition.loader import load_workflow as load_workflow
    from tempeh_tui.definition.loader import parse_workflow as parse_workflow
    from tempeh_tui.definition.models import Step as Step
    from tempeh_tui.definition.models import Workflow as Workflow

__all__ = ["Step", "Workflow", "load_workflow", "parse_workflow"]

_WHERE = {
    "load_workflow": "tempeh_tui.definition.loader",
    "parse_workflow": "tempeh_tui.definition.loader",
    "Step": "tempeh_tui.definition.models",
    "Workflow": "tempeh_tui.definition.models",
}


def __getattr__(name: str) -> object:
    module = _WHERE.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(module), name)
