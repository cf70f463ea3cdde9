"""What people record by hand: tabletop drills, plan reviews and follow-up actions.

Each function writes its rows and the audit event in one transaction (fail closed).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime
from typing import TYPE_CHECKING

from opsconsole.access import authorize
from opsconsole.drills import plans, store
from opsconsole.errors import NotFoundError, OpsError
from opsconsole.timeutil import isoformat, utcnow

if TYPE_CHECKING:
    import sqlite_utils

    from opsconsole.audit import AuditLog
    from opsconsole.drills.model import Drill

__all__ = ["FollowUpSpec", "close_followup", "parse_followup", "record_review", "record_tabletop"]


@dataclass(frozen=True)
class FollowUpSpec:
    action: str
    owner: str
    due: date


def parse_followup(text: str, default_owner: str | None = None) -> FollowUpSpec:
    """``ACTION|OWNER|YYYY-MM-DD`` (owner and due date required unless defaulted)."""
    parts = [p.strip() for p in text.split("|")]
    if len(parts) == 2 and default_owner:
        parts = [parts[0], default_owner, parts[1]]
    if len(parts) != 3 or not all(parts):
        raise OpsError(f"follow-up {text!r}: write it as 'ACTION|OWNER|YYYY-MM-DD'")
    try:
        due = date.fromisoformat(parts[2])
    except ValueError:
        raise OpsError(f"follow-up {text!r}: due date {parts[2]!r} is not YYYY-MM-DD") from None
    return FollowUpSpec(parts[0], parts[1], due)


def record_tabletop(
    db: sqlite_utils.Database,
    audit: AuditLog,
    name: str,
    drill: Drill | None,
    *,
    plan: str | None = None,
    kind: str = "tabletop",
    participants: list[str],
    notes: str,
    findings: list[str],
    followups: list[FollowUpSpec],
    outcome: str = "passed",
    held_at: datetime | None = None,
) -> store.DrillRun:
    """Record a drill that people held (normally a tabletop exercise)."""
    authorize(audit, "drill.manage", target=name)
    if outcome not in ("passed", "failed"):
        raise OpsError("outcome must be passed or failed")
    plan = plan or (drill.plan if drill else None)
    if plan is None:
        raise OpsError(f"{name} is not a defined drill: give --plan")
    if not participants:
        raise OpsError("name the participants (--participants 'ana,bo,chen')")
    when = held_at or utcnow()
    run = store.DrillRun(
        id=store.new_run_id(when),
        drill=name,
        plan=plan,
        kind=kind,
        status=outcome,
        trigger="record",
        actor=audit.actor,
        interface=audit.interface,
        started_at=when,
        finished_at=when,
        runbook=drill.runbook if drill else None,
        target=drill.target if drill else None,
        rto_objective=drill.objectives.rto_seconds if drill else None,
        rpo_objective=drill.objectives.rpo_seconds if drill else None,
        participants=participants,
        notes=notes,
        findings=findings,
    )
    details = {
        "run": run.id,
        "plan": plan,
        "kind": kind,
        "participants": participants,
        "findings": len(findings),
        "followups": len(followups),
        "outcome": outcome,
        "held_at": isoformat(when),
    }
    with store.audited(db, audit, "drill.record", name, details, outcome):
        store.insert_run(db, run)
        for f in followups:
            plans.add_followup(db, run.id, f.action, f.owner, f.due.isoformat())
    found = store.get_run(db, run.id)
    assert found is not None
    return found


def record_review(
    db: sqlite_utils.Database,
    audit: AuditLog,
    plan: str,
    notes: str,
    at: datetime | None = None,
) -> int:
    """Record that the continuity plan ``plan`` was reviewed."""
    authorize(audit, "drill.manage", target=plan)
    if not notes.strip():
        raise OpsError("say what the review covered (--notes)")
    when = at or utcnow()
    with store.audited(
        db, audit, "drill.plan.review", plan, {"notes": notes, "reviewed_at": isoformat(when)}
    ):
        return plans.add_review(db, plan, audit.actor, notes, when)


def add_followup(
    db: sqlite_utils.Database, audit: AuditLog, run_id: str, spec: FollowUpSpec
) -> int:
    authorize(audit, "drill.manage", target=run_id)
    if store.get_run(db, run_id) is None:
        raise NotFoundError(f"no drill run {run_id!r}")
    with store.audited(
        db,
        audit,
        "drill.followup.add",
        run_id,
        {"action": spec.action, "owner": spec.owner, "due": spec.due.isoformat()},
    ):
        return plans.add_followup(db, run_id, spec.action, spec.owner, spec.due.isoformat())


def close_followup(db: sqlite_utils.Database, audit: AuditLog, followup_id: int) -> None:
    authorize(audit, "drill.manage", target=str(followup_id))
    with store.audited(db, audit, "drill.followup.close", str(followup_id)):
        if not plans.close_followup(db, followup_id, audit.actor):
            raise NotFoundError(f"no open follow-up #{followup_id}")
