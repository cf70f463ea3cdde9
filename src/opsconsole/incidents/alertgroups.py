"""What Alertmanager last told us about each alert group, so re-sends add nothing.

Alertmanager re-sends a group's whole state on every ``group_interval`` (and HA peers
send it twice). The table keeps, per ``groupKey``, the incident it feeds and the
fingerprints firing at the last post: the same set again is not news; a changed set
adds one note naming what started and what stopped firing.
"""

from __future__ import annotations

import json

import sqlite_utils

from opsconsole.store.migrations import Migrations
from opsconsole.timeutil import isoformat, utcnow

__all__ = ["load_group", "migrations", "save_group"]

migrations = Migrations("opsconsole.alertgroups")


@migrations(name="0001_alert_groups")
def _m0001(db: sqlite_utils.Database) -> None:
    db.execute(
        """
        CREATE TABLE alert_groups (
            group_key TEXT PRIMARY KEY,
            incident_id TEXT NOT NULL,
            firing TEXT NOT NULL DEFAULT '{}',
            updated_at TEXT NOT NULL
        )
        """
    )


def load_group(db: sqlite_utils.Database, group_key: str) -> tuple[str, dict[str, str]] | None:
    """(incident id, {fingerprint: description} firing at the last post), if seen."""
    row = db.execute(
        "SELECT incident_id, firing FROM alert_groups WHERE group_key = ?", (group_key,)
    ).fetchone()
    return (row[0], json.loads(row[1])) if row else None


def save_group(
    db: sqlite_utils.Database, group_key: str, incident_id: str, firing: dict[str, str]
) -> None:
    db.execute(
        "INSERT INTO alert_groups (group_key, incident_id, firing, updated_at) VALUES "
        "(?, ?, ?, ?) ON CONFLICT(group_key) DO UPDATE SET incident_id = excluded.incident_id, "
        "firing = excluded.firing, updated_at = excluded.updated_at",
        (group_key, incident_id, json.dumps(firing, sort_keys=True), isoformat(utcnow())),
    )
