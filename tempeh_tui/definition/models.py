"""The workflow file as frozen pydantic models (SPEC section 1).

The models check each value on its own; checks across values (needs, cycles, resources,
expressions) live in `checks.py` so that they can report every problem with its position.
"""

from __future__ import annotations

import hashlib
import json
import re
from enum import StrEnum
from typing import Annotated, Any, Literal, Self

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    PrivateAttr,
    ValidationInfo,
    field_validator,
    model_validator,
)

from tempeh_tui.definition.types import (
    Count,
    Duration,
    EnvName,
    NeedName,
    ParamName,
    ParamValue,
    Percent,
    StepName,
    Text,
    Timeout,
    need_step,
    scalar_as_text,
)
from tempeh_tui.definition.yaml_reader import SourceMap

__all__ = [
    "CacheSpec",
    "ErrorClass",
    "ErrorRule",
    "OnFailure",
    "Param",
    "ResourceLimits",
    "RetryPolicy",
    "RollbackSpec",
    "Severity",
    "Step",
    "StepDefaults",
    "Workflow",
]


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid", populate_by_name=True)


class ErrorClass(StrEnum):
    """Why a step failed, which decides whether retrying is worth it (SPEC 5.1)."""

    TRANSIENT = "transient"
    PERMANENT = "permanent"
    TIMEOUT = "timeout"
    CANCELLED = "cancelled"
    RESOURCE = "resource"
    UNKNOWN = "unknown"


class Severity(StrEnum):
    LOW = "low"
    MEDIUM = "medium"
    HIGH = "high"
    CRITICAL = "critical"


class OnFailure(StrEnum):
    """What a run does when a step has failed for good (SPEC 5.2)."""

    PAUSE = "pause"
    ROLLBACK = "rollback"
    CONTINUE = "continue"
    ABORT = "abort"


def _regex(value: str) -> str:
    try:
        re.compile(value)
    except re.error as exc:
        raise ValueError(f"'{value}' is not a valid regular expression: {exc}") from None
    return value


def _python_ref(value: str) -> str:
    if not re.fullmatch(r"[A-Za-z_][\w.]*:[A-Za-z_][\w.]*", value):
        raise ValueError(
            f"'{value}' is not a callable reference; expected 'package.module:function'"
        )
    return value


def _salvaging(info: ValidationInfo) -> bool:
    """True while the loader re-reads an invalid step to check what is valid in it."""
    return bool(info.context and info.context.get("salvage"))


class Param(_Frozen):
    """A workflow parameter; written either as a mapping or as its bare default value."""

    default: ParamValue | None = None
    required: bool = False
    description: Text | None = None
    choices: tuple[ParamValue, ...] | None = None
    secret: bool = False

    @model_validator(mode="before")
    @classmethod
    def _bare_default(cls, data: Any) -> Any:
        return data if isinstance(data, dict) else {"default": data}

    @model_validator(mode="after")
    def _default_among_choices(self) -> Self:
        if self.choices is not None:
            if not self.choices:
                raise ValueError("choices must list at least one value")
            if self.default is not None and str(self.default) not in {str(c) for c in self.choices}:
                shown = ", ".join(str(c) for c in self.choices)
                raise ValueError(f"default '{self.default}' is not one of the choices ({shown})")
        return self


class RetryPolicy(_Frozen):
    """How often and how patiently a failed step is tried again (SPEC 5.1)."""

    attempts: Count = 1
    backoff: Literal["exponential", "fixed"] = "exponential"
    delay: Duration = 1.0
    max_delay: Duration = 60.0
    jitter: bool = True
    classes: tuple[ErrorClass, ...] = (ErrorClass.TRANSIENT, ErrorClass.TIMEOUT, ErrorClass.UNKNOWN)

    @model_validator(mode="before")
    @classmethod
    def _bare_attempts(cls, data: Any) -> Any:
        return {"attempts": data} if isinstance(data, int) and not isinstance(data, bool) else data

    def delay_before(self, attempt: int) -> float:
        """The delay (before jitter) ahead of attempt number `attempt` (2, 3, ...)."""
        if self.backoff == "fixed":
            return min(self.delay, self.max_delay)
        return min(self.delay * 2.0 ** max(attempt - 2, 0), self.max_delay)


