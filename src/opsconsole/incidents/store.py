"""Incident tables (this capability's migrations) and reading incidents back.

Writes happen in :mod:`opsconsole.incidents.service`, always inside one
``immediate(db)`` transaction together with the timeline entry and the audit record.
The timeline table refuses UPDATE and DELETE: it is append-only.
"""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

import sqlite_utils

from opsconsole.errors import NotFoundError
from opsconsole.incidents.model import Incident, RunLink, Task, TimelineEntry
from opsconsole.store import append_only
from opsconsole.store.migrations import Migrations
from opsconsole.timeutil import isoformat

__all__ = [
    "append_timeline",
    "deadline_outcomes",
    "list_ids",
    "load_incident",
    "load_timeline",
    "migrations",
    "next_id",
]

migrations = Migrations("opsconsole.incidents")


@migrations(name="0001_incidents")
def _m0001(db: sqlite_utils.Database) -> None:
    db.execute(
        """
        CREATE TABLE incidents (
            id TEXT PRIMARY KEY, year INTEGER NOT NULL, number INTEGER NOT NULL,
            title TEXT NOT NULL, severity TEXT NOT NULL, category TEXT NOT NULL,
            status TEXT NOT NULL, regions TEXT NOT NULL, services TEXT NOT NULL,
            region_tz TEXT NOT NULL, detected_at TEXT NOT NULL, declared_at TEXT NOT NULL,
            declared_by TEXT NOT NULL, mitigated_at TEXT, resolved_at TEXT, closed_at TEXT,
            last_update_at TEXT, playbook TEXT NOT NULL, source_key TEXT,
            UNIQUE (year, number)
        )
        """
    )
    db.execute("CREATE INDEX incidents_source ON incidents(source_key, status)")
    db.execute(
        """
        CREATE TABLE incident_roles (
            incident_id TEXT NOT NULL REFERENCES incidents(id), role TEXT NOT NULL,
            holder TEXT NOT NULL, since TEXT NOT NULL, PRIMARY KEY (incident_id, role)
        )
        """
    )
    db.execute(
        """
        CREATE TABLE incident_tasks (
            incident_id TEXT NOT NULL REFERENCES incidents(id), task_id TEXT NOT NULL,
            position INTEGER NOT NULL, phase TEXT NOT NULL, title TEXT NOT NULL,
            owner_role TEXT NOT NULL, instructions TEXT NOT NULL, requires TEXT NOT NULL,
            runbook TEXT, runbook_params TEXT NOT NULL DEFAULT '{}',
            status TEXT NOT NULL DEFAULT 'pending', note TEXT, updated_at TEXT, updated_by TEXT,
            run_id TEXT, run_status TEXT, PRIMARY KEY (incident_id, task_id)
        )
        """
    )
    db.execute(
        """
        CREATE TABLE incident_decisions (
            incident_id TEXT NOT NULL REFERENCES incidents(id), decision TEXT NOT NULL,
            at TEXT NOT NULL, by TEXT NOT NULL, PRIMARY KEY (incident_id, decision)
        )
        """
    )
    db.execute(
        """
        CREATE TABLE incident_deadlines (
            incident_id TEXT NOT NULL REFERENCES incidents(id), deadline_id TEXT NOT NULL,
            outcome TEXT NOT NULL, at TEXT NOT NULL, PRIMARY KEY (incident_id, deadline_id)
        )
        """
    )
    db.execute(
        """
        CREATE TABLE incident_runs (
            incident_id TEXT NOT NULL REFERENCES incidents(id), run_id TEXT NOT NULL,
            task_id TEXT, runbook TEXT NOT NULL, status TEXT NOT NULL, error TEXT,
            at TEXT NOT NULL, PRIMARY KEY (incident_id, run_id)
        )
        """
    )
    db.execute(
        """
        CREATE TABLE incident_events (
            seq INTEGER PRIMARY KEY, incident_id TEXT NOT NULL REFERENCES incidents(id),
            ts TEXT NOT NULL, recorded_at TEXT NOT NULL, actor TEXT NOT NULL,
            interface TEXT NOT NULL, kind TEXT NOT NULL, text TEXT NOT NULL,
            region TEXT, details TEXT NOT NULL DEFAULT '{}'
        )
        """
    )
    db.execute("CREATE INDEX incident_events_incident ON incident_events(incident_id, ts)")
    append_only(db, "incident_events", "the incident timeline is append-only")


def _dt(value: str | None) -> datetime | None:
    return datetime.fromisoformat(value) if value else None


def _at(value: str) -> datetime:
    return datetime.fromisoformat(value)


def _rows(db: sqlite_utils.Database, sql: str, params: tuple[Any, ...]) -> list[dict[str, Any]]:
    cur = db.execute(sql, params)
    cols = [c[0] for c in cur.description]
    return [dict(zip(cols, row, strict=True)) for row in cur.fetchall()]


