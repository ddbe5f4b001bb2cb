"""Turning a step into what runs: its expression scope, its environment, its commands.

Values never become shell code (SPEC 1.1): each `{{ expr }}` in a command is evaluated here and
handed to the process as an environment variable that the command references.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from functools import cached_property, lru_cache
from typing import Any

from tempeh_tui.definition.checks import param_env_name
from tempeh_tui.definition.expressions import (
    EnvironmentView,
    ExpressionError,
    evaluate,
    render_template,
)
from tempeh_tui.definition.models import Workflow
from tempeh_tui.definition.shell_template import (
    CODE_IN_BRACKETS,
    ShellTemplate,
    expands_as_code,
    parse_shell_template,
)
from tempeh_tui.engine.decisions import RetryValues
from tempeh_tui.engine.results import UnitResult
from tempeh_tui.events import StepStatus
from tempeh_tui.graph.build import Unit, WorkflowGraph

__all__ = ["RunScope", "StepsView", "as_text", "render_shell"]


def as_text(value: Any) -> str:
    """An expression's value as the text a process sees."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return value
    if isinstance(value, int | float):
        return str(value)
    return json.dumps(value, ensure_ascii=False, default=str)


def _env_value(name: str, template: str, scope: Mapping[str, Any]) -> str:
    """An `env` value rendered; refused if its values put code in brackets, which a step's
    script could meet as a number (`$(( N ))`): like every value a process gets (SPEC 1.1)."""
    value = render_template(template, scope)
    if value is not template and expands_as_code(value) and not expands_as_code(template):
        raise ExpressionError(f"env {name}: its value holds {CODE_IN_BRACKETS}")
    return value


@lru_cache(maxsize=4096)
def _template(command: str) -> ShellTemplate:
    return parse_shell_template(command)


def render_shell(command: str, scope: Mapping[str, Any]) -> tuple[str, dict[str, str]]:
    """The command with `${TEMPEH_Xn}` references, and the variables that hold the values."""
    template = _template(command)
    values = [as_text(evaluate(expr, scope)) for expr in template.expressions]
    return template.render(values)


class StepsView(Mapping[str, Mapping[str, Any]]):
    """`steps[...]` in expressions: finished units by name, and fan-out steps as a whole."""

    def __init__(self, wg: WorkflowGraph, results: Mapping[str, UnitResult]) -> None:
        self._wg = wg
        self._results = results

    def __getitem__(self, name: str) -> Mapping[str, Any]:
        result = self._results.get(name)
        if result is not None:
            return result.view()
        instances = self._wg.instances.get(name)
        if instances is not None:
            return _aggregate(self._wg, instances, self._results)
        if name in self._wg.units:
            return {"status": StepStatus.PENDING.value, "outputs": {}, "attempts": 0}
        raise KeyError(name)

    def __iter__(self) -> Iterator[str]:
        yield from self._wg.units
        yield from self._wg.instances

    def __len__(self) -> int:
        return len(self._wg.units) + len(self._wg.instances)


def _aggregate(
    wg: WorkflowGraph, instances: tuple[str, ...], results: Mapping[str, UnitResult]
) -> dict[str, Any]:
    statuses = [results[n].status if n in results else StepStatus.PENDING for n in instances]
    if any(s is StepStatus.FAILED for s in statuses):
        status = StepStatus.FAILED
    elif all(s is StepStatus.SKIPPED for s in statuses):
        status = StepStatus.SKIPPED
    elif all(s.counts_as_done for s in statuses):
        status = StepStatus.SUCCEEDED
    else:
        status = next(s for s in statuses if not s.counts_as_done)
    outputs = {
        str(wg.units[n].item if not isinstance(wg.units[n].item, dict) else wg.units[n].index): (
            dict(results[n].outputs) if n in results else {}
        )
        for n in instances
    }
    attempts = sum(results[n].attempts for n in instances if n in results)
    return {"status": status.value, "outputs": outputs, "attempts": attempts}


