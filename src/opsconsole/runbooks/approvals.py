"""Durable approvals: a request row waits until a *different* actor decides it."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import sqlite_utils

from opsconsole.errors import ExitCode, NotFoundError, OpsError
from opsconsole.store import immediate
from opsconsole.timeutil import isoformat, utcnow

if TYPE_CHECKING:
    from opsconsole.audit import AuditLog

__all__ = ["Approval", "ApprovalError", "decide_approval", "pending_approval", "request_approval"]


class ApprovalError(OpsError):
    exit_code = ExitCode.CONFLICT


@dataclass
class Approval:
    id: int
    run_id: str
    step_id: str
    message: str
    requested_by: str
    requested_at: str
    decision: str  # pending | approved | denied
    decided_by: str | None
    decided_at: str | None
    comment: str | None


def _latest(db: sqlite_utils.Database, run_id: str, step_id: str | None = None) -> Approval | None:
    sql = "SELECT * FROM run_approvals WHERE run_id = ?"
    args: list[str] = [run_id]
    if step_id is not None:
        sql += " AND step_id = ?"
        args.append(step_id)
    rows = list(db.query(sql + " ORDER BY id DESC LIMIT 1", args))
    return Approval(**rows[0]) if rows else None


def approval_for(db: sqlite_utils.Database, run_id: str, step_id: str) -> Approval | None:
    return _latest(db, run_id, step_id)


def pending_approval(db: sqlite_utils.Database, run_id: str) -> Approval | None:
    a = _latest(db, run_id)
    return a if a is not None and a.decision == "pending" else None


def request_approval(
    db: sqlite_utils.Database, audit: AuditLog, run_id: str, step_id: str, message: str
) -> Approval:
    """Create (or return the existing) request for this step."""
    with immediate(db):
        existing = _latest(db, run_id, step_id)
        if existing is not None and existing.decision == "pending":
            return existing
        db.execute(
            "INSERT INTO run_approvals (run_id, step_id, message, requested_by, requested_at) "
            "VALUES (?, ?, ?, ?, ?)",
            [run_id, step_id, message, audit.actor, isoformat(utcnow())],
        )
        audit.record("runbook.approval.requested", f"{run_id}/{step_id}", {"message": message})
    found = _latest(db, run_id, step_id)
    assert found is not None
    return found


def decide_approval(
    db: sqlite_utils.Database,
    audit: AuditLog,
    run_id: str,
    *,
    approve: bool,
    comment: str | None = None,
) -> Approval:
    """Approve or deny the run's pending request. The requester may not decide it."""
    from opsconsole.runbooks.state import get_run

    run = get_run(db, run_id)
    verb = "approve" if approve else "deny"
    with immediate(db):
        pending = pending_approval(db, run.id)
        if pending is None:
            raise NotFoundError(f"run {run.id} is not waiting for an approval")
        if audit.actor in (pending.requested_by, run.actor):
            audit.record(
                f"runbook.approval.{'approved' if approve else 'denied'}",
                f"{run.id}/{pending.step_id}",
                {"comment": comment, "reason": "self-approval refused"},
                "refused",
            )
            refusal = ApprovalError(
                f"{audit.actor} requested run {run.id} and cannot {verb} it; another person "
                "must (`opsconsole --as NAME runbook approve RUN_ID`)"
            )
        else:
            refusal = None
            decision = "approved" if approve else "denied"
            db.execute(
                "UPDATE run_approvals SET decision = ?, decided_by = ?, decided_at = ?, "
                "comment = ? WHERE id = ?",
                [decision, audit.actor, isoformat(utcnow()), comment, pending.id],
            )
            audit.record(
                f"runbook.approval.{decision}",
                f"{run.id}/{pending.step_id}",
                {"comment": comment, "requested_by": pending.requested_by},
            )
    if refusal is not None:
        raise refusal
    decided = _latest(db, run.id, pending.step_id)
    assert decided is not None
    return decided
