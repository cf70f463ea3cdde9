"""Durable approvals: a request waits until a *different* authenticated account decides it.

Two-person rule: the decider must be neither the requester nor the run's starter
(compared after :func:`opsconsole.identity.normalise`, so ``' ROOT'`` is ``root``) and must
hold ``runbook.approve`` for the runbook and its environments. ``run_approvals`` lists
requests for people; the decision the engine acts on is read from the audit chain
(:func:`proven_decision`), so editing that table approves nothing.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import sqlite_utils

from opsconsole.errors import ExitCode, NotFoundError, OpsError
from opsconsole.store import immediate
from opsconsole.timeutil import isoformat, utcnow

if TYPE_CHECKING:
    from opsconsole.audit import AuditLog

__all__ = [
    "Approval",
    "ApprovalError",
    "Decision",
    "decide_approval",
    "pending_approval",
    "proven_decision",
    "request_approval",
    "unproven_decisions",
]


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
        found = _latest(db, run_id, step_id)
        assert found is not None
        audit.record(
            "runbook.approval.requested",
            f"{run_id}/{step_id}",
            {"message": message, "approval_id": found.id},
        )
    return found


def decide_approval(
    db: sqlite_utils.Database,
    audit: AuditLog,
    run_id: str,
    *,
    approve: bool,
    comment: str | None = None,
    config: Any = None,
) -> Approval:
    """Approve or deny the run's pending request as ``audit.actor``.

    Refused (audited, outcome ``denied``) to the requester and the run's starter, and
    to an account without ``runbook.approve`` for this runbook and its environments
    (those of ``config``'s inventory; without a config, every environment)."""
    from opsconsole.access import authorize, proven_event
    from opsconsole.identity import normalise
    from opsconsole.runbooks.authz import policy_name, run_environments
    from opsconsole.runbooks.state import get_run, proven_start

    run = get_run(db, run_id)
    verb = "approve" if approve else "deny"
    action = f"runbook.approval.{'approved' if approve else 'denied'}"
    pending = pending_approval(db, run.id)
    if pending is None:
        raise NotFoundError(f"run {run.id} is not waiting for an approval")
    target = f"{run.id}/{pending.step_id}"
    me = normalise(audit.actor)
    # Who asked and who started, as the chain proves them (the tables can be edited).
    starter = str(proven_start(audit, run)["actor"])
    asked = proven_event(audit, ["runbook.approval.requested"], target)
    requester = str(asked["actor"]) if asked is not None else pending.requested_by
    if me in {normalise(x) for x in (pending.requested_by, run.actor, requester, starter)}:
        # Recorded outside any transaction, so the refusal stays in the log.
        audit.record(
            action,
            target,
            {
                "comment": comment,
                "reason": "self-approval refused",
                "run_actor": run.actor,
                "requested_by": pending.requested_by,
            },
            "denied",
        )
        raise ApprovalError(
            f"{audit.actor} started or requested run {run.id} and cannot {verb} it: another "
            "account with the runbook.approve permission must, logged in as themselves"
        )
    authorize(
        audit,
        "runbook.approve",
        target=target,
        runbook=policy_name(run.runbook, run.path, config),
        environments=run_environments(config, dict(run.params)),
    )
    decision = "approved" if approve else "denied"
    with immediate(db):
        again = pending_approval(db, run.id)
        if again is None or again.id != pending.id:
            raise ApprovalError(f"run {run.id}: the request was decided meanwhile")
        db.execute(
            "UPDATE run_approvals SET decision = ?, decided_by = ?, decided_at = ?, "
            "comment = ? WHERE id = ?",
            [decision, audit.actor, isoformat(utcnow()), comment, pending.id],
        )
        audit.record(
            action,
            target,
            {
                "comment": comment,
                "requested_by": requester,
                "run_actor": starter,
                "approval_id": pending.id,
            },
        )
    decided = _latest(db, run.id, pending.step_id)
    assert decided is not None
    return decided


@dataclass
class Decision:
    decision: str  # approved | denied
    by: str
    comment: str | None
    seq: int


def proven_decision(audit: AuditLog, run_id: str, step_id: str) -> Decision | None:
    """The decision on the latest request for this step, as the audit chain proves it.

    Only an event newer than the latest request counts, and only one by an account other
    than the requester and the run's starter (a forged or edited row counts for nothing).
    """
    from opsconsole.access import proven_event
    from opsconsole.identity import normalise

    target = f"{run_id}/{step_id}"
    asked = proven_event(audit, ["runbook.approval.requested"], target)
    # Only decisions count: a refused attempt is recorded under the same action (outcome
    # denied) and, racing a real decision, must not hide it.
    event = proven_event(
        audit,
        ["runbook.approval.approved", "runbook.approval.denied"],
        target,
        lambda e: e["outcome"] == "ok",
    )
    if event is None:
        return None
    if asked is not None and event["seq"] < asked["seq"]:
        return None
    det = event["details"]
    # The requester and the starter as the chain proves them: the names in the decision's
    # details came from tables anyone in a bastion's group can edit.
    started = proven_event(audit, ["runbook.run.started"], run_id)
    names = [det.get("requested_by"), det.get("run_actor")]
    names += [e["actor"] for e in (asked, started) if e is not None]
    if normalise(event["actor"]) in {normalise(str(n or "")) for n in names}:
        return None
    return Decision(
        decision=event["action"].rsplit(".", 1)[1],
        by=event["actor"],
        comment=det.get("comment"),
        seq=int(event["seq"]),
    )


def unproven_decisions(audit: AuditLog) -> list[Approval]:
    """Decided ``run_approvals`` rows that the audit chain does not back (the table was
    edited): for ``audit verify`` or a report. The engine ignores them anyway."""
    from opsconsole.access import proven_event

    out = []
    for row in list(audit.db.query("SELECT * FROM run_approvals WHERE decision != 'pending'")):
        a = Approval(**row)
        proof = proven_event(
            audit,
            [f"runbook.approval.{a.decision}"],
            f"{a.run_id}/{a.step_id}",
            lambda e, a=a: e["outcome"] == "ok" and e["details"].get("approval_id") == a.id,
        )
        if proof is None or proof["actor"] != a.decided_by:
            out.append(a)
    return out
