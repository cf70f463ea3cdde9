"""What other processes changed in the store, as it happens.

Every change to shared state lands in the audit log in the same transaction, so the
audit sequence number is a complete cursor: "everything after seq N" is "everything that
changed since I last looked". A :class:`ChangeWatcher` tells cheaply *whether* anything
was committed and then reads the new audit events.

On SQLite the cheap test is ``PRAGMA data_version``: on a connection of its own, its
value changes whenever another connection (this process or another) commits to the file,
and reading it costs no I/O beyond a shared-memory check in WAL mode. A PostgreSQL
backend will implement the same interface with ``LISTEN/NOTIFY`` (a trigger on
``audit_events`` notifying the new seq) and block on the notification instead of polling.

No interface code here: the console runs :meth:`ChangeWatcher.wait` in a worker thread.
"""

from __future__ import annotations

import json
import sqlite3
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

__all__ = ["Change", "ChangeSource", "ChangeWatcher", "describe", "latest_seq", "matches"]

# How often the counter is read. A read is a few microseconds; 0.2 s keeps a change on
# screen well within a second of its commit.
POLL_SECONDS = 0.2


@dataclass(frozen=True)
class Change:
    """One committed change, as the audit log recorded it."""

    seq: int
    ts: str
    actor: str
    interface: str
    action: str
    target: str
    outcome: str
    details: dict[str, Any] = field(default_factory=dict)

    @property
    def kind(self) -> str:
        """The capability that changed: ``incident``, ``runbook``, ``health``, ``drill``…"""
        return self.action.split(".", 1)[0]


class ChangeSource(Protocol):
    """What a console needs from a store to follow other people's changes."""

    def wait(self, cursor: int, stop: threading.Event, timeout: float) -> list[Change]:
        """Changes after ``cursor``; blocks up to ``timeout`` s until there are some."""

    def close(self) -> None: ...


def latest_seq(conn: sqlite3.Connection) -> int:
    row = conn.execute("SELECT MAX(seq) FROM audit_events").fetchone()
    return int(row[0] or 0)


def _rows(conn: sqlite3.Connection, cursor: int, limit: int) -> list[Change]:
    rows = conn.execute(
        "SELECT seq, ts, actor, interface, action, target, outcome, details "
        "FROM audit_events WHERE seq > ? ORDER BY seq LIMIT ?",
        (cursor, limit),
    ).fetchall()
    out = []
    for seq, ts, actor, interface, action, target, outcome, details in rows:
        try:
            det = json.loads(details) if details else {}
        except ValueError:
            det = {}
        out.append(Change(seq, ts, actor, interface, action, target, outcome, det))
    return out


class ChangeWatcher:
    """Follows an SQLite store through ``PRAGMA data_version`` on its own connection."""

    def __init__(self, db_path: Path, *, poll: float = POLL_SECONDS, batch: int = 500) -> None:
        self.db_path = db_path
        self.poll = poll
        self.batch = batch
        self._conn: sqlite3.Connection | None = None
        self._version: int | None = None

    def _connect(self) -> sqlite3.Connection:
        if self._conn is None:
            # Read-only, autocommit: each PRAGMA/SELECT sees the latest committed state.
            uri = f"file:{self.db_path}?mode=ro"
            self._conn = sqlite3.connect(
                uri, uri=True, isolation_level=None, check_same_thread=False, timeout=5
            )
        return self._conn

    def version(self) -> int:
        return int(self._connect().execute("PRAGMA data_version").fetchone()[0])

    def cursor_now(self) -> int:
        """The newest seq: start following from here (older history is not news)."""
        return latest_seq(self._connect())

    def changes_since(self, cursor: int) -> list[Change]:
        return _rows(self._connect(), cursor, self.batch)

    def wait(self, cursor: int, stop: threading.Event, timeout: float = 5.0) -> list[Change]:
        """Block until something was committed after ``cursor`` (or ``timeout``/``stop``)."""
        conn = self._connect()
        waited = 0.0
        while not stop.is_set():
            version = self.version()
            if version != self._version:
                self._version = version
                found = _rows(conn, cursor, self.batch)
                if found:
                    return found
            if waited >= timeout:
                return []
            stop.wait(self.poll)
            waited += self.poll
        return []

    def close(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None


_VERBS: dict[str, str] = {
    "incident.note": "added a note to",
    "incident.update": "posted a status update on",
    "incident.status": "changed the status of",
    "incident.assign": "assigned a role on",
    "incident.decide": "recorded a decision on",
    "incident.declare": "declared",
    "incident.task.done": "finished a task on",
    "incident.task.start": "started a task on",
    "incident.task.skip": "skipped a task on",
    "incident.task.waive": "waived a task on",
    "runbook.run.started": "started run",
    "runbook.run.finished": "finished run",
    "runbook.approval.requested": "asked for approval of",
    "runbook.approval.decided": "decided the approval of",
    "health.state_changed": "saw a health change:",
    "drill.run.finished": "finished drill",
}


def describe(change: Change, *, who: bool = True) -> str:
    """``bob (cli) added a note to INC-2026-0001: rotating keys now``."""
    verb = _VERBS.get(change.action) or change.action.replace(".", " ")
    text = f"{verb} {change.target}".rstrip()
    if who:
        text = f"{change.actor} ({change.interface}) {text}"
    detail = change.details
    extra = (
        detail.get("text")
        or detail.get("summary")
        or detail.get("status")
        or detail.get("state")
        or detail.get("to")
        or detail.get("decision")
    )
    if isinstance(extra, str) and extra:
        text += f": {extra[:60]}"
    return text


def matches(change: Change, text: str) -> bool:
    """The events filter: ``kind:incident actor:bob via:cli`` and plain words (all must
    match, case-insensitive)."""
    hay = " ".join(
        (
            change.action,
            change.target,
            change.actor,
            change.interface,
            change.outcome,
            describe(change),
        )
    ).lower()
    for token in text.lower().split():
        key, sep, value = token.partition(":")
        if sep and value and key in ("kind", "actor", "via", "action"):
            field = {
                "kind": change.kind,
                "actor": change.actor,
                "via": change.interface,
                "action": change.action,
            }[key].lower()
            if not field.startswith(value):
                return False
        elif token not in hay:
            return False
    return True
