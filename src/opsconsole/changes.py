"""What other processes changed in the store, as it happens.

Every change to shared state lands in the audit log in the same transaction, so the
audit sequence number is a complete cursor: "everything after seq N" is "everything that
changed since I last looked". A :class:`ChangeWatcher` tells cheaply *whether* anything
was committed and then reads the new audit events.

On SQLite the cheap test is ``PRAGMA data_version``: on a connection of its own, its
value changes whenever another connection (this process or another) commits to the file,
and reading it costs no I/O beyond a shared-memory check in WAL mode. On PostgreSQL
(:mod:`opsconsole.changes_pg`) a trigger on ``audit_events`` sends a notification at
commit and the listener blocks on it instead of polling. Either way the notification is
only a wake-up: the audit table is the truth, read after the cursor.

:func:`open_changes` picks the implementation from the store's engine. No interface code
here: the console runs :meth:`ChangeSource.wait` in a worker thread, the CLI's
``--follow`` in its main thread.
"""

from __future__ import annotations

import json
import sqlite3
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from opsconsole import audit as _audit  # noqa: F401 - audit_events exists before our migration
from opsconsole.store import Migrations, is_postgres_url

if TYPE_CHECKING:
    from opsconsole.store import Database, Location

__all__ = [
    "CHANNEL",
    "Change",
    "ChangeSource",
    "ChangeWatcher",
    "concerns",
    "describe",
    "latest_seq",
    "matches",
    "open_changes",
]

# The LISTEN/NOTIFY channel (notifications never leave their database, so one name serves
# every team database on a server).
CHANNEL = "opsconsole_changes"

migrations = Migrations("opsconsole.changes")


@migrations(name="0001_audit_notify")
def _m0001(db: Any) -> None:
    """PostgreSQL: every audit row (every change is audited) notifies :data:`CHANNEL` when
    its transaction commits, carrying its seq, kind, action and target. The payload is
    bounded well under PostgreSQL's 8,000-byte limit (target and action are cut) so a long
    target can never make the change itself fail. SQLite needs nothing: its watchers read
    the file's change counter."""
    if db.engine != "postgresql":
        return
    db.execute(
        "CREATE OR REPLACE FUNCTION opsconsole_notify_change() RETURNS trigger "
        "LANGUAGE plpgsql AS $$ BEGIN "
        f"PERFORM pg_notify('{CHANNEL}', json_build_object("
        "'seq', NEW.seq, 'kind', split_part(left(NEW.action, 100), '.', 1), "
        "'action', left(NEW.action, 100), 'target', left(NEW.target, 200))::text); "
        "RETURN NULL; END $$"
    )
    db.execute(
        "CREATE TRIGGER audit_events_notify AFTER INSERT ON audit_events "
        "FOR EACH ROW EXECUTE FUNCTION opsconsole_notify_change()"
    )


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

    def cursor_now(self) -> int:
        """The newest seq: start following from here (older history is not news)."""

    def changes_since(self, cursor: int) -> list[Change]:
        """Changes after ``cursor`` (at most one batch), without waiting."""

    def wait(self, cursor: int, stop: threading.Event, timeout: float) -> list[Change]:
        """Changes after ``cursor``; blocks up to ``timeout`` s until there are some."""

    def close(self) -> None:
        """Release the source's own connection."""


def open_changes(store: Database | Location) -> ChangeSource:
    """The change source for a store (an open database, or where one is): PostgreSQL's
    ``LISTEN/NOTIFY`` listener or SQLite's change-counter watcher. Each has a connection
    of its own; the caller closes it."""
    engine = getattr(store, "engine", None)
    location = getattr(store, "location", store)
    if engine is None:
        engine = "postgresql" if is_postgres_url(location) else "sqlite"
    if engine == "postgresql":
        from opsconsole.changes_pg import PgChangeListener

        return PgChangeListener(str(location))
    return ChangeWatcher(Path(location))


def latest_seq(conn: sqlite3.Connection) -> int:
    row = conn.execute("SELECT MAX(seq) FROM audit_events").fetchone()
    return int(row[0] or 0)


# The columns a Change is made of; "{p}" is the engine's placeholder.
CHANGES_SQL = (
    "SELECT seq, ts, actor, interface, action, target, outcome, details "
    "FROM audit_events WHERE seq > {p} ORDER BY seq LIMIT {p}"
)


def _rows(conn: sqlite3.Connection, cursor: int, limit: int) -> list[Change]:
    return to_changes(conn.execute(CHANGES_SQL.format(p="?"), (cursor, limit)).fetchall())


def to_changes(rows: Any) -> list[Change]:
    """Rows of :data:`CHANGES_SQL` as changes."""
    out = []
    for seq, ts, actor, interface, action, target, outcome, details in rows:
        try:
            det = json.loads(details) if details else {}
        except ValueError:
            det = {}
        out.append(Change(int(seq), str(ts), actor, interface, action, target, outcome, det))
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
            from urllib.parse import quote

            uri = f"file:{quote(str(self.db_path))}?mode=ro"  # '?' or '#' in a path stay
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
                found = _rows(conn, cursor, self.batch)
                # A full batch may leave committed rows behind: read again next time even
                # if nothing else is committed meanwhile.
                self._version = None if len(found) >= self.batch else version
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
    "runbook.approval.approved": "approved",
    "runbook.approval.denied": "denied",
    "runbook.run.abort_requested": "asked to abort run",
    "drill.record": "recorded drill",
    "health.state_changed": "saw a health change:",
    "drill.run.finished": "finished drill",
}


def concerns(change: Change, ident: str) -> bool:
    """The change is about ``ident`` (a run, an incident, a drill): its target is the id,
    or a part of it (``RUN/step`` for an approval)."""
    return change.target == ident or change.target.startswith(ident + "/")


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
    if not extra and isinstance(detail.get("new"), str):  # a state change: old → new
        old = detail.get("old")
        extra = f"{old} → {detail['new']}" if isinstance(old, str) and old else detail["new"]
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