class ErrorRule(_Frozen):
    """Classify a failure by exit code and/or output; the first matching rule wins."""

    exit_codes: tuple[int, ...] | None = None
    output: Annotated[Text, AfterValidator(_regex)] | None = None
    error_class: ErrorClass = Field(alias="class")
    severity: Severity = Severity.MEDIUM

    @model_validator(mode="after")
    def _matches_something(self) -> Self:
        if self.exit_codes is None and self.output is None:
            raise ValueError("an error rule needs exit_codes, output, or both")
        return self


class RollbackSpec(_Frozen):
    """The compensation of a step: a shell command, its own timeout, and a check of its effect."""

    run: Text
    timeout: Timeout | None = None
    verify: Text | None = None

    @model_validator(mode="before")
    @classmethod
    def _bare_command(cls, data: Any) -> Any:
        if isinstance(data, str | int | float):  # a number is judged as the command's text
            return {"run": data}
        if isinstance(data, dict) and "command" in data and "run" not in data:
            return {("run" if k == "command" else k): v for k, v in data.items()}
        return data


def _inside_the_workflow(pattern: str) -> str:
    """A `cache.files` pattern names files under the workflow's directory."""
    if pattern.startswith(("/", "~")) or ".." in pattern.replace("\\", "/").split("/"):
        raise ValueError(
            f"'{pattern}' leaves the workflow's directory; expected a pattern relative to it "
            "(such as migrations/**)"
        )
    return pattern


class CacheSpec(_Frozen):
    """Skip a step when a succeeded attempt had the same rendered key and file contents."""

    key: Text
    files: tuple[Annotated[Text, AfterValidator(_inside_the_workflow)], ...] = ()


class ResourceLimits(_Frozen):
    """Host load (percent) above which no new step starts."""

    cpu: Percent | None = None
    memory: Percent | None = None


class StepDefaults(_Frozen):
    """Step keys (any but `name`, SPEC 1) applied to every step that does not set them itself.

    What a step "sets" is read with care where keys go together: an action (`run`, `python`)
    goes only to a step that has none (not to a `python` step, nor to an approval gate);
    `max_parallel`, `max_iterations` and `interval` only to a step that fans out or loops (with
    the defaults applied); `needs` not to the steps it names.
    """

    description: Text | None = None
    run: Text | None = None
    python: Annotated[Text, AfterValidator(_python_ref)] | None = None
    confirm: Text | None = None
    needs: tuple[NeedName, ...] | None = None
    when: Text | None = None
    env: dict[EnvName, Text] | None = None
    secrets: tuple[EnvName, ...] | None = None
    resources: dict[Text, Count] | None = None
    exclusive: bool | None = None
    rollback: RollbackSpec | None = None
    verify: Text | None = None
    timeout: Timeout | None = None
    retry: RetryPolicy | None = None
    idempotent: bool | None = None
    check: Text | None = None
    cache: CacheSpec | None = None
    for_each: tuple[ForEachItem, ...] | None = None
    max_parallel: Count | None = None
    until: Text | None = None
    max_iterations: Count | None = None
    interval: Duration | None = None
    continue_on_error: bool | None = None
    estimate: Duration | None = None

    @model_validator(mode="before")
    @classmethod
    def _seed_form(cls, data: Any) -> Any:
        if not isinstance(data, dict):
            return data
        out = {STEP_ALIASES.get(k, k): v for k, v in data.items()}
        if "parallel" in out and isinstance(out["parallel"], bool):
            out.setdefault("exclusive", not out.pop("parallel"))
        if isinstance(out.get("needs"), str):
            out["needs"] = [out["needs"]]
        return out

    @field_validator("for_each")
    @classmethod
    def _items(cls, value: tuple[Any, ...] | None) -> tuple[Any, ...] | None:
        return _for_each_items(value)

    def apply(self, step: Step) -> Step:
        """`step` with these defaults for the keys it does not set (and that apply to it)."""
        given = step.model_fields_set
        update: dict[str, Any] = {}
        for key in _DEFAULTS_IN_ORDER:
            value = getattr(self, key)
            if value is None or key in given or key not in self.model_fields_set:
                continue
            if key in ("run", "python") and given & {"run", "python", "confirm"}:
                continue
            if key == "needs" and step.name in {need_step(n) for n in value}:
                continue  # a step it names: `defaults: {needs: [checkout, lint]}`
            if key == "max_parallel" and update.get("for_each", step.for_each) is None:
                continue
            if key in ("interval", "max_iterations") and update.get("until", step.until) is None:
                continue
            update[key] = value
        return step.model_copy(update=update) if update else step


