"""Durable approvals: a request waits until a *different* authenticated account decides it.

Two-person rule: the decider must be neither the requester nor the run's starter
(compared after :func:`opsconsole.identity.normalise`, so ``' ROOT'`` is ``root``) and must
hold ``runbook.approve`` for the runbook and its environments. ``run_approvals`` lists
requests for people; the decision the engine acts on is read from the audit chain
(:func:`proven_decision`), so editing that table approves nothing.

On PostgreSQL the database enforces the rule as well (migration
``0100_pg_two_person_rule``): a request is made, a run started and a decision taken
only in the name of the connection's ``session_user``, and a decision by the requester
or the starter is refused, so a modified client cannot approve its own request.
"""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import sqlite_utils

from opsconsole.errors import ExitCode, NotFoundError, OpsError
from opsconsole.runbooks.state import migrations
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


# Who may bypass the guards: a superuser or a member of the role owning the table (it
# can drop the trigger anyway). Everyone else acts as its session user.
_PRIVILEGED = """EXISTS (SELECT 1 FROM pg_roles r WHERE r.rolname = session_user AND
    (r.rolsuper OR pg_has_role(session_user,
        (SELECT relowner FROM pg_class WHERE oid = TG_RELID), 'MEMBER')))"""


@migrations(name="0100_pg_two_person_rule")
def _m0100(db: Any) -> None:
    """PostgreSQL: the two-person rule and "who asked" enforced by the database.

    (Numbered 0100 so that the run-state migrations keep the low numbers.)"""
    if db.engine != "postgresql":
        return
    db.execute(
        "CREATE OR REPLACE FUNCTION opsconsole_norm(name text) RETURNS text "
        "LANGUAGE sql IMMUTABLE AS $$ SELECT lower(regexp_replace(btrim(name), "
        "'[[:space:]]+', ' ', 'g')) $$"
    )
    db.execute(
        f"""
        CREATE OR REPLACE FUNCTION runs_actor() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN
            IF {_PRIVILEGED} THEN
                RETURN NEW;
            END IF;
            IF TG_OP = 'INSERT' AND NEW.actor IS DISTINCT FROM session_user::text THEN
                RAISE EXCEPTION 'a run is started by the session user %, not %',
                    session_user, NEW.actor USING ERRCODE = 'check_violation';
            END IF;
            IF TG_OP = 'UPDATE' AND NEW.actor IS DISTINCT FROM OLD.actor THEN
                RAISE EXCEPTION 'who started run % cannot change', OLD.id
                    USING ERRCODE = 'check_violation';
            END IF;
            RETURN NEW;
        END $$
        """
    )
    db.execute(
        "CREATE TRIGGER runs_actor BEFORE INSERT OR UPDATE ON runs "
        "FOR EACH ROW EXECUTE FUNCTION runs_actor()"
    )
    db.execute(
        f"""
        CREATE OR REPLACE FUNCTION run_approvals_two_person() RETURNS trigger
        LANGUAGE plpgsql AS $$
        DECLARE
            starter text;
        BEGIN
            IF {_PRIVILEGED} THEN
                RETURN NEW;
            END IF;
            IF TG_OP = 'INSERT' THEN
                IF NEW.decision IS DISTINCT FROM 'pending' OR NEW.decided_by IS NOT NULL THEN
                    RAISE EXCEPTION 'an approval request starts pending and undecided'
                        USING ERRCODE = 'check_violation';
                END IF;
                IF NEW.requested_by IS DISTINCT FROM session_user::text THEN
                    RAISE EXCEPTION 'an approval is requested by the session user %, not %',
                        session_user, NEW.requested_by USING ERRCODE = 'check_violation';
                END IF;
                RETURN NEW;
            END IF;
            IF NEW.run_id IS DISTINCT FROM OLD.run_id OR NEW.step_id IS DISTINCT FROM OLD.step_id
               OR NEW.requested_by IS DISTINCT FROM OLD.requested_by
               OR NEW.requested_at IS DISTINCT FROM OLD.requested_at THEN
                RAISE EXCEPTION 'approval request %: who asked for what cannot change', OLD.id
                    USING ERRCODE = 'check_violation';
            END IF;
            IF NEW.decision IS NOT DISTINCT FROM OLD.decision
               AND NEW.decided_by IS NOT DISTINCT FROM OLD.decided_by THEN
                RETURN NEW;
            END IF;
            IF OLD.decision <> 'pending' THEN
                RAISE EXCEPTION 'approval request % was already decided (%)', OLD.id,
                    OLD.decision USING ERRCODE = 'check_violation';
            END IF;
            IF NEW.decision NOT IN ('approved', 'denied') OR NEW.decided_by IS NULL THEN
                RAISE EXCEPTION 'a decision is approved or denied, by someone'
                    USING ERRCODE = 'check_violation';
            END IF;
            IF NEW.decided_by IS DISTINCT FROM session_user::text THEN
                RAISE EXCEPTION 'a decision is taken by the session user %, not %',
                    session_user, NEW.decided_by USING ERRCODE = 'check_violation';
            END IF;
            SELECT actor INTO starter FROM runs WHERE id = NEW.run_id;
            IF opsconsole_norm(NEW.decided_by) = opsconsole_norm(OLD.requested_by)
               OR opsconsole_norm(NEW.decided_by) = opsconsole_norm(starter) THEN
                RAISE EXCEPTION 'two-person rule: % requested or started run %',
                    NEW.decided_by, NEW.run_id USING ERRCODE = 'check_violation',
                    HINT = 'another person must decide, logged in as themselves';
            END IF;
            RETURN NEW;
        END $$
        """
    )
    db.execute(
        "CREATE TRIGGER run_approvals_two_person BEFORE INSERT OR UPDATE ON run_approvals "
        "FOR EACH ROW EXECUTE FUNCTION run_approvals_two_person()"
    )


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
    try:
        with immediate(db):
            again = pending_approval(db, run.id)
            if again is None or again.id != pending.id:
                raise ApprovalError(f"run {run.id}: the request was decided meanwhile")
            db.execute(
                "UPDATE run_approvals SET decision = ?, decided_by = ?, decided_at = ?, "
                "comment = ? WHERE id = ?",
                [decision, audit.actor, isoformat(utcnow()), comment, pending.id],
            )
            _record_decision(audit, action, target, comment, requester, starter, pending.id)
    except sqlite3.Error as exc:
        # The database's own two-person rule (PostgreSQL) refused it: record the refusal.
        audit.record(
            action,
            target,
            {"comment": comment, "reason": f"refused by the database: {exc}"},
            "denied",
        )
        raise ApprovalError(
            f"the database refused the decision on run {run.id}: {exc}; another account "
            "with the runbook.approve permission must decide, logged in as themselves"
        ) from None
    decided = _latest(db, run.id, pending.step_id)
    assert decided is not None
    return decided


def _record_decision(
    audit: AuditLog,
    action: str,
    target: str,
    comment: str | None,
    requester: str,
    starter: str,
    approval_id: int,
) -> None:
    audit.record(
        action,
        target,
        {
            "comment": comment,
            "requested_by": requester,
            "run_actor": starter,
            "approval_id": approval_id,
        },
    )


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
