"""The workflow definition: YAML reading with positions, models, and validation."""

from tempeh_tui.definition.loader import load_workflow as load_workflow
from tempeh_tui.definition.loader import parse_workflow as parse_workflow
from tempeh_tui.definition.models import Step as Step
from tempeh_tui.definition.models import Workflow as Workflow

__all__ = ["Step", "Workflow", "load_workflow", "parse_workflow"]
