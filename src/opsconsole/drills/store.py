"""Drill records in the shared database: runs (and missed ones), findings, follow-ups,
plan reviews, schedule anchors and the scheduler's single-instance lock row.

Every write that records a drill action goes through :func:`audited`: the row and its
audit event commit in one transaction, or neither does (fail closed).
"""

from __future__ import annotations

import contextlib
import json
import secrets as _secrets
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any

import sqlite_utils

from opsconsole import leases as _leases  # noqa: F401 - its table first (migration 0002)
from opsconsole.store import immediate
from opsconsole.store.migrations import Migrations
from opsconsole.timeutil import isoformat, parse_when, utcnow

if TYPE_CHECKING:
    from opsconsole.audit import AuditLog

__all__ = [
    "DrillRun",
    "add_finding",
    "audited",
    "get_run",
    "history",
    "insert_run",
    "migrations",
    "new_run_id",
    "update_run",
]

migrations = Migrations("opsconsole.drills")


@migrations(name="0001_drill_tables")
def _m0001(db: sqlite_utils.Database) -> None:
    db.execute(
        """
        CREATE TABLE drill_runs (
            id TEXT PRIMARY KEY,
            drill TEXT NOT NULL,
            plan TEXT NOT NULL,
            kind TEXT NOT NULL,
            status TEXT NOT NULL,
            trigger TEXT NOT NULL,
            scheduled_for TEXT,
            started_at TEXT,
            finished_at TEXT,
            runbook TEXT,
            target TEXT,
            run_id TEXT,
            run_status TEXT,
            rto_seconds REAL,
            rpo_seconds REAL,
            rto_objective REAL,
            rpo_objective REAL,
            rto_met INTEGER,
            rpo_met INTEGER,
            reason TEXT,
            participants TEXT NOT NULL DEFAULT '[]',
            notes TEXT NOT NULL DEFAULT '',
            actor TEXT NOT NULL,
            interface TEXT NOT NULL
        )
        """
    )
    db.execute("CREATE INDEX drill_runs_drill ON drill_runs(drill, scheduled_for)")
    db.execute("CREATE INDEX drill_runs_plan ON drill_runs(plan, started_at)")
    db.execute(
        """
        CREATE TABLE drill_findings (
            id INTEGER PRIMARY KEY,
            drill_run TEXT NOT NULL REFERENCES drill_runs(id),
            text TEXT NOT NULL,
            created_at TEXT NOT NULL
        )
        """
    )
    db.execute(
        """
        CREATE TABLE drill_followups (
            id INTEGER PRIMARY KEY,
            drill_run TEXT NOT NULL REFERENCES drill_runs(id),
            action TEXT NOT NULL,
            owner TEXT NOT NULL,
            due TEXT NOT NULL,
            status TEXT NOT NULL DEFAULT 'open',
            created_at TEXT NOT NULL,
            closed_at TEXT,
            closed_by TEXT
        )
        """
    )
    db.execute(
        """
        CREATE TABLE plan_reviews (
            id INTEGER PRIMARY KEY,
            plan TEXT NOT NULL,
            reviewed_at TEXT NOT NULL,
            reviewer TEXT NOT NULL,
            notes TEXT NOT NULL DEFAULT ''
        )
        """
    )
    # When a drill's schedule was first seen (or last changed): occurrences before it
    # are not "missed" - the drill did not exist, or had another schedule.
    db.execute(
        "CREATE TABLE drill_anchors (drill TEXT PRIMARY KEY, schedule TEXT NOT NULL, "
        "since TEXT NOT NULL)"
    )
    db.execute(
        """
        CREATE TABLE scheduler_lock (
            id INTEGER PRIMARY KEY CHECK (id = 1),
            token TEXT NOT NULL,
            pid INTEGER NOT NULL,
            host TEXT NOT NULL,
            proc_started REAL,
            since TEXT NOT NULL,
            heartbeat TEXT NOT NULL
        )
        """
    )


@migrations(name="0002_scheduler_lease")
def _m0002(db: sqlite_utils.Database) -> None:
    """The scheduler's single-instance lock is the ``scheduler`` lease now (leases work
    across hosts; the leases set is registered first, by the import above). A holder in
    the old table is carried over with the old 60 s staleness, so a scheduler still
    running from before the upgrade is not run twice at once."""
    from datetime import timedelta

    row = db.execute(
        "SELECT token, pid, host, since, heartbeat FROM scheduler_lock WHERE id = 1"
    ).fetchone()
    if row is not None:
        seconds = 60.0
        expires = parse_when(row[4]) + timedelta(seconds=seconds)
        db.execute(
            "INSERT INTO leases (name, token, account, host, pid, pid_start, acquired_at, "
            "heartbeat_at, expires_at, seconds) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            [
                "scheduler",
                row[0],
                "scheduler",
                row[2],
                row[1],
                None,
                row[3],
                row[4],
                isoformat(expires),
                seconds,
            ],
        )
    db.execute("DROP TABLE scheduler_lock")


@migrations(name="0003_drill_runs_seq")
def _m0003(db: sqlite_utils.Database) -> None:
    """An insertion order for drill runs (the tie-breaker between runs of one moment):
    SQLite's implicit rowid served until now, PostgreSQL has none."""
    db.execute("ALTER TABLE drill_runs ADD COLUMN seq INTEGER")
    if db.engine == "sqlite":
        db.execute("UPDATE drill_runs SET seq = rowid")
    else:
        db.execute(
            "UPDATE drill_runs SET seq = n.seq FROM (SELECT id, row_number() OVER "
            "(ORDER BY COALESCE(started_at, scheduled_for), id) AS seq FROM drill_runs) AS n "
            "WHERE drill_runs.id = n.id"
        )
    db.execute("CREATE INDEX drill_runs_seq ON drill_runs(seq)")


