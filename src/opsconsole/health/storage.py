"""Probe samples in the database, bounded: raw for a short window, per-minute roll-ups longer.

``probe_samples`` keeps every sample for ``raw_retention_minutes``; ``probe_rollups``
keeps one row per target and minute (count, failures, slow, latency sum/min/max) for
``rollup_retention_days``. Both are pruned as samples are written.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import sqlite_utils

from opsconsole.health.model import Outcome, Sample, Target, TargetHistory
from opsconsole.store import immediate
from opsconsole.store.migrations import Migrations
from opsconsole.timeutil import isoformat, parse_when

__all__ = [
    "MinuteStat",
    "RawSample",
    "history",
    "migrations",
    "prune",
    "recent_samples",
    "target_history",
    "write",
]

migrations = Migrations("opsconsole.health")


@migrations(name="0001_probe_samples")
def _m0001(db: sqlite_utils.Database) -> None:
    db.execute(
        """
        CREATE TABLE probe_samples (
            id INTEGER PRIMARY KEY,
            ts TEXT NOT NULL,
            target TEXT NOT NULL,
            region TEXT NOT NULL,
            service TEXT NOT NULL,
            endpoint TEXT NOT NULL,
            ok INTEGER NOT NULL,
            slow INTEGER NOT NULL DEFAULT 0,
            latency_ms REAL,
            status_code INTEGER,
            error TEXT,
            phases TEXT
        )
        """
    )
    db.execute("CREATE INDEX probe_samples_target_ts ON probe_samples(target, ts)")
    db.execute("CREATE INDEX probe_samples_ts ON probe_samples(ts)")
    db.execute(
        """
        CREATE TABLE probe_rollups (
            minute TEXT NOT NULL,
            target TEXT NOT NULL,
            region TEXT NOT NULL,
            service TEXT NOT NULL,
            endpoint TEXT NOT NULL,
            count INTEGER NOT NULL,
            failures INTEGER NOT NULL,
            slow INTEGER NOT NULL,
            latency_sum REAL NOT NULL DEFAULT 0,
            latency_count INTEGER NOT NULL DEFAULT 0,
            latency_min REAL,
            latency_max REAL,
            PRIMARY KEY (target, minute)
        )
        """
    )
    db.execute("CREATE INDEX probe_rollups_minute ON probe_rollups(minute)")


@migrations(name="0002_probe_samples_timed_out")
def _m0002(db: sqlite_utils.Database) -> None:
    # Timeouts count in percentiles as the timeout (model.TargetHistory); remember which.
    db.execute("ALTER TABLE probe_samples ADD COLUMN timed_out INTEGER NOT NULL DEFAULT 0")


def write(db: sqlite_utils.Database, rows: list[tuple[Target, Outcome, datetime]]) -> None:
    """Persist one sweep's outcomes (raw + roll-up) in one transaction."""
    raw = []
    roll = []
    for t, o, at in rows:
        ts = isoformat(at)
        raw.append(
            (
                ts,
                t.id,
                t.region,
                t.service,
                t.endpoint,
                int(o.ok),
                int(o.slow),
                o.latency_ms,
                o.status_code,
                o.error,
                json.dumps(o.phases) if o.phases is not None else None,
                int(o.timed_out),
            )
        )
        lat = o.latency_ms if o.ok else None
        roll.append(
            (
                ts[:16],
                t.id,
                t.region,
                t.service,
                t.endpoint,
                int(not o.ok),
                int(o.slow),
                lat or 0.0,
                1 if lat is not None else 0,
                lat,
                lat,
            )
        )
    with immediate(db):
        db.conn.executemany(
            "INSERT INTO probe_samples (ts, target, region, service, endpoint, ok, slow, "
            "latency_ms, status_code, error, phases, timed_out) VALUES (?,?,?,?,?,?,?,?,?,?,?,?)",
            raw,
        )
        db.conn.executemany(
            """
            INSERT INTO probe_rollups AS r (minute, target, region, service, endpoint, count,
                failures, slow, latency_sum, latency_count, latency_min, latency_max)
            VALUES (?, ?, ?, ?, ?, 1, ?, ?, ?, ?, ?, ?)
            ON CONFLICT(target, minute) DO UPDATE SET
                count = r.count + 1,
                failures = r.failures + excluded.failures,
                slow = r.slow + excluded.slow,
                latency_sum = r.latency_sum + excluded.latency_sum,
                latency_count = r.latency_count + excluded.latency_count,
                latency_min = CASE WHEN r.latency_min IS NULL
                    OR excluded.latency_min < r.latency_min
                    THEN excluded.latency_min ELSE r.latency_min END,
                latency_max = CASE WHEN r.latency_max IS NULL
                    OR excluded.latency_max > r.latency_max
                    THEN excluded.latency_max ELSE r.latency_max END
            """,
            roll,
        )


