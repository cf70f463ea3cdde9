"""The drills file (``config/drills.yaml``): plans, drill definitions and scheduler settings.

Loaded like the inventory: pydantic models that reject unknown keys, and every error
names ``file:line:col`` and the field path (through :mod:`opsconsole.yamlsource`).
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal
from zoneinfo import ZoneInfo

from pydantic import BaseModel, ConfigDict, Field, ValidationInfo, field_validator, model_validator

from opsconsole.config import TimeZoneName

__all__ = [
    "Drill",
    "DrillObjectives",
    "DrillsFile",
    "PlanPolicy",
    "Schedule",
    "SchedulerSettings",
]

NAME = r"^[a-z0-9][a-z0-9_.-]*$"
Name = Annotated[str, Field(pattern=NAME, max_length=64)]
DEFAULT_GRACE_SECONDS = 3600


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Schedule(_Strict):
    """A cron expression in a time zone, or a one-off time."""

    cron: str | None = Field(
        None,
        description="crontab: minute hour day month weekday (0/7 = Sunday); "
        "6 fields = leading seconds",
    )
    at: datetime | None = Field(None, description="one-off time, ISO-8601")
    timezone: TimeZoneName = Field("UTC", description="IANA zone the cron expression is read in")

    @model_validator(mode="after")
    def _one_of(self) -> Schedule:
        if (self.cron is None) == (self.at is None):
            raise ValueError("a schedule needs exactly one of cron or at")
        if self.cron is not None:
            from opsconsole.drills.schedule import validate_cron

            try:
                validate_cron(self.cron, self.timezone)
            except ValueError as exc:
                raise ValueError(f"invalid cron expression {self.cron!r}: {exc}") from None
        if self.at is not None and self.at.tzinfo is None:
            self.at = self.at.replace(tzinfo=ZoneInfo(self.timezone))
        return self

    def describe(self) -> str:
        if self.cron is not None:
            return f"cron '{self.cron}' {self.timezone}"
        assert self.at is not None
        return f"once at {self.at.isoformat()}"


class DrillObjectives(_Strict):
    rto_seconds: float | None = Field(None, gt=0, description="recovery time objective")
    rpo_seconds: float | None = Field(None, ge=0, description="recovery point objective")


class Drill(_Strict):
    """One drill definition."""

    plan: Name = Field(description="continuity plan it belongs to, e.g. payments-bcp")
    kind: Literal["tabletop", "live"]
    description: str = ""
    runbook: str | None = Field(None, description="runbook name or path (required for live)")
    params: dict[str, str] = Field(default_factory=dict)
    target: Name | None = Field(None, description="inventory region the drill acts on")
    allow_production: bool = Field(
        False, description="allow a target whose inventory environment is production"
    )
    schedule: Schedule | None = None
    objectives: DrillObjectives = Field(default_factory=DrillObjectives)
    owner: str = Field(min_length=1)
    fail_back: bool = Field(
        False,
        description="after a successful live drill, run the runbook's rollback steps so the "
        "target returns to normal service (a failed fail-back fails the drill)",
    )
    enabled: bool = True
    grace_seconds: float | None = Field(
        None, gt=0, description="run a late drill if at most this late (default: scheduler's)"
    )

    @field_validator("params", mode="before")
    @classmethod
    def _stringify(cls, value: Any) -> Any:
        if isinstance(value, dict):
            return {k: v if isinstance(v, str) else str(v) for k, v in value.items()}
        return value

    @field_validator("target")
    @classmethod
    def _known_region(cls, value: str | None, info: ValidationInfo) -> str | None:
        regions = (info.context or {}).get("regions")
        if value is not None and regions is not None and value not in regions:
            raise ValueError(
                f"unknown region {value!r} (inventory has {', '.join(sorted(regions))})"
            )
        return value

    @model_validator(mode="after")
    def _live_needs(self) -> Drill:
        if self.kind == "live":
            # No schedule is fine: a live drill may be run by hand only.
            missing = [f for f in ("runbook", "target") if getattr(self, f) is None]
            if missing:
                raise ValueError(f"a live drill needs {' and '.join(missing)}")
        return self


class PlanPolicy(_Strict):
    """What keeping a continuity plan's drill programme means."""

    description: str = ""
    owner: str | None = None
    min_drills_per_year: int = Field(2, ge=0)
    min_live_per_year: int = Field(1, ge=0)
    review_within_days: int = Field(365, ge=1, description="plan review at most this old")


class SchedulerSettings(_Strict):
    misfire_grace_seconds: float = Field(
        DEFAULT_GRACE_SECONDS,
        gt=0,
        description="a drill that fell due at most this long ago still runs; older: missed",
    )
    reload_seconds: float = Field(5, gt=0, description="how often to check files for changes")
    heartbeat_seconds: float = Field(
        10,
        gt=0,
        description="how often the scheduler lease is renewed (at most a third of settings "
        "lease_seconds, so that two missed beats do not lose it)",
    )
    followup_days: int = Field(30, ge=1, description="due date of automatic follow-ups")


class DrillsFile(_Strict):
    scheduler: SchedulerSettings = Field(default_factory=SchedulerSettings)
    plans: dict[Name, PlanPolicy] = Field(default_factory=dict)
    drills: dict[Name, Drill] = Field(default_factory=dict)

    def policy(self, plan: str) -> PlanPolicy:
        return self.plans.get(plan) or PlanPolicy()

    def plan_names(self) -> list[str]:
        return sorted(set(self.plans) | {d.plan for d in self.drills.values()})

    def grace(self, drill: Drill) -> float:
        return drill.grace_seconds or self.scheduler.misfire_grace_seconds
