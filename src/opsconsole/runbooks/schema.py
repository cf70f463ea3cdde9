"""The runbook YAML format: strict pydantic models (unknown keys are rejected).

A step has common fields and exactly one action key (``shell``, ``ssh``, ``http``,
``health``, ``wait_until``, ``manual``, ``input``, ``approval``, ``notify``, ``sleep``,
``runbook``). Each action is its own optional field, so a problem inside an action is
reported at that action's own path (``steps[2].http.expect.status``), and a step with
no action or two actions gets one clear message.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, PrivateAttr, field_validator, model_validator

__all__ = [
    "ACTIONS",
    "ApprovalAction",
    "HealthAction",
    "HttpAction",
    "InputAction",
    "ManualAction",
    "NotifyAction",
    "Param",
    "Precondition",
    "Retries",
    "Runbook",
    "RunbookAction",
    "ShellAction",
    "SshAction",
    "Step",
]

ID = r"^[a-z0-9][a-z0-9_-]*$"
StepId = Annotated[str, Field(pattern=ID, max_length=64)]
VarName = Annotated[str, Field(pattern=r"^[a-z_][a-z0-9_]*$", max_length=64)]
_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h)?\s*$")
_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, None: 1.0}


def _seconds(value: Any) -> Any:
    """``90``, ``90s``, ``1.5m``, ``2h`` -> seconds (float)."""
    if isinstance(value, bool):
        raise ValueError("a duration is a number of seconds or a string like 90s, 5m, 1h")
    if isinstance(value, int | float):
        return float(value)
    if isinstance(value, str):
        m = _DURATION.match(value)
        if m:
            return float(m[1]) * _UNITS[m[2]]
        raise ValueError(f"not a duration: {value!r} (use e.g. 30, 90s, 5m, 1h)")
    return value


Seconds = Annotated[float, Field(gt=0, allow_inf_nan=False)]


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Param(Strict):
    type: Literal["string", "int", "float", "bool"] = "string"
    description: str = ""
    required: bool = False
    default: str | int | float | bool | None = None
    choices: list[str | int | float] | None = None
    pattern: str | None = Field(
        None, description="regular expression the whole value must match (checked before the run)"
    )
    allow_dash: bool = Field(
        False,
        description="accept a value starting with '-' (refused by default: as a command "
        "argument it would be read as an option)",
    )
    secret: bool = Field(
        False, description="redacted everywhere; stored only encrypted for a resume"
    )

    @field_validator("pattern")
    @classmethod
    def _pattern(cls, value: str | None) -> str | None:
        if value is not None:
            try:
                re.compile(value)
            except re.error as exc:
                raise ValueError(f"not a regular expression: {exc}") from None
        return value


class Retries(Strict):
    count: int = Field(0, ge=0, le=100)
    backoff: Seconds = Field(1.0, description="seconds before the first retry")
    factor: float = Field(2.0, ge=1.0, description="backoff multiplier per retry")
    max_backoff: Seconds = 300.0

    _b = field_validator("backoff", "max_backoff", mode="before")(_seconds)

    def delay(self, attempt: int) -> float:
        """Seconds to wait before retry number ``attempt`` (1-based)."""
        return float(min(self.max_backoff, self.backoff * self.factor ** (attempt - 1)))


# --- actions -----------------------------------------------------------------------


def _shorthand(key: str) -> Any:
    def before(value: Any) -> Any:
        if isinstance(value, str | list):
            return {key: value}
        return value

    return before


class ShellAction(Strict):
    """A local command. A list is argv (no shell); a string runs under ``/bin/sh -c``
    with every templated value shell-quoted."""

    command: str | list[str] = Field(min_length=1)
    cwd: str | None = None
    env: dict[str, str] = Field(default_factory=dict)
    stdin: str | None = None
    ok_codes: list[int] = Field(default_factory=lambda: [0])
    save_output: str | None = Field(
        None,
        description="file that receives the whole output (stdout and stderr as they come); "
        "what is kept in the run is cut at 4 MB per stream",
    )

    @model_validator(mode="before")
    @classmethod
    def _short(cls, value: Any) -> Any:
        return _shorthand("command")(value)


class SshAction(Strict):
    """A command on inventory host(s): ``hosts`` is a host alias, a group or a region."""

    hosts: str = Field(min_length=1)
    command: str | list[str] = Field(min_length=1)
    forks: int = Field(10, ge=1, le=500)
    max_fail_percentage: float = Field(0, ge=0, le=100)
    user: str | None = None


class Expectation(Strict):
    status: list[int] = Field(default_factory=lambda: [200, 201, 202, 204])
    body_contains: str | None = None
    json_equals: dict[str, Any] = Field(default_factory=dict, description="dotted path -> value")

    @field_validator("status", mode="before")
    @classmethod
    def _status(cls, value: Any) -> Any:
        return [value] if isinstance(value, int) else value


class HttpAction(Strict):
    url: str
    method: Literal["GET", "POST", "PUT", "PATCH", "DELETE", "HEAD"] = "GET"
    headers: dict[str, str] = Field(default_factory=dict)
    params: dict[str, str] = Field(default_factory=dict)
    json_body: Any = Field(None, alias="json")
    body: str | None = None
    bearer_token: str | None = Field(None, description="sent as Authorization: Bearer (redacted)")
    expect: Expectation = Field(default_factory=Expectation)
    verify_tls: bool = True

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)

    @field_validator("method", mode="before")
    @classmethod
    def _upper(cls, value: Any) -> Any:
        return value.upper() if isinstance(value, str) else value


class HealthAction(Strict):
    """Live health of a region (all its services) or one service.

    ``health`` checks once and fails unless the state is ``expect``; ``wait_until`` polls
    until it is (the step's ``timeout`` bounds the wait). ``view: customer`` asks the
    router how a customer of the region is served
    (``GET {router}/serve/{region}/{service}/healthz``).
    """

    region: str
    service: str | None = None
    expect: Literal["up", "down"] = "up"
    view: Literal["direct", "customer"] = "direct"
    interval: Seconds = 1.0
    consecutive: int = Field(1, ge=1, le=100, description="agreeing checks in a row")
    router_url: str | None = Field(None, description="default: inventory.vars.router_url")

    _i = field_validator("interval", mode="before")(_seconds)


class ManualAction(Strict):
    instructions: str

    @model_validator(mode="before")
    @classmethod
    def _short(cls, value: Any) -> Any:
        return {"instructions": value} if isinstance(value, str) else value


class InputAction(Strict):
    prompt: str
    secret: bool = False
    default: str | None = None
    pattern: str | None = Field(None, description="regular expression the answer must match")

    @model_validator(mode="before")
    @classmethod
    def _short(cls, value: Any) -> Any:
        return {"prompt": value} if isinstance(value, str) else value


class ApprovalAction(Strict):
    message: str = "approve this run"
    wait: Annotated[float, Field(ge=0)] = Field(
        0,
        description="seconds this process polls for a decision before handing back "
        "(the wait itself is durable: approve, then `runbook resume`)",
    )

    _w = field_validator("wait", mode="before")(_seconds)

    @model_validator(mode="before")
    @classmethod
    def _short(cls, value: Any) -> Any:
        if value is None or value is True:
            return {}
        return {"message": value} if isinstance(value, str) else value


class NotifyAction(Strict):
    message: str
    webhook: str | None = Field(None, description="webhook name in settings; default: all")
    severity: Literal["info", "warning", "critical"] = "info"

    @model_validator(mode="before")
    @classmethod
    def _short(cls, value: Any) -> Any:
        return {"message": value} if isinstance(value, str) else value


class RunbookAction(Strict):
    name: str
    params: dict[str, Any] = Field(default_factory=dict)


ACTIONS = (
    "shell",
    "ssh",
    "http",
    "health",
    "wait_until",
    "manual",
    "input",
    "approval",
    "notify",
    "sleep",
    "runbook",
)
# Actions that cannot change anything outside the run: they run during a dry run
# even without `check: true`.
READ_ONLY_ACTIONS = frozenset({"health", "wait_until"})


class Step(Strict):
    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)

    id: StepId
    name: str = ""
    shell: ShellAction | None = None
    ssh: SshAction | None = None
    http: HttpAction | None = None
    health: HealthAction | None = None
    wait_until: HealthAction | None = None
    manual: ManualAction | None = None
    input: InputAction | None = None
    approval: ApprovalAction | None = None
    notify: NotifyAction | None = None
    sleep: Seconds | None = None
    runbook: RunbookAction | None = None

    when: str | bool | None = Field(None, description="expression; the step runs only if true")
    timeout: Seconds | None = None
    retries: Retries = Field(default_factory=Retries)
    on_failure: Literal["abort", "continue", "rollback"] = "abort"
    # "register" would shadow ABCMeta.register on the model class, hence the alias.
    register_as: VarName | None = Field(None, alias="register", description="name its output")
    idempotent: bool = False
    check: bool = Field(False, description="read-only: runs during plan/dry-run too")
    drill: Literal["run", "skip", "auto-confirm"] = "run"
    marker: Literal["recovery_start", "recovery_end"] | None = None
    report: dict[VarName, str | float | int] = Field(default_factory=dict)
    undoes: StepId | None = Field(None, description="rollback only: run only if this step ran")

    _t = field_validator("timeout", "sleep", mode="before")(_seconds)

    @field_validator("retries", mode="before")
    @classmethod
    def _retries(cls, value: Any) -> Any:
        return {"count": value} if isinstance(value, int) and not isinstance(value, bool) else value

    @model_validator(mode="after")
    def _one_action(self) -> Step:
        given = [a for a in ACTIONS if getattr(self, a) is not None]
        if len(given) != 1:
            raise ValueError(
                "a step needs exactly one action ("
                + ", ".join(ACTIONS)
                + ")"
                + (f"; this one has {' and '.join(given)}" if given else "; it has none")
            )
        return self

    @property
    def action(self) -> str:
        return next(a for a in ACTIONS if getattr(self, a) is not None)

    @property
    def spec(self) -> Any:
        return getattr(self, self.action)

    @property
    def read_only(self) -> bool:
        return self.check or self.action in READ_ONLY_ACTIONS

    @property
    def title(self) -> str:
        return self.name or self.id


class Objectives(Strict):
    rto_seconds: float | None = Field(None, gt=0)
    rpo_seconds: float | None = Field(None, ge=0)


class Precondition(Strict):
    """Checked by the engine before a run starts (and again once its lock is held), for
    every interface: CLI, TUI, scheduler."""

    not_in_effect: list[VarName] = Field(
        min_length=1,
        description="refuse while an earlier run of this runbook with the same values of "
        "these parameters is in effect (succeeded and not rolled back), e.g. [region]",
    )
    message: str | None = Field(
        None, description="what to tell the operator; templated (params, conflict.run_id)"
    )


class Runbook(Strict):
    name: str = Field(min_length=1)
    description: str = ""
    params: dict[VarName, Param] = Field(default_factory=dict)
    lock: str | None = Field(None, description="lock key template, e.g. failover:{{ region }}")
    requires_approval: bool = False
    objectives: Objectives = Field(default_factory=Objectives)
    preconditions: list[Precondition] = Field(default_factory=list)
    steps: list[Step] = Field(min_length=1)
    rollback: list[Step] = Field(default_factory=list)

    _source: Path | None = PrivateAttr(None)

    @property
    def source(self) -> Path | None:
        """The file this runbook was loaded from."""
        return self._source
