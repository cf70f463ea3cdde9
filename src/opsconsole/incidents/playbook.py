"""Incident playbooks: the YAML schema (strict pydantic) and the loader.

A playbook per category holds phases of tasks, the status-update cadence per severity,
regulatory deadlines with their source, and the working-day calendars those deadlines
count in. Every problem in a playbook file is reported with file:line:col.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Literal
from zoneinfo import ZoneInfo

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from opsconsole.config import TimeZoneName
from opsconsole.errors import NotFoundError, SourceError, SourceLocation
from opsconsole.incidents.model import ROLES, SEVERITIES
from opsconsole.yamlsource import Marks, format_field, load_yaml, validate

if TYPE_CHECKING:
    from opsconsole.config import Config

__all__ = [
    "Calendar",
    "Deadline",
    "Phase",
    "Playbook",
    "PlaybookTask",
    "RunbookLink",
    "find_playbook",
    "load_playbook",
    "playbook_dirs",
]

Id = Annotated[str, Field(pattern=r"^[a-z0-9][a-z0-9_-]*$", max_length=64)]
Weekday = Literal["mon", "tue", "wed", "thu", "fri", "sat", "sun"]
WEEKDAYS: tuple[str, ...] = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Calendar(_Strict):
    """Where and how a jurisdiction counts days."""

    timezone: TimeZoneName = Field(description="IANA zone the jurisdiction's days are counted in")
    weekend: list[Weekday] = Field(default_factory=lambda: ["sat", "sun"])
    holidays: list[dt.date] = Field(
        default_factory=list, description="public holidays (not working days), YYYY-MM-DD"
    )

    @property
    def tz(self) -> ZoneInfo:
        return ZoneInfo(self.timezone)

    def is_working_day(self, day: dt.date) -> bool:
        return WEEKDAYS[day.weekday()] not in self.weekend and day not in self.holidays


class RunbookLink(_Strict):
    name: str = Field(description="runbook name or path")
    params: dict[str, str] = Field(
        default_factory=dict,
        description="values may use {{ region }}, {{ regions }}, {{ service }}, "
        "{{ services }}, {{ incident_id }}",
    )


class PlaybookTask(_Strict):
    id: Id
    title: str
    owner: str = Field(description="owner role: " + ", ".join(ROLES))
    instructions: str = ""
    runbook: RunbookLink | None = None
    requires: list[Id] = Field(default_factory=list, description="ids of tasks done first")

    @field_validator("owner")
    @classmethod
    def _role(cls, value: str) -> str:
        if value not in ROLES:
            raise ValueError(f"unknown role {value!r}; roles are {', '.join(ROLES)}")
        return value

    @field_validator("runbook", mode="before")
    @classmethod
    def _runbook_shorthand(cls, value: Any) -> Any:
        return {"name": value} if isinstance(value, str) else value


class Phase(_Strict):
    id: Id
    title: str = ""
    tasks: list[PlaybookTask] = Field(min_length=1)


class Deadline(_Strict):
    """A clock: a duration after an anchor, in hours, calendar days or working days."""

    id: Id
    title: str
    jurisdiction: str = Field(description="e.g. EU, IN, SG, BR, PCI")
    anchor: str = Field(
        "detected", description="detected | declared | decision:NAME (e.g. decision:notifiable)"
    )
    hours: float | None = Field(None, gt=0)
    calendar_days: int | None = Field(None, gt=0)
    working_days: int | None = Field(None, gt=0)
    calendar: str | None = Field(
        None, description="calendar to count days in; default: the jurisdiction's"
    )
    citation: str = Field(min_length=3)
    verified_on: dt.date = Field(description="when someone last checked the citation")
    source_url: str | None = None
    met_by: Id | None = Field(None, description="task whose completion meets the deadline")
    notes: str = ""

    @field_validator("anchor")
    @classmethod
    def _anchor(cls, value: str) -> str:
        if value in ("detected", "declared"):
            return value
        kind, _, name = value.partition(":")
        if kind != "decision" or not name.strip():
            raise ValueError("anchor must be detected, declared or decision:NAME")
        return f"decision:{name.strip()}"

    @model_validator(mode="after")
    def _one_unit(self) -> Deadline:
        given = [k for k in ("hours", "calendar_days", "working_days") if getattr(self, k)]
        if len(given) != 1:
            raise ValueError(
                "a deadline needs exactly one of hours, calendar_days, working_days"
                + (f" (has {', '.join(given)})" if given else "")
            )
        return self

    @property
    def decision(self) -> str | None:
        return self.anchor.split(":", 1)[1] if self.anchor.startswith("decision:") else None

    @property
    def within(self) -> str:
        if self.hours:
            return f"{self.hours:g} hours"
        if self.calendar_days:
            return f"{self.calendar_days} calendar days"
        return f"{self.working_days} working days"


class Playbook(_Strict):
    name: str
    category: Id
    description: str = ""
    decisions: dict[Id, str] = Field(
        default_factory=dict, description="decisions that anchor clocks -> what they mean"
    )
    status_updates: dict[str, int] = Field(
        default_factory=dict, description="severity -> minutes between status updates"
    )
    phases: list[Phase] = Field(min_length=1)
    deadlines: list[Deadline] = Field(default_factory=list)
    calendars: dict[str, Calendar] = Field(default_factory=dict)

    @field_validator("status_updates")
    @classmethod
    def _severities(cls, value: dict[str, int]) -> dict[str, int]:
        for sev, minutes in value.items():
            if sev not in SEVERITIES:
                raise ValueError(f"unknown severity {sev!r}; use {', '.join(SEVERITIES)}")
            if minutes <= 0:
                raise ValueError(f"{sev}: minutes must be positive")
        return value

    def tasks(self) -> list[tuple[str, PlaybookTask]]:
        return [(p.id, t) for p in self.phases for t in p.tasks]

    def calendar_for(self, deadline: Deadline) -> Calendar:
        name = deadline.calendar or deadline.jurisdiction
        return self.calendars.get(name) or Calendar(timezone="UTC")


def _cross_check(book: Playbook, marks: Marks) -> None:
    problems: list[tuple[SourceLocation, str, str]] = []

    def add(path: tuple[str | int, ...], msg: str) -> None:
        problems.append((marks.locate(path), format_field(path), msg))

    seen: dict[str, tuple[str | int, ...]] = {}
    for pi, phase in enumerate(book.phases):
        for ti, task in enumerate(phase.tasks):
            path: tuple[str | int, ...] = ("phases", pi, "tasks", ti, "id")
            if task.id in seen:
                add(path, f"duplicate task id {task.id!r}")
            seen[task.id] = path
    for pi, phase in enumerate(book.phases):
        for ti, task in enumerate(phase.tasks):
            for ri, req in enumerate(task.requires):
                if req not in seen:
                    add(("phases", pi, "tasks", ti, "requires", ri), f"unknown task {req!r}")
                elif req == task.id:
                    add(("phases", pi, "tasks", ti, "requires", ri), "a task cannot require itself")
    ids: set[str] = set()
    for di, d in enumerate(book.deadlines):
        if d.id in ids:
            add(("deadlines", di, "id"), f"duplicate deadline id {d.id!r}")
        ids.add(d.id)
        if d.met_by is not None and d.met_by not in seen:
            add(("deadlines", di, "met_by"), f"unknown task {d.met_by!r}")
        if d.decision is not None and d.decision not in book.decisions:
            add(
                ("deadlines", di, "anchor"),
                f"unknown decision {d.decision!r}; declare it under decisions:",
            )
        if d.working_days and (d.calendar or d.jurisdiction) not in book.calendars:
            add(
                ("deadlines", di, "calendar" if d.calendar else "jurisdiction"),
                f"working days need a calendar {d.calendar or d.jurisdiction!r} under calendars:",
            )
    if problems:
        raise SourceError(problems)


def load_playbook(path: Path, text: str | None = None) -> Playbook:
    """Parse and check one playbook file; :class:`SourceError` names file:line:col."""
    data, marks = load_yaml(path, text)
    book = validate(Playbook, data if data is not None else {}, marks)
    _cross_check(book, marks)
    return book


def playbook_dirs(config: Config | None) -> list[Path]:
    """Where playbooks are looked up: the settings' ``playbook_dirs``, ``playbooks/`` in or
    beside the config directory, then the shipped ones."""
    from opsconsole.paths import shipped_dir

    dirs: list[Path] = []
    if config is not None:
        dirs += [p for p in (config.resolve(d) for d in config.settings.playbook_dirs) if p]
        dirs.append(config.directory / "playbooks")
        dirs.append(config.directory.parent / "playbooks")
    dirs.append(shipped_dir("playbooks"))
    out: list[Path] = []
    for d in dirs:
        if d not in out:
            out.append(d)
    return out


def find_playbook(category: str, config: Config | None) -> Path:
    """The playbook file for a category (``<dir>/<category>.yaml``), first match wins."""
    dirs = playbook_dirs(config)
    for d in dirs:
        for suffix in (".yaml", ".yml"):
            candidate = d / f"{category}{suffix}"
            if candidate.is_file():
                return candidate
    available = sorted({p.stem for d in dirs if d.is_dir() for p in d.glob("*.y*ml")})
    raise NotFoundError(
        f"no playbook for category {category!r}; available: {', '.join(available) or 'none'} "
        f"(searched {', '.join(str(d) for d in dirs)})"
    )
