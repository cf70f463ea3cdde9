"""What an incident is: severities, statuses and their legal moves, roles, tasks, timeline.

Plain data; storage lives in :mod:`opsconsole.incidents.store` and behaviour in
:mod:`opsconsole.incidents.service`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal
from zoneinfo import ZoneInfo

from opsconsole.errors import ExitCode, OpsError
from opsconsole.events import Event

__all__ = [
    "OPEN_TASK_STATES",
    "ROLES",
    "SEVERITIES",
    "STATUSES",
    "TASK_ACTIONS",
    "TRANSITIONS",
    "Incident",
    "IncidentError",
    "IncidentEvent",
    "RunLink",
    "Task",
    "TimelineEntry",
]

SEVERITIES: dict[str, str] = {
    "SEV1": "Critical: customers cannot pay or borrow in a region, money or personal data "
    "is at risk, or a regulator may need to be told. All hands, status every 30 minutes.",
    "SEV2": "Major: a critical service is degraded or one feature is down for many "
    "customers; no data at risk yet.",
    "SEV3": "Minor: limited customer impact or a non-critical service is down; a "
    "workaround exists.",
    "SEV4": "Low: no customer impact yet (a warning sign, a near miss).",
}
SEVERITY_HINT = "If unsure, pick the higher severity: downgrading later is cheap."

STATUSES = ("declared", "investigating", "mitigated", "resolved", "closed")

# Allowed moves. Going back is allowed where reality does it: a mitigation that does not
# hold (mitigated -> investigating) and a recurrence before closing (resolved ->
# investigating). Skipping "mitigated" is not: the report measures time to mitigate.
TRANSITIONS: dict[str, tuple[str, ...]] = {
    "declared": ("investigating", "mitigated"),
    "investigating": ("mitigated",),
    "mitigated": ("resolved", "investigating"),
    "resolved": ("closed", "investigating"),
    "closed": (),
}

ROLES: dict[str, str] = {
    "commander": "Incident commander: leads, decides, owns the status updates (exactly one).",
    "deputy": "Deputy commander: takes over when the commander hands over.",
    "scribe": "Keeps the timeline complete.",
    "operations": "Runs the technical response (runbooks, mitigation).",
    "communications": "Status page, internal and customer communications.",
    "legal": "Regulatory notifications and legal assessment.",
    "customer-service": "What support tells customers; collects customer reports.",
}

TaskState = Literal["pending", "in_progress", "done", "skipped", "waived"]
TASK_ACTIONS = ("start", "done", "skip", "waive")
OPEN_TASK_STATES = ("pending", "in_progress")


class IncidentError(OpsError):
    """An incident command that is not allowed in the incident's current state."""

    exit_code = ExitCode.CONFLICT


@dataclass(frozen=True, kw_only=True)
class IncidentEvent(Event):
    """Published after every committed incident change (the TUI subscribes)."""

    incident_id: str
    change: str  # the timeline entry's kind, e.g. "task.done" ("kind" is the class name)
    text: str


@dataclass
class Task:
    id: str
    phase: str
    title: str
    owner_role: str
    instructions: str
    requires: list[str]
    runbook: str | None
    runbook_params: dict[str, str]
    status: TaskState = "pending"
    note: str | None = None
    updated_at: datetime | None = None
    updated_by: str | None = None
    run_id: str | None = None
    run_status: str | None = None

    @property
    def open(self) -> bool:
        return self.status in OPEN_TASK_STATES


@dataclass
class RunLink:
    run_id: str
    runbook: str
    status: str
    task_id: str | None
    at: datetime
    error: str | None = None


@dataclass
class TimelineEntry:
    seq: int
    ts: datetime
    actor: str
    kind: str
    text: str
    region: str | None = None
    details: dict[str, Any] = field(default_factory=dict)
    tz: str | None = None

    @property
    def summary(self) -> str:
        """The text as shown on the timeline, with what kind of entry it is."""
        prefix = {"update": "status update: ", "note": "note: "}.get(self.kind, "")
        return prefix + self.text

    @property
    def local(self) -> datetime | None:
        """The time in the region's zone, when a region is involved."""
        return self.ts.astimezone(ZoneInfo(self.tz)) if self.tz else None


@dataclass
class Incident:
    id: str
    title: str
    severity: str
    category: str
    status: str
    regions: list[str]
    services: list[str]
    region_tz: dict[str, str]
    detected_at: datetime
    declared_at: datetime
    declared_by: str
    playbook: dict[str, Any]
    mitigated_at: datetime | None = None
    resolved_at: datetime | None = None
    closed_at: datetime | None = None
    last_update_at: datetime | None = None
    source_key: str | None = None
    roles: dict[str, str] = field(default_factory=dict)
    tasks: list[Task] = field(default_factory=list)
    decisions: dict[str, datetime] = field(default_factory=dict)
    runs: list[RunLink] = field(default_factory=list)

    @property
    def is_open(self) -> bool:
        return self.status != "closed"

    @property
    def commander(self) -> str | None:
        return self.roles.get("commander")

    def task(self, task_id: str) -> Task:
        for t in self.tasks:
            if t.id == task_id:
                return t
        known = ", ".join(t.id for t in self.tasks) or "none"
        raise IncidentError(f"{self.id} has no task {task_id!r} (tasks: {known})")

    def zone_for(self, region: str | None) -> str | None:
        """The time zone to show beside UTC: the given region's, else the first affected."""
        if region and region in self.region_tz:
            return self.region_tz[region]
        for r in self.regions:
            if r in self.region_tz:
                return self.region_tz[r]
        return None