def _for_each_items(value: tuple[Any, ...] | None) -> tuple[Any, ...] | None:
    """At least one fan-out item (each checked by `_for_each_item`, where it stands)."""
    if value is not None and not value:
        raise ValueError("for_each needs at least one item")
    return value


def _for_each_item(item: Any) -> Any:
    """A fan-out item: text, a number (as the text it was written as), a boolean, a mapping."""
    if not isinstance(item, str | int | float | bool | dict):
        raise ValueError(
            f"the item is {'empty' if item is None else 'a list'}; "
            "items must be text, numbers, booleans or mappings"
        )
    return scalar_as_text(item)


ForEachItem = Annotated[Any, BeforeValidator(_for_each_item)]


STEP_ALIASES = {"command": "run", "dependencies": "needs"}
"""The seed's step keys and the names they stand for."""
_DEFAULTS_IN_ORDER = tuple(StepDefaults.model_fields)
"""The keys `StepDefaults.apply` goes through: `for_each` and `until` before what needs them."""


_YES_NO = {"true": True, "yes": True, "on": True, "false": False, "no": False, "off": False}
"""The words a boolean field takes as text (as pydantic does for `exclusive`): YAML 1.2 reads
`parallel: no` as the string "no"."""


class Step(_Frozen):
    """One step: a shell command, a Python callable, or an approval gate (SPEC 1)."""

    name: StepName
    description: Text | None = None
    run: Text | None = None
    python: Annotated[Text, AfterValidator(_python_ref)] | None = None
    confirm: Text | None = None
    needs: tuple[NeedName, ...] = ()
    when: Text | None = None
    env: dict[EnvName, Text] = Field(default_factory=dict)
    secrets: tuple[EnvName, ...] = ()
    resources: dict[Text, Count] = Field(default_factory=dict)
    exclusive: bool = False
    rollback: RollbackSpec | None = None
    verify: Text | None = None
    timeout: Timeout | None = None
    retry: RetryPolicy | None = None
    idempotent: bool = True
    check: Text | None = None
    cache: CacheSpec | None = None
    for_each: tuple[ForEachItem, ...] | None = None
    max_parallel: Count | None = None
    until: Text | None = None
    max_iterations: Count | None = None
    interval: Duration | None = None
    continue_on_error: bool = False
    estimate: Duration | None = None
    """Expected duration, for the critical path; not part of SPEC, documented in the README."""

    @model_validator(mode="before")
    @classmethod
    def _seed_form(cls, data: Any, info: ValidationInfo) -> Any:
        """Accept the seed's `command`/`dependencies`/`parallel` (SPEC 1)."""
        if not isinstance(data, dict):
            return data
        out = dict(data)
        strict = not _salvaging(info)
        for alias, name in STEP_ALIASES.items():
            if alias in out:
                if name in out and strict:
                    raise ValueError(f"give either '{name}' or '{alias}', not both")
                out.setdefault(name, out.pop(alias))
                out.pop(alias, None)
        if "parallel" in out:
            given = out.pop("parallel")
            parallel = _YES_NO.get(given.lower()) if isinstance(given, str) else given
            if not isinstance(parallel, bool) and isinstance(parallel, int) and parallel in (0, 1):
                parallel = bool(parallel)
            if not isinstance(parallel, bool):
                if strict:
                    raise ValueError(f"parallel: expected true or false, got {given!r}")
            elif "exclusive" in out and out["exclusive"] == parallel:
                if strict:
                    raise ValueError("'parallel' and 'exclusive' contradict each other")
            else:
                out["exclusive"] = not parallel
        if isinstance(out.get("needs"), str):
            out["needs"] = [out["needs"]]
        if out.get("confirm") is True:
            out["confirm"] = f"Continue with step '{out.get('name', '?')}'?"
        return out

    @field_validator("for_each")
    @classmethod
    def _items(cls, value: tuple[Any, ...] | None) -> tuple[Any, ...] | None:
        return _for_each_items(value)

    @property
    def kind(self) -> Literal["run", "python", "confirm"]:
        """What the step does first: ask (confirm), call Python, or run a shell command."""
        if self.confirm is not None:
            return "confirm"
        return "python" if self.python is not None else "run"

    def shell_commands(self) -> dict[str, str]:
        """Every shell command of this step, by the key that holds it."""
        found = {"run": self.run, "verify": self.verify, "check": self.check}
        if self.rollback is not None:
            found["rollback.run"] = self.rollback.run
            found["rollback.verify"] = self.rollback.verify
        return {k: v for k, v in found.items() if v is not None}