@dataclass
class RunScope:
    """Everything expressions and environments of one run draw on."""

    workflow: Workflow
    graph: WorkflowGraph
    run_id: str
    params: Mapping[str, Any]
    results: Mapping[str, UnitResult]
    base_env: Mapping[str, str]
    """The process environment steps inherit (os.environ at the start of the run)."""
    secrets: Mapping[str, str] = field(default_factory=dict)
    retried: dict[str, RetryValues] = field(default_factory=dict)
    """Units whose next run uses values an operator's `retry` changed (SPEC 5.2); the
    scheduler sets and clears them. Only those units see them: all else keeps the run's."""
    env_override: Mapping[str, str] = field(default_factory=dict)
    """Set on a unit's own scope (`for_unit`): its changed environment, over every `env`."""
    _unit_scopes: dict[str, tuple[RetryValues, RunScope]] = field(
        default_factory=dict, init=False, repr=False
    )

    def for_unit(self, unit: Unit) -> RunScope:
        """The scope `unit` renders in: this one, or one with its retry's values in it (its
        params, and the workflow `env` rendered again with them)."""
        values = self.retried.get(unit.name)
        if not values:
            return self
        known = self._unit_scopes.get(unit.name)
        if known is not None and known[0] is values:
            return known[1]
        scope = RunScope(
            self.workflow,
            self.graph,
            self.run_id,
            {**self.params, **values.params},
            self.results,
            self.base_env,
            self.secrets,
            env_override=values.env,
        )
        self._unit_scopes[unit.name] = (values, scope)
        return scope

    @cached_property
    def _base(self) -> dict[str, Any]:
        """What every expression of the run reads (`steps` is a live view of the results)."""
        return {
            "params": self.params,
            "workflow": {"name": self.workflow.name},
            "run": {"id": self.run_id},
            "steps": StepsView(self.graph, self.results),
        }

    @cached_property
    def _process_env(self) -> dict[str, str]:
        """The inherited environment as expressions see it: secrets only where declared."""
        return {k: v for k, v in self.base_env.items() if k not in self.secrets}

    @cached_property
    def _workflow_env(self) -> dict[str, str]:
        """The workflow's `env`, each value rendered with the environment before it."""
        env: dict[str, str] = {}
        seen = EnvironmentView(self._process_env)
        for name, value in self.workflow.env.items():
            env[name] = seen[name] = _env_value(name, value, {**self._base, "env": seen})
        env.update(self.env_override)
        return env

    @cached_property
    def _expression_env(self) -> dict[str, str]:
        """`env` in expressions (SPEC 1.1): what a step's process inherits, with the
        workflow's `env` over it (a step's own `env` goes over both, per step)."""
        return EnvironmentView({**self._process_env, **self._workflow_env})

    @cached_property
    def _run_env(self) -> dict[str, str]:
        """The part of every step's environment that is the same for the whole run."""
        env = {k: v for k, v in self.base_env.items() if k not in self.secrets}
        env.update(self._workflow_env)
        for name, value in self.params.items():
            env[param_env_name(name)] = as_text(value)
        for name in self.workflow.secrets:
            env[name] = self.secrets[name]
        env["TEMPEH_RUN_ID"] = self.run_id
        env["TEMPEH_WORKFLOW"] = self.workflow.name
        return env

    def workflow_env(self) -> dict[str, str]:
        return self._workflow_env

    def expression_scope(
        self,
        unit: Unit,
        *,
        outputs: Mapping[str, str] | None = None,
        iteration: int = 1,
    ) -> dict[str, Any]:
        """What `when`, `until` and `{{ }}` of `unit` can read (SPEC 1.1)."""
        if unit.name in self.retried:
            return self.for_unit(unit).expression_scope(unit, outputs=outputs, iteration=iteration)
        scope = dict(self._base)
        if unit.is_instance:
            scope["item"] = unit.item
        scope["iteration"] = iteration
        scope["outputs"] = dict(outputs or {})
        if unit.step.env:
            env = EnvironmentView(self._expression_env)
            for name, value in unit.step.env.items():
                env[name] = _env_value(name, value, {**scope, "env": env})
            env.update(self.env_override)  # over the step's own env too
            scope["env"] = env
        else:
            scope["env"] = self._expression_env  # shared: nothing writes to it
        return scope

    def process_env(
        self,
        unit: Unit,
        scope: Mapping[str, Any],
        *,
        attempt: int,
        iteration: int,
        output_file: str | None,
    ) -> dict[str, str]:
        """The whole environment of a step's process (SPEC 1: TEMPEH_* and params)."""
        if unit.name in self.retried:
            return self.for_unit(unit).process_env(
                unit, scope, attempt=attempt, iteration=iteration, output_file=output_file
            )
        env = dict(self._run_env)
        if unit.step.env:
            env.update(scope["env"])
        env.update(  # a retry's changed env: never a secret or one of tempeh's own
            (name, value)
            for name, value in self.env_override.items()
            if name not in self.secrets and not name.startswith("TEMPEH_")
        )
        for name in unit.step.secrets:
            env[name] = self.secrets[name]  # only the secrets this step (or the run) is given
        env["TEMPEH_STEP"] = unit.name
        env["TEMPEH_ATTEMPT"] = str(attempt)
        env["TEMPEH_ITERATION"] = str(iteration)
        if unit.is_instance:
            env["TEMPEH_ITEM"] = as_text(unit.item)
        if output_file is not None:
            env["TEMPEH_OUTPUT"] = output_file
        return env