@dataclass
class DrillRun:
    id: str
    drill: str
    plan: str
    kind: str
    status: str
    trigger: str
    actor: str
    interface: str
    scheduled_for: datetime | None = None
    started_at: datetime | None = None
    finished_at: datetime | None = None
    runbook: str | None = None
    target: str | None = None
    run_id: str | None = None
    run_status: str | None = None
    rto_seconds: float | None = None
    rpo_seconds: float | None = None
    rto_objective: float | None = None
    rpo_objective: float | None = None
    rto_met: bool | None = None
    rpo_met: bool | None = None
    reason: str | None = None
    participants: list[str] = field(default_factory=list)
    notes: str = ""
    findings: list[str] = field(default_factory=list)

    @property
    def when(self) -> datetime | None:
        """When it happened (or, for a missed drill, when it was due)."""
        return self.started_at or self.scheduled_for

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for key, value in self.__dict__.items():
            out[key] = isoformat(value) if isinstance(value, datetime) else value
        return out


_TIMES = ("scheduled_for", "started_at", "finished_at")
_BOOLS = ("rto_met", "rpo_met")


def _to_row(values: dict[str, Any]) -> dict[str, Any]:
    row: dict[str, Any] = {}
    for key, value in values.items():
        if key == "findings":
            continue
        if isinstance(value, datetime):
            value = isoformat(value)
        elif key == "participants":
            value = json.dumps(list(value))
        elif key in _BOOLS and value is not None:
            value = int(bool(value))
        row[key] = value
    return row


def _from_row(row: dict[str, Any]) -> DrillRun:
    data = dict(row)
    data.pop("seq", None)
    for key in _TIMES:
        if data.get(key):
            data[key] = parse_when(data[key])
    for key in _BOOLS:
        if data.get(key) is not None:
            data[key] = bool(data[key])
    data["participants"] = json.loads(data.get("participants") or "[]")
    return DrillRun(**data)


def new_run_id(now: datetime | None = None) -> str:
    now = now or utcnow()
    return f"drill-{now.strftime('%Y%m%d-%H%M%S')}-{_secrets.token_hex(3)}"


@contextlib.contextmanager
def audited(
    db: sqlite_utils.Database,
    audit: AuditLog,
    action: str,
    target: str,
    details: dict[str, Any] | None = None,
    outcome: str = "ok",
) -> Iterator[sqlite_utils.Database]:
    """Do the writes in the block and record ``action``: both commit, or neither."""
    with immediate(db):
        yield db
        audit.record(action, target, details or {}, outcome)


def insert_run(db: sqlite_utils.Database, run: DrillRun) -> None:
    row = _to_row(run.__dict__)
    cols = ", ".join(row)
    values = ", ".join(":" + c for c in row)
    db.execute(
        f"INSERT INTO drill_runs ({cols}, seq) VALUES ({values}, "
        "(SELECT COALESCE(MAX(seq), 0) + 1 FROM drill_runs))",
        row,
    )
    for text in run.findings:
        add_finding(db, run.id, text)


def update_run(db: sqlite_utils.Database, drill_run: str, /, **values: Any) -> None:
    """Set columns of one drill run (``findings`` are appended)."""
    findings = values.pop("findings", None) or []
    row = _to_row(values)
    if row:
        sets = ", ".join(f"{c} = :{c}" for c in row)
        db.execute(f"UPDATE drill_runs SET {sets} WHERE id = :_id", {**row, "_id": drill_run})
    for text in findings:
        add_finding(db, drill_run, text)


def add_finding(db: sqlite_utils.Database, run_id: str, text: str) -> None:
    db.execute(
        "INSERT INTO drill_findings (drill_run, text, created_at) VALUES (?, ?, ?)",
        (run_id, text, isoformat(utcnow())),
    )


def _attach_findings(db: sqlite_utils.Database, runs: list[DrillRun]) -> list[DrillRun]:
    by_id = {r.id: r for r in runs}
    if not by_id:
        return runs
    marks = ",".join("?" * len(by_id))
    for run_id, text in db.execute(
        f"SELECT drill_run, text FROM drill_findings WHERE drill_run IN ({marks}) ORDER BY id",
        list(by_id),
    ).fetchall():
        by_id[run_id].findings.append(text)
    return runs


def get_run(db: sqlite_utils.Database, run_id: str) -> DrillRun | None:
    rows = list(db.query("SELECT * FROM drill_runs WHERE id = ?", [run_id]))
    return _attach_findings(db, [_from_row(rows[0])])[0] if rows else None


def history(
    db: sqlite_utils.Database,
    drill: str | None = None,
    *,
    plan: str | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
    limit: int | None = None,
) -> list[DrillRun]:
    """Drill runs (including missed ones), oldest first."""
    where, params = [], []
    if drill:
        where.append("drill = ?")
        params.append(drill)
    if plan:
        where.append("plan = ?")
        params.append(plan)
    moment = "COALESCE(started_at, scheduled_for)"
    if since:
        where.append(f"{moment} >= ?")
        params.append(isoformat(since))
    if until:
        where.append(f"{moment} < ?")
        params.append(isoformat(until))
    sql = "SELECT * FROM drill_runs" + (" WHERE " + " AND ".join(where) if where else "")
    sql += f" ORDER BY {moment} DESC, seq DESC"
    if limit:
        sql += f" LIMIT {int(limit)}"
    runs = [_from_row(r) for r in db.query(sql, params)]
    runs.reverse()
    return _attach_findings(db, runs)
