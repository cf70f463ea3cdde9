"""Rule state in the store: when each (rule, de-duplication key) last fired, and how far
``serve`` has read the audit log for health and deadline triggers."""

from __future__ import annotations

from datetime import datetime

import sqlite_utils

from opsconsole.store.migrations import Migrations
from opsconsole.timeutil import isoformat

__all__ = ["claim_firing", "get_cursor", "last_fired", "migrations", "set_cursor"]

migrations = Migrations("opsconsole.rules")


@migrations(name="0001_rule_firings")
def _m0001(db: sqlite_utils.Database) -> None:
    db.execute(
        """
        CREATE TABLE rule_firings (
            rule TEXT NOT NULL,
            dedup_key TEXT NOT NULL,
            fired_at TEXT NOT NULL,
            count INTEGER NOT NULL DEFAULT 1,
            PRIMARY KEY (rule, dedup_key)
        )
        """
    )
    db.execute("CREATE TABLE rule_cursor (name TEXT PRIMARY KEY, seq INTEGER NOT NULL)")


def last_fired(db: sqlite_utils.Database, rule: str, key: str) -> datetime | None:
    row = db.execute(
        "SELECT fired_at FROM rule_firings WHERE rule = ? AND dedup_key = ?", (rule, key)
    ).fetchone()
    return datetime.fromisoformat(row[0]) if row else None


def claim_firing(
    db: sqlite_utils.Database, rule: str, key: str, now: datetime, cooldown_seconds: float
) -> bool:
    """Record a firing unless the same (rule, key) fired within the cool-down. Call inside
    a write transaction: two processes cannot both claim the same firing."""
    last = last_fired(db, rule, key)
    if last is not None and (now - last).total_seconds() < cooldown_seconds:
        return False
    db.execute(
        "INSERT INTO rule_firings (rule, dedup_key, fired_at) VALUES (?, ?, ?) "
        "ON CONFLICT(rule, dedup_key) DO UPDATE SET fired_at = excluded.fired_at, "
        "count = rule_firings.count + 1",
        (rule, key, isoformat(now)),
    )
    return True


def get_cursor(db: sqlite_utils.Database, name: str) -> int | None:
    row = db.execute("SELECT seq FROM rule_cursor WHERE name = ?", (name,)).fetchone()
    return int(row[0]) if row else None


def set_cursor(db: sqlite_utils.Database, name: str, seq: int) -> None:
    db.execute(
        "INSERT INTO rule_cursor (name, seq) VALUES (?, ?) "
        "ON CONFLICT(name) DO UPDATE SET seq = excluded.seq",
        (name, seq),
    )
