"""Follow-up actions from drills and reviews of continuity plans (tables in ``store``)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

import sqlite_utils

from opsconsole.timeutil import isoformat, utcnow

__all__ = ["FollowUp", "add_followup", "add_review", "close_followup", "followups", "reviews"]


@dataclass
class FollowUp:
    id: int
    drill_run: str
    drill: str
    plan: str
    action: str
    owner: str
    due: str
    status: str
    created_at: str
    closed_at: str | None = None
    closed_by: str | None = None
    run_when: str | None = None  # when the drill it came from happened


def add_followup(db: sqlite_utils.Database, run_id: str, action: str, owner: str, due: str) -> int:
    cur = db.execute(
        "INSERT INTO drill_followups (drill_run, action, owner, due, created_at) "
        "VALUES (?, ?, ?, ?, ?) RETURNING id",
        (run_id, action, owner, due, isoformat(utcnow())),
    )
    return int(cur.fetchone()[0])


def followups(
    db: sqlite_utils.Database, *, plan: str | None = None, open_only: bool = False
) -> list[FollowUp]:
    sql = (
        "SELECT f.*, r.drill AS drill, r.plan AS plan, "
        "COALESCE(r.started_at, r.scheduled_for) AS run_when FROM drill_followups f "
        "JOIN drill_runs r ON r.id = f.drill_run"
    )
    where, params = [], []
    if plan:
        where.append("r.plan = ?")
        params.append(plan)
    if open_only:
        where.append("f.status = 'open'")
    if where:
        sql += " WHERE " + " AND ".join(where)
    sql += " ORDER BY f.due, f.id"
    return [FollowUp(**r) for r in db.query(sql, params)]


def close_followup(db: sqlite_utils.Database, followup_id: int, by: str) -> bool:
    cur = db.execute(
        "UPDATE drill_followups SET status = 'done', closed_at = ?, closed_by = ? "
        "WHERE id = ? AND status = 'open'",
        (isoformat(utcnow()), by, followup_id),
    )
    return cur.rowcount == 1


def add_review(
    db: sqlite_utils.Database, plan: str, reviewer: str, notes: str, at: datetime | None = None
) -> int:
    cur = db.execute(
        "INSERT INTO plan_reviews (plan, reviewed_at, reviewer, notes) VALUES (?, ?, ?, ?) "
        "RETURNING id",
        (plan, isoformat(at or utcnow()), reviewer, notes),
    )
    return int(cur.fetchone()[0])


def reviews(db: sqlite_utils.Database, plan: str | None = None) -> list[dict[str, Any]]:
    sql = "SELECT * FROM plan_reviews" + (" WHERE plan = ?" if plan else "")
    return [dict(r) for r in db.query(sql + " ORDER BY reviewed_at", [plan] if plan else [])]
