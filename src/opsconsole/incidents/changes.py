"""The changes to an open incident: roles, tasks, notes, status updates, decisions,
status moves and linked runbook runs. Each is one transaction with its timeline entry
and audit record (see :class:`~opsconsole.incidents.base.IncidentBase`)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from opsconsole.errors import OpsError
from opsconsole.incidents.base import IncidentBase
from opsconsole.incidents.deadlines import DeadlineState
from opsconsole.incidents.model import (
    ROLES,
    STATUSES,
    TASK_ACTIONS,
    TRANSITIONS,
    Incident,
    IncidentError,
    Task,
)
from opsconsole.timeutil import isoformat

__all__ = ["IncidentChanges", "IncidentChoices"]


@dataclass(frozen=True)
class IncidentChoices:
    """What a person may pick for an incident now: every interface offers these lists
    (the console's pickers) and the change methods refuse anything else."""

    roles: dict[str, str]  # role -> what it does
    decisions: dict[str, str]  # decisions of the incident's playbook -> meaning
    decided: tuple[str, ...]  # already recorded (not offered again)
    statuses: tuple[str, ...]  # where the status may move from here


class IncidentChanges(IncidentBase):
    """The change methods of :class:`~opsconsole.incidents.service.IncidentService`."""

    def _commander_only(self, inc: Incident, permission: str, what: str) -> None:
        """Status moves, closing, decisions and role assignments belong to the incident's
        commander; anyone else needs ``permission`` in the access policy."""
        from opsconsole.access import authorize
        from opsconsole.identity import normalise

        commander = inc.roles.get("commander")
        if commander and normalise(commander) == normalise(self.actor):
            return
        authorize(self.audit, permission, target=f"{inc.id}: {what}")

    def choices(self, incident_id: str) -> IncidentChoices:
        inc = self.get(incident_id)
        return IncidentChoices(
            roles=dict(ROLES),
            decisions={k: " ".join(v.split()) for k, v in self._playbook(inc).decisions.items()},
            decided=tuple(inc.decisions),
            statuses=TRANSITIONS.get(inc.status, ()),
        )

    def assign(self, incident_id: str, role: str, user: str) -> Incident:
        """Give a role to an account; re-assigning is a handover and says so."""
        from opsconsole.identity import account_name

        if role not in ROLES:
            raise OpsError(f"unknown role {role!r}; roles are {', '.join(ROLES)}")
        user = account_name(user, self.db)
        self._commander_only(self.get(incident_id), "incident.command", f"assign {role}")
        with self.transaction():
            inc = self._open(incident_id)
            before = inc.roles.get(role)
            if before == user:
                raise IncidentError(f"{user} already holds {role} on {inc.id}")
            self.db.execute(
                "INSERT INTO incident_roles VALUES (?, ?, ?, ?) ON CONFLICT (incident_id, role) "
                "DO UPDATE SET holder = excluded.holder, since = excluded.since",
                (inc.id, role, user, isoformat(self.clock())),
            )
            text = (
                f"{role} handed over from {before} to {user}"
                if before
                else f"{role} assigned to {user}"
            )
            self._log(inc, "assign", text, details={"role": role, "from": before, "to": user})
        return self.get(incident_id)

    def task(self, incident_id: str, task_id: str, action: str, note: str | None = None) -> Task:
        """start | done | skip | waive a playbook task (waive needs a reason)."""
        if action not in TASK_ACTIONS:
            raise OpsError(f"unknown task action {action!r}; use {', '.join(TASK_ACTIONS)}")
        if action == "waive" and not (note and note.strip()):
            raise IncidentError("waiving a task needs a reason: --note 'why'")
        with self.transaction():
            inc = self._open(incident_id)
            t = inc.task(task_id)
            if not t.open:
                raise IncidentError(f"task {t.id} is already {t.status}")
            if action == "start" and t.status == "in_progress":
                raise IncidentError(f"task {t.id} is already in progress")
            blocked = self._blocked_by(inc, t)
            if action in ("start", "done") and blocked:
                raise IncidentError(
                    f"task {t.id} requires {', '.join(blocked)} first (done, skipped or waived)"
                )
            if action == "start" and inc.status == "declared":
                self._move(inc, "investigating", "first task started")
            status = {"start": "in_progress", "done": "done", "skip": "skipped", "waive": "waived"}[
                action
            ]
            now = self.clock()
            self.db.execute(
                "UPDATE incident_tasks SET status = ?, note = COALESCE(?, note), updated_at = ?, "
                "updated_by = ? WHERE incident_id = ? AND task_id = ?",
                (status, note, isoformat(now), self.actor, inc.id, t.id),
            )
            verb = {"start": "started", "done": "done", "skip": "skipped", "waive": "waived"}[
                action
            ]
            self._log(
                inc,
                f"task.{action}",
                f"task {verb}: {t.title}" + (f" - {note}" if note else ""),
                details={"task": t.id, "owner": t.owner_role, "note": note},
            )
            if action != "start":
                self._settle_deadlines_for(inc, t, action, now)
        return self.get(incident_id).task(task_id)

    def note(self, incident_id: str, text: str, *, region: str | None = None) -> None:
        """A note on the timeline; notes starting with ``action:`` become action items."""
        if not text.strip():
            raise OpsError("a note needs text")
        with self.transaction():
            inc = self._open(incident_id)
            self._log(inc, "note", text.strip(), region=region)

    def update(self, incident_id: str, text: str) -> None:
        """A status update to stakeholders: resets the update-cadence clock."""
        if not text.strip():
            raise OpsError("a status update needs text")
        with self.transaction():
            inc = self._open(incident_id)
            self.db.execute(
                "UPDATE incidents SET last_update_at = ? WHERE id = ?",
                (isoformat(self.clock()), inc.id),
            )
            self._log(inc, "update", text.strip())

    def decide(
        self,
        incident_id: str,
        decision: str,
        note: str | None = None,
        *,
        at: datetime | None = None,
    ) -> list[DeadlineState]:
        """Record a decision (e.g. ``notifiable``); returns the clocks it started."""
        decision = decision.strip()
        if not decision:
            raise OpsError("a decision needs a name, e.g. notifiable")
        self._commander_only(self.get(incident_id), "incident.decide", f"decide {decision}")
        with self.transaction():
            inc = self._open(incident_id)
            known = self._playbook(inc).decisions
            if decision not in known:
                # A typo (``notifable``) recorded for good would leave its clocks waiting
                # forever: only the playbook's own decisions are accepted, from any interface.
                raise OpsError(
                    f"unknown decision {decision!r} for the {inc.category} playbook; "
                    + (
                        f"decisions are {', '.join(known)}"
                        if known
                        else "this playbook declares no decisions"
                    )
                )
            if decision in inc.decisions:
                raise IncidentError(
                    f"{inc.id} already decided {decision!r} at {isoformat(inc.decisions[decision])}"
                )
            when = at or self.clock()
            self.db.execute(
                "INSERT INTO incident_decisions VALUES (?, ?, ?, ?)",
                (inc.id, decision, isoformat(when), self.actor),
            )
            inc = self.get(inc.id)
            started = [s for s in self.deadlines(inc) if s.deadline.decision == decision]
            clocks = "; ".join(
                f"{s.deadline.title} due {isoformat(s.due)[:16]}Z" for s in started if s.due
            )
            meaning = " ".join(self._playbook(inc).decisions.get(decision, "").split())
            self._log(
                inc,
                "decide",
                f"decided: {decision}"
                + (f" ({meaning})" if meaning else "")
                + (f" - {note}" if note else "")
                + (f"; clocks started: {clocks}" if clocks else ""),
                ts=when,
                details={"decision": decision, "note": note},
            )
            self._sweep(inc)
        return started

    def set_status(self, incident_id: str, status: str, note: str | None = None) -> Incident:
        permission = "incident.close" if status == "closed" else "incident.command"
        self._commander_only(self.get(incident_id), permission, f"status {status}")
        with self.transaction():
            inc = self._open(incident_id)
            self._check_move(inc, status)
            if status == "closed":
                still_open = [t.id for t in inc.tasks if t.open]
                if still_open:
                    raise IncidentError(
                        f"{inc.id} has open tasks: {', '.join(still_open)}; finish them, or "
                        "`incident task ID TASK waive --note REASON` each"
                    )
            self._move(inc, status, note)
        return self.get(incident_id)

    @staticmethod
    def _check_move(inc: Incident, status: str) -> None:
        if status not in STATUSES:
            raise OpsError(f"unknown status {status!r}; use {', '.join(STATUSES[1:])}")
        allowed = TRANSITIONS[inc.status]
        if status not in allowed:
            raise IncidentError(
                f"{inc.id} cannot go from {inc.status} to {status}; from {inc.status} it can go to "
                f"{', '.join(allowed) or 'nothing (closed is final)'}"
            )

    def _move(self, inc: Incident, status: str, note: str | None) -> None:
        self._check_move(inc, status)
        now = isoformat(self.clock())
        column = {"mitigated": "mitigated_at", "resolved": "resolved_at", "closed": "closed_at"}
        extra = f", {column[status]} = :now" if status in column else ""
        self.db.execute(
            f"UPDATE incidents SET status = :s{extra} WHERE id = :id",
            {"s": status, "now": now, "id": inc.id},
        )
        self._log(
            inc,
            "status",
            f"status {inc.status} -> {status}" + (f": {note}" if note else ""),
            details={"from": inc.status, "to": status},
        )
        inc.status = status

    def link_run(
        self,
        incident_id: str,
        task_id: str | None,
        run_id: str,
        runbook: str,
        status: str,
        error: str | None = None,
        *,
        region: str | None = None,
    ) -> None:
        """Record a runbook run (and its outcome) on the incident, its task and timeline."""
        with self.transaction():
            inc = self.get(incident_id)
            if task_id is not None:
                inc.task(task_id)
                self.db.execute(
                    "UPDATE incident_tasks SET run_id = ?, run_status = ? "
                    "WHERE incident_id = ? AND task_id = ?",
                    (run_id, status, inc.id, task_id),
                )
            self.db.execute(
                "INSERT INTO incident_runs VALUES (?, ?, ?, ?, ?, ?, ?) "
                "ON CONFLICT (incident_id, run_id) DO UPDATE SET task_id = excluded.task_id, "
                "runbook = excluded.runbook, status = excluded.status, error = excluded.error, "
                "at = excluded.at",
                (inc.id, run_id, task_id, runbook, status, error, isoformat(self.clock())),
            )
            self._log(
                inc,
                "run",
                f"runbook {runbook} run {run_id}: {status}"
                + (f" ({error})" if error else "")
                + (f" for task {task_id}" if task_id else ""),
                region=region,
                details={"run_id": run_id, "runbook": runbook, "status": status, "task": task_id},
            )

    def record_run_start(
        self,
        incident_id: str,
        task_id: str | None,
        runbook: str,
        params: dict[str, str],
        *,
        region: str | None = None,
    ) -> None:
        """Put a runbook launch on the timeline (and audit) before the run starts."""
        with self.transaction():
            inc = self._open(incident_id)
            self._log(
                inc,
                "run.start",
                f"runbook {runbook} launched"
                + (f" for task {task_id}" if task_id else "")
                + (f" with {', '.join(f'{k}={v}' for k, v in params.items())}" if params else ""),
                region=region,
                details={"runbook": runbook, "task": task_id, "params": params},
            )