def prune(db: sqlite_utils.Database, *, now: datetime, raw_minutes: int, rollup_days: int) -> None:
    with immediate(db):
        db.execute(
            "DELETE FROM probe_samples WHERE ts < ?",
            [isoformat(now - timedelta(minutes=raw_minutes))],
        )
        db.execute(
            "DELETE FROM probe_rollups WHERE minute < ?",
            [isoformat(now - timedelta(days=rollup_days))[:16]],
        )


@dataclass(frozen=True)
class RawSample:
    at: datetime
    target: str
    outcome: Outcome


def recent_samples(
    db: sqlite_utils.Database, targets: list[str], since: datetime
) -> list[RawSample]:
    """Raw samples of these targets since ``since``, oldest first (to rebuild state)."""
    if not targets:
        return []
    marks = ",".join("?" * len(targets))
    cur = db.execute(
        f"SELECT ts, target, ok, slow, latency_ms, status_code, error, timed_out "
        f"FROM probe_samples WHERE ts >= ? AND target IN ({marks}) ORDER BY ts, id",
        [isoformat(since), *targets],
    )
    return [
        RawSample(
            parse_when(ts),
            target,
            Outcome(
                ok=bool(ok),
                slow=bool(slow),
                latency_ms=lat,
                status_code=code,
                error=err,
                timed_out=bool(tmo),
            ),
        )
        for ts, target, ok, slow, lat, code, err, tmo in cur.fetchall()
    ]


def target_history(
    db: sqlite_utils.Database, target: str, *, since: datetime, timeout_s: float
) -> TargetHistory:
    """One target's stored raw samples since ``since`` (at most ``raw_retention_minutes``
    back) with min/p50/p95/p99/max, timeouts counted as ``timeout_s`` — the drill-down of
    a process that does not run the monitor itself (the monitor's own window:
    ``Monitor.history``)."""
    from opsconsole.health.stats import summarize

    samples = tuple(
        Sample(
            r.at,
            r.outcome.ok,
            r.outcome.slow,
            r.outcome.latency_ms,
            r.outcome.error,
            r.outcome.timed_out,
            r.outcome.status_code,
        )
        for r in recent_samples(db, [target], since)
    )
    return summarize(target, samples, timeout_s)


@dataclass(frozen=True)
class MinuteStat:
    minute: str  # UTC "YYYY-MM-DDTHH:MM"
    count: int
    failures: int
    slow: int
    mean_ms: float | None
    max_ms: float | None

    @property
    def availability(self) -> float:
        return 100 * (self.count - self.failures) / self.count if self.count else 0.0


def history(
    db: sqlite_utils.Database,
    *,
    since: datetime,
    target: str | None = None,
    region: str | None = None,
    service: str | None = None,
) -> list[MinuteStat]:
    """Per-minute history (summed over matching targets), oldest first, for charts."""
    where = ["minute >= ?"]
    args: list[Any] = [isoformat(since)[:16]]
    for col, val in (("target", target), ("region", region), ("service", service)):
        if val is not None:
            where.append(f"{col} = ?")
            args.append(val)
    cur = db.execute(
        "SELECT minute, sum(count), sum(failures), sum(slow), sum(latency_sum), "
        "sum(latency_count), max(latency_max) FROM probe_rollups WHERE "
        + " AND ".join(where)
        + " GROUP BY minute ORDER BY minute",
        args,
    )
    return [
        MinuteStat(m, c, f, s, (ls / lc) if lc else None, mx)
        for m, c, f, s, ls, lc, mx in cur.fetchall()
    ]