def next_id(db: sqlite_utils.Database, year: int) -> tuple[str, int]:
    """The next ``INC-YYYY-NNNN``; call inside the write transaction that inserts it."""
    row = db.execute("SELECT MAX(number) FROM incidents WHERE year = ?", (year,)).fetchone()
    number = (row[0] or 0) + 1
    return f"INC-{year}-{number:04d}", number


def list_ids(db: sqlite_utils.Database, *, open_only: bool = False) -> list[str]:
    sql = "SELECT id FROM incidents"
    if open_only:
        sql += " WHERE status != 'closed'"
    return [r[0] for r in db.execute(sql + " ORDER BY year, number").fetchall()]


def load_incident(db: sqlite_utils.Database, incident_id: str) -> Incident:
    rows = _rows(db, "SELECT * FROM incidents WHERE id = ?", (incident_id.upper(),))
    if not rows:
        raise NotFoundError(f"no incident {incident_id} (see `opsconsole incident list`)")
    r = rows[0]
    inc = Incident(
        id=r["id"],
        title=r["title"],
        severity=r["severity"],
        category=r["category"],
        status=r["status"],
        regions=json.loads(r["regions"]),
        services=json.loads(r["services"]),
        region_tz=json.loads(r["region_tz"]),
        detected_at=_at(r["detected_at"]),
        declared_at=_at(r["declared_at"]),
        declared_by=r["declared_by"],
        playbook=json.loads(r["playbook"]),
        mitigated_at=_dt(r["mitigated_at"]),
        resolved_at=_dt(r["resolved_at"]),
        closed_at=_dt(r["closed_at"]),
        last_update_at=_dt(r["last_update_at"]),
        source_key=r["source_key"],
    )
    for role in _rows(
        db, "SELECT role, holder FROM incident_roles WHERE incident_id = ?", (inc.id,)
    ):
        inc.roles[role["role"]] = role["holder"]
    for t in _rows(
        db, "SELECT * FROM incident_tasks WHERE incident_id = ? ORDER BY position", (inc.id,)
    ):
        inc.tasks.append(
            Task(
                id=t["task_id"],
                phase=t["phase"],
                title=t["title"],
                owner_role=t["owner_role"],
                instructions=t["instructions"],
                requires=json.loads(t["requires"]),
                runbook=t["runbook"],
                runbook_params=json.loads(t["runbook_params"]),
                status=t["status"],
                note=t["note"],
                updated_at=_dt(t["updated_at"]),
                updated_by=t["updated_by"],
                run_id=t["run_id"],
                run_status=t["run_status"],
            )
        )
    for d in _rows(
        db, "SELECT decision, at FROM incident_decisions WHERE incident_id = ?", (inc.id,)
    ):
        inc.decisions[d["decision"]] = _at(d["at"])
    for run in _rows(
        db, "SELECT * FROM incident_runs WHERE incident_id = ? ORDER BY at", (inc.id,)
    ):
        inc.runs.append(
            RunLink(
                run_id=run["run_id"],
                runbook=run["runbook"],
                status=run["status"],
                task_id=run["task_id"],
                at=_at(run["at"]),
                error=run["error"],
            )
        )
    return inc


def deadline_outcomes(
    db: sqlite_utils.Database, incident_id: str
) -> dict[str, tuple[str, datetime]]:
    rows = _rows(
        db,
        "SELECT deadline_id, outcome, at FROM incident_deadlines WHERE incident_id = ?",
        (incident_id,),
    )
    return {r["deadline_id"]: (r["outcome"], _at(r["at"])) for r in rows}


def append_timeline(
    db: sqlite_utils.Database,
    incident_id: str,
    *,
    ts: datetime,
    recorded_at: datetime,
    actor: str,
    interface: str,
    kind: str,
    text: str,
    region: str | None = None,
    details: dict[str, Any] | None = None,
) -> int:
    cur = db.execute(
        "INSERT INTO incident_events (incident_id, ts, recorded_at, actor, interface, kind, "
        "text, region, details) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?) RETURNING seq",
        (
            incident_id,
            isoformat(ts),
            isoformat(recorded_at),
            actor,
            interface,
            kind,
            text,
            region,
            json.dumps(details or {}, sort_keys=True, default=str),
        ),
    )
    return int(cur.fetchone()[0])


def load_timeline(db: sqlite_utils.Database, inc: Incident) -> list[TimelineEntry]:
    rows = _rows(
        db, "SELECT * FROM incident_events WHERE incident_id = ? ORDER BY ts, seq", (inc.id,)
    )
    return [
        TimelineEntry(
            seq=r["seq"],
            ts=_at(r["ts"]),
            actor=r["actor"],
            kind=r["kind"],
            text=r["text"],
            region=r["region"],
            details=json.loads(r["details"]),
            tz=inc.zone_for(r["region"]),
        )
        for r in rows
    ]
