"""Incident service core: the transaction/timeline/audit plumbing and reading.

Each change is one ``immediate(db)`` write transaction holding the state change, its
timeline entries and its audit records: all commit or none does (fail closed). After the
commit an :class:`IncidentEvent` is published per timeline entry.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from opsconsole.incidents import store
from opsconsole.incidents.deadlines import DeadlineState, evaluate, human_duration
from opsconsole.incidents.model import (
    Incident,
    IncidentError,
    IncidentEvent,
    Task,
    TimelineEntry,
)
from opsconsole.incidents.playbook import Playbook
from opsconsole.incidents.settings import IncidentSettings, load_incident_settings
from opsconsole.store import immediate
from opsconsole.timeutil import isoformat, utcnow

if TYPE_CHECKING:
    import sqlite_utils

    from opsconsole.audit import AuditLog
    from opsconsole.config import Config
    from opsconsole.events import EventBus


__all__ = ["CLOCK_ACTOR", "IncidentBase", "IncidentView"]

CLOCK_ACTOR = "clock"


@dataclass
class IncidentView:
    """An incident as ``incident show`` and the TUI present it, at ``now``."""

    incident: Incident
    deadlines: list[DeadlineState]
    next_tasks: list[Task]
    update_every: timedelta | None
    last_update: datetime
    now: datetime

    @property
    def since_update(self) -> timedelta:
        return self.now - self.last_update

    @property
    def update_due(self) -> datetime | None:
        return self.last_update + self.update_every if self.update_every else None

    def to_dict(self, timeline: list[TimelineEntry] | None = None) -> dict[str, Any]:
        """JSON-ready form (``incident show --json``)."""
        v = self
        inc = v.incident
        data: dict[str, Any] = {
            "id": inc.id,
            "title": inc.title,
            "severity": inc.severity,
            "category": inc.category,
            "status": inc.status,
            "regions": inc.regions,
            "services": inc.services,
            "roles": inc.roles,
            "detected_at": inc.detected_at.isoformat(),
            "declared_at": inc.declared_at.isoformat(),
            "last_update_at": inc.last_update_at.isoformat() if inc.last_update_at else None,
            "update_due": v.update_due.isoformat() if v.update_due else None,
            "decisions": {k: d.isoformat() for k, d in inc.decisions.items()},
            "deadlines": [
                {
                    "id": s.deadline.id,
                    "jurisdiction": s.deadline.jurisdiction,
                    "citation": s.deadline.citation,
                    "verified_on": str(s.deadline.verified_on),
                    "state": s.state,
                    "due": s.due.isoformat() if s.due else None,
                    "text": s.text,
                }
                for s in v.deadlines
            ],
            "tasks": [
                {
                    "id": t.id,
                    "phase": t.phase,
                    "title": t.title,
                    "owner": t.owner_role,
                    "status": t.status,
                    "note": t.note,
                    "runbook": t.runbook,
                    "run_id": t.run_id,
                    "run_status": t.run_status,
                }
                for t in inc.tasks
            ],
            "next_tasks": [t.id for t in v.next_tasks],
        }
        if timeline is not None:
            data["timeline"] = [
                {
                    "ts": e.ts.isoformat(),
                    "local": e.local.isoformat() if e.local else None,
                    "actor": e.actor,
                    "kind": e.kind,
                    "text": e.text,
                }
                for e in timeline
            ]
        return data


class IncidentBase:
    """State, plumbing and reading; the changes live in :mod:`.changes`."""

    def __init__(
        self,
        db: sqlite_utils.Database,
        audit: AuditLog,
        config: Config | None = None,
        *,
        bus: EventBus | None = None,
        clock: Callable[[], datetime] = utcnow,
        settings: IncidentSettings | None = None,
    ) -> None:
        self.db = db
        self.audit = audit
        self.config = config
        self.bus = bus
        self.clock = clock
        self.settings = settings if settings is not None else load_incident_settings(config)
        self._pending: list[IncidentEvent] = []

    @property
    def actor(self) -> str:
        return self.audit.actor

    # --- plumbing -----------------------------------------------------------------

    @contextlib.contextmanager
    def transaction(self) -> Iterator[None]:
        """Group several changes into one write transaction (joins an open one)."""
        outer = not self.db.conn.in_transaction
        try:
            with immediate(self.db):
                yield
        except BaseException:
            if outer:
                self._pending.clear()
            raise
        if outer:
            events, self._pending = self._pending, []
            for event in events:
                if self.bus is not None:
                    self.bus.publish(event)

    def _log(
        self,
        inc: Incident,
        kind: str,
        text: str,
        *,
        details: dict[str, Any] | None = None,
        region: str | None = None,
        ts: datetime | None = None,
        actor: str | None = None,
        audit: bool = True,
    ) -> None:
        """One timeline entry and its audit record (call inside :meth:`transaction`)."""
        now = self.clock()
        store.append_timeline(
            self.db,
            inc.id,
            ts=ts or now,
            recorded_at=now,
            actor=actor or self.actor,
            interface=self.audit.interface,
            kind=kind,
            text=text,
            region=region,
            details=details,
        )
        if audit:
            self.audit.record(f"incident.{kind}", inc.id, {"text": text, **(details or {})})
        self._pending.append(IncidentEvent(incident_id=inc.id, change=kind, text=text))

    def _playbook(self, inc: Incident) -> Playbook:
        return Playbook.model_validate(inc.playbook)

    # --- reading ------------------------------------------------------------------

    def get(self, incident_id: str) -> Incident:
        return store.load_incident(self.db, incident_id)

    def list_incidents(self, *, open_only: bool = False) -> list[Incident]:
        return [self.get(i) for i in store.list_ids(self.db, open_only=open_only)]

    def timeline(self, incident_id: str) -> list[TimelineEntry]:
        return store.load_timeline(self.db, self.get(incident_id))

    def deadlines(self, inc: Incident, now: datetime | None = None) -> list[DeadlineState]:
        book = self._playbook(inc)
        outcomes = store.deadline_outcomes(self.db, inc.id)
        return [
            evaluate(
                d,
                book.calendar_for(d),
                detected=inc.detected_at,
                declared=inc.declared_at,
                decisions=inc.decisions,
                now=now or self.clock(),
                outcome=outcomes.get(d.id),
            )
            for d in book.deadlines
        ]

    def view(self, incident_id: str, *, record: bool = True) -> IncidentView:
        """The incident with its clocks. Deadlines that passed unmet since last seen are
        recorded as missed on the timeline, unless ``record=False`` (read-only viewers)."""
        inc = self.get(incident_id)
        if record and self._sweep_needed(inc):
            with self.transaction():
                self._sweep(inc)
            inc = self.get(incident_id)
        now = self.clock()
        minutes = self._playbook(inc).status_updates.get(inc.severity)
        return IncidentView(
            incident=inc,
            deadlines=self.deadlines(inc, now),
            next_tasks=self.next_tasks(inc),
            update_every=timedelta(minutes=minutes) if minutes else None,
            last_update=inc.last_update_at or inc.declared_at,
            now=now,
        )

    def next_tasks(self, inc: Incident, limit: int = 5) -> list[Task]:
        return [t for t in inc.tasks if t.open and not self._blocked_by(inc, t)][:limit]

    @staticmethod
    def _blocked_by(inc: Incident, task: Task) -> list[str]:
        return [r for r in task.requires if inc.task(r).open]

    # --- deadlines: recorded once, met by a task or missed by the clock -------------

    def _sweep_needed(self, inc: Incident) -> bool:
        return inc.is_open and any(s.state == "overdue" for s in self.deadlines(inc))

    def _sweep(self, inc: Incident) -> None:
        """Record, once, each deadline that has passed unmet (timeline time = the due time)."""
        for s in self.deadlines(inc):
            if s.state == "overdue" and s.due is not None:
                self._deadline_outcome(inc, s, "missed", s.due)

    def _deadline_outcome(
        self, inc: Incident, s: DeadlineState, outcome: str, at: datetime
    ) -> None:
        d = s.deadline
        cur = self.db.execute(
            "INSERT INTO incident_deadlines (incident_id, deadline_id, outcome, at) "
            "VALUES (?, ?, ?, ?) ON CONFLICT DO NOTHING",
            (inc.id, d.id, outcome, isoformat(at)),
        )
        if cur.rowcount != 1:
            return  # recorded already
        due = f" (due {isoformat(s.due)[:16]}Z)" if s.due else ""
        self._log(
            inc,
            f"deadline.{outcome}",
            f"deadline {outcome}: {d.title} [{d.jurisdiction}, {d.citation}]{due}",
            ts=at,
            actor=CLOCK_ACTOR if outcome == "missed" else None,
            details={"deadline": d.id, "due": isoformat(s.due) if s.due else None},
        )

    def _settle_deadlines_for(self, inc: Incident, task: Task, action: str, now: datetime) -> None:
        for s in self.deadlines(inc, now):
            if s.deadline.met_by != task.id or s.state in ("met", "waived"):
                continue
            if s.state == "missed":
                if action == "done" and s.due is not None:
                    self._log(
                        inc,
                        "deadline.late",
                        f"{s.deadline.title}: done "
                        f"{human_duration(now - s.due)} after the deadline",
                        details={"deadline": s.deadline.id},
                    )
                continue
            if action == "done":
                late = s.due is not None and now > s.due
                self._deadline_outcome(inc, s, "missed" if late else "met", now)
            else:
                self._deadline_outcome(inc, s, "waived", now)

    def _open(self, incident_id: str) -> Incident:
        inc = self.get(incident_id)
        if not inc.is_open:
            raise IncidentError(f"{inc.id} is closed; a closed incident does not change")
        self._sweep(inc)
        return inc