class Workflow(_Frozen):
    """A validated workflow definition. Build it with `load_workflow` to get positions in errors."""

    name: Annotated[str, Field(pattern=r"^[a-z0-9][a-z0-9._-]*$")]
    description: Text | None = None
    params: dict[ParamName, Param] = Field(default_factory=dict)
    env: dict[EnvName, Text] = Field(default_factory=dict)
    secrets: tuple[EnvName, ...] = ()
    max_concurrency: Count = 4
    resources: dict[Text, Count] = Field(default_factory=dict)
    resource_limits: ResourceLimits = Field(default_factory=ResourceLimits)
    on_failure: OnFailure = OnFailure.PAUSE
    defaults: StepDefaults = Field(default_factory=StepDefaults)
    errors: tuple[ErrorRule, ...] = ()
    steps: tuple[Step, ...] = Field(min_length=1)

    _source_map: SourceMap | None = PrivateAttr(default=None)

    @property
    def source_map(self) -> SourceMap | None:
        """Where each value stood in the file it was read from (None if built in code)."""
        return self._source_map

    @field_validator("name", mode="before")
    @classmethod
    def _name_text(cls, value: Any) -> Any:
        if not isinstance(value, str):
            return value
        if not re.fullmatch(r"[a-z0-9][a-z0-9._-]*", value):
            raise ValueError(
                f"'{value}' is not a valid workflow name: lower-case letters, digits and . _ - "
                "starting with a letter or digit"
            )
        return value

    @model_validator(mode="after")
    def _apply_defaults_and_check(self, info: ValidationInfo) -> Self:
        """Give steps the `defaults` they do not set; check across values (unless loading)."""
        steps = tuple(self.defaults.apply(step) for step in self.steps)
        if any(new is not old for new, old in zip(steps, self.steps, strict=True)):
            object.__setattr__(self, "steps", steps)  # still construction: the model is not out yet
        if info.context and info.context.get("checked"):
            return self
        from tempeh_tui.definition.checks import check_workflow
        from tempeh_tui.errors import WorkflowError

        problems = check_workflow(self, None)
        if problems:
            raise WorkflowError(problems)
        return self

    def __eq__(self, other: object) -> bool:
        """Equal when they say the same thing, wherever each was read from (a file, a dict)."""
        if not isinstance(other, Workflow):
            return NotImplemented
        return type(self) is type(other) and self.__dict__ == other.__dict__

    def __hash__(self) -> int:
        return hash(self.fingerprint())

    def fingerprint(self) -> str:
        """SHA-256 of what the workflow says (not of its formatting or comments)."""
        data = self.model_dump(mode="json", by_alias=True, exclude_defaults=True)
        text = json.dumps(data, sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(text.encode()).hexdigest()

    def step(self, name: str) -> Step:
        for step in self.steps:
            if step.name == name:
                return step
        raise KeyError(name)
