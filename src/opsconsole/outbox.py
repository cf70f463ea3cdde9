"""The notification outbox: messages written in the same transaction as their cause.

A message is never posted from inside an action. Instead an audit hook
(:data:`opsconsole.audit.APPEND_HOOKS`) turns the audit events that people want to hear
about - an incident declared, a status update, a missed deadline, an approval requested,
a failed run or drill, a health change - into rows of the ``outbox`` table, inside the
transaction that writes the event and the change itself. If the change commits, so does
its message; if it rolls back, no message exists. A worker
(:mod:`opsconsole.delivery`) then sends each message to the channels that want it, with
retries and backoff, and marks it ``sent`` or, after N tries, ``dead``. A dead message
stays in the table: ``opsconsole notify retry ID`` sends it again.

Statuses: ``pending`` (to send, or being retried), ``sent``, ``dead`` (gave up after
``max_attempts``), ``skipped`` (no channel wants this event).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import sqlite_utils

from opsconsole.audit import APPEND_HOOKS
from opsconsole.errors import ExitCode, NotFoundError, OpsError
from opsconsole.store import immediate
from opsconsole.store.migrations import Migrations
from opsconsole.timeutil import isoformat, utcnow

__all__ = [
    "EVENTS",
    "Message",
    "audit_hook",
    "counts",
    "enqueue",
    "get",
    "list_messages",
    "message_for",
    "migrations",
    "prune",
    "requeue",
]

migrations = Migrations("opsconsole.outbox")

# The outbox events a channel's ``events`` patterns can select.
EVENTS = (
    "incident.declared",
    "incident.status_changed",
    "incident.status_update",
    "incident.status_update_due",
    "incident.deadline_approaching",
    "incident.deadline_missed",
    "runbook.approval_requested",
    "runbook.run_failed",
    "drill.failed",
    "health.changed",
    "rule.notify",
)

_FAILED_RUN = {"failed", "timed_out", "aborted"}
_FAILED_DRILL = {"failed", "missed", "error"}


@migrations(name="0001_outbox")
def _m0001(db: sqlite_utils.Database) -> None:
    db.execute(
        """
        CREATE TABLE outbox (
            id INTEGER PRIMARY KEY,
            created_at TEXT NOT NULL,
            event TEXT NOT NULL,
            subject TEXT NOT NULL DEFAULT '',
            title TEXT NOT NULL,
            body TEXT NOT NULL,
            data TEXT NOT NULL DEFAULT '{}',
            audit_seq INTEGER,
            dedup_key TEXT UNIQUE,
            status TEXT NOT NULL DEFAULT 'pending',
            attempts INTEGER NOT NULL DEFAULT 0,
            next_attempt_at TEXT NOT NULL,
            claimed_by TEXT,
            claimed_until TEXT,
            delivered TEXT NOT NULL DEFAULT '[]',
            last_error TEXT,
            sent_at TEXT
        )
        """
    )
    db.execute("CREATE INDEX outbox_due ON outbox(status, next_attempt_at)")


@dataclass
class Message:
    id: int
    created_at: str
    event: str
    subject: str
    title: str
    body: str
    data: dict[str, Any]
    status: str
    attempts: int
    next_attempt_at: str
    delivered: list[str] = field(default_factory=list)
    last_error: str | None = None
    sent_at: str | None = None
    audit_seq: int | None = None

    def to_dict(self) -> dict[str, Any]:
        from dataclasses import asdict

        return asdict(self)


def _row_to_message(r: dict[str, Any]) -> Message:
    return Message(
        id=r["id"],
        created_at=r["created_at"],
        event=r["event"],
        subject=r["subject"],
        title=r["title"],
        body=r["body"],
        data=json.loads(r["data"]),
        status=r["status"],
        attempts=r["attempts"],
        next_attempt_at=r["next_attempt_at"],
        delivered=json.loads(r["delivered"]),
        last_error=r["last_error"],
        sent_at=r["sent_at"],
        audit_seq=r["audit_seq"],
    )


def enqueue(
    db: sqlite_utils.Database,
    event: str,
    title: str,
    body: str,
    *,
    subject: str = "",
    data: dict[str, Any] | None = None,
    audit_seq: int | None = None,
    dedup_key: str | None = None,
) -> int | None:
    """Insert one message (joins the caller's transaction). With ``dedup_key``, a second
    message with the same key is not written and None is returned."""
    now = isoformat(utcnow())
    with immediate(db):
        cur = db.execute(
            "INSERT INTO outbox (created_at, event, subject, title, body, data, "
            "audit_seq, dedup_key, next_attempt_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?) "
            "ON CONFLICT DO NOTHING RETURNING id",
            (
                now,
                event,
                subject,
                title,
                body,
                json.dumps(data or {}, sort_keys=True, default=str),
                audit_seq,
                dedup_key,
                now,
            ),
        )
        row = cur.fetchone()
        return int(row[0]) if row else None


def message_for(row: dict[str, Any]) -> tuple[str, str, str, dict[str, Any]] | None:
    """(event, title, body, data) for an audit event worth telling people about."""
    action, target, outcome = row["action"], row["target"], row["outcome"]
    det = row["details"]
    details: dict[str, Any] = json.loads(det) if isinstance(det, str) else dict(det)
    text = str(details.get("text") or "")
    actor = row["actor"]
    if action == "incident.declare":
        data = {
            "incident": target,
            "severity": details.get("severity"),
            "category": details.get("category"),
            "regions": details.get("regions", []),
            "services": details.get("services", []),
            "status": "declared",
        }
        return "incident.declared", f"{target} declared ({details.get('severity')})", text, data
    if action == "incident.status":
        data = {"incident": target, "status": details.get("to"), "from": details.get("from")}
        return "incident.status_changed", f"{target} is {details.get('to')}", text, data
    if action == "incident.update":
        return "incident.status_update", f"{target} status update", text, {"incident": target}
    if action == "incident.deadline.missed":
        data = {"incident": target, "deadline": details.get("deadline"), "due": details.get("due")}
        return "incident.deadline_missed", f"{target}: deadline missed", text, data
    if action == "runbook.approval.requested":
        run_id = target.split("/", 1)[0]
        body = (
            f"{actor} asks for approval of run {target}: {details.get('message', '')}. "
            f"Approve with `opsconsole runbook approve {run_id}`."
        )
        return (
            "runbook.approval_requested",
            f"approval requested: run {run_id}",
            body,
            {
                "run": run_id,
                "requested_by": actor,
            },
        )
    if action == "runbook.run.finished" and outcome in _FAILED_RUN:
        body = f"run {target} {outcome}" + (f": {details['error']}" if details.get("error") else "")
        return (
            "runbook.run_failed",
            f"run {target} {outcome}",
            body,
            {
                "run": target,
                "status": outcome,
            },
        )
    if (action == "drill.run.finished" and outcome in _FAILED_DRILL) or action == "drill.missed":
        outcome = "missed" if action == "drill.missed" else outcome
        reason = details.get("reason") or details.get("error") or ""
        body = f"drill {target} {outcome}" + (f": {reason}" if reason else "")
        return (
            "drill.failed",
            f"drill {target} {outcome}",
            body,
            {
                "drill": target,
                "run": details.get("run"),
                "status": outcome,
            },
        )
    if action == "health.state_changed":
        new, old = details.get("new", outcome), details.get("old")
        body = f"{target} is {str(new).upper()} (was {old})" + (
            f": {details['reason']}" if details.get("reason") else ""
        )
        data = {
            "key": target,
            "level": details.get("level"),
            "region": details.get("region"),
            "service": details.get("service"),
            "old": old,
            "new": new,
        }
        return "health.changed", f"{target} {new}", body, data
    return None


def audit_hook(db: sqlite_utils.Database, row: dict[str, Any]) -> None:
    """The :data:`APPEND_HOOKS` entry: runs inside the audit append's transaction."""
    msg = message_for(row)
    if msg is None:
        return
    event, title, body, data = msg
    enqueue(
        db,
        event,
        title,
        body,
        subject=str(data.get("incident") or row["target"]),
        data=data,
        audit_seq=int(row["seq"]),
    )


if audit_hook not in APPEND_HOOKS:
    APPEND_HOOKS.append(audit_hook)


# --- reading and operator actions ------------------------------------------------------


def _query(db: sqlite_utils.Database, sql: str, params: list[Any]) -> list[Message]:
    return [_row_to_message(dict(r)) for r in db.query(sql, params)]


def get(db: sqlite_utils.Database, message_id: int) -> Message:
    found = _query(db, "SELECT * FROM outbox WHERE id = ?", [message_id])
    if not found:
        raise NotFoundError(f"no outbox message {message_id} (see `opsconsole notify list`)")
    return found[0]


def list_messages(
    db: sqlite_utils.Database, *, failed: bool = False, status: str | None = None, limit: int = 50
) -> list[Message]:
    """Newest first. ``failed``: dead messages and pending ones that have failed a try."""
    where: list[str] = []
    params: list[Any] = []
    if failed:
        where.append("(status = 'dead' OR (status = 'pending' AND attempts > 0))")
    if status:
        where.append("status = ?")
        params.append(status)
    sql = "SELECT * FROM outbox" + (" WHERE " + " AND ".join(where) if where else "")
    return _query(db, sql + f" ORDER BY id DESC LIMIT {int(limit)}", params)


def counts(db: sqlite_utils.Database) -> dict[str, int]:
    """Messages by status (``failing``: pending ones that failed at least one try)."""
    out = {"pending": 0, "sent": 0, "dead": 0, "skipped": 0, "failing": 0}
    for status, n in db.execute("SELECT status, COUNT(*) FROM outbox GROUP BY status"):
        out[status] = n
    row = db.execute(
        "SELECT COUNT(*) FROM outbox WHERE status = 'pending' AND attempts > 0"
    ).fetchone()
    out["failing"] = row[0]
    return out


def requeue(db: sqlite_utils.Database, audit: Any, message_id: int) -> Message:
    """Put a dead (or stuck) message back in the queue with a fresh count of tries."""
    with immediate(db):
        msg = get(db, message_id)
        if msg.status in ("sent", "skipped"):
            raise OpsError(f"message {message_id} is {msg.status}; there is nothing to retry")
        held = db.execute(
            "SELECT claimed_by FROM outbox WHERE id = ? AND claimed_until > ?",
            (message_id, isoformat(utcnow())),
        ).fetchone()
        if held is not None and held[0]:
            # Taking it over could send it twice: the holder may be mid-send.
            raise OpsError(
                f"message {message_id} is being delivered by {held[0]} right now; "
                "see `opsconsole notify list` in a moment",
                exit_code=ExitCode.CONFLICT,
            )
        db.execute(
            "UPDATE outbox SET status = 'pending', attempts = 0, next_attempt_at = ?, "
            "claimed_by = NULL, claimed_until = NULL WHERE id = ?",
            (isoformat(utcnow()), message_id),
        )
        audit.record(
            "notify.retry", str(message_id), {"event": msg.event, "previous_status": msg.status}
        )
    return get(db, message_id)


def prune(db: sqlite_utils.Database, older_than: datetime) -> int:
    """Remove sent and skipped messages created before ``older_than`` (dead and pending
    ones stay until they are sent: nothing undelivered is ever removed)."""
    with immediate(db):
        cur = db.execute(
            "DELETE FROM outbox WHERE status IN ('sent', 'skipped') AND created_at < ?",
            (isoformat(older_than),),
        )
    return int(cur.rowcount)
