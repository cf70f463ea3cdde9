"""The demo's per-region ledgers: continuous writes, asynchronous replication, promotion.

Each region has a primary copy ``ledger/<region>.db`` and a standby copy
``ledger/standby/<region>.db`` (held by the region's standby) that trails it by
``replication_lag_s``. Promoting the standby makes the standby copy take the writes; the
rows it had not yet received are the data a real failover would lose (``lag_seconds``
is the recovery point). Demoting copies the standby copy back over the primary, the way
a failed-back primary is rebuilt from the side that kept serving.

A connection is opened per tick, not held, so a backup-restore runbook may replace a
ledger file while the demo runs. The journal mode is the default rollback journal for the
same reason: a lone ``.db`` file is a complete copy.
"""

from __future__ import annotations

import random
import sqlite3
import threading
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

__all__ = ["LedgerWriter"]

SCHEMA = (
    "CREATE TABLE IF NOT EXISTS entries (id INTEGER PRIMARY KEY, ts TEXT NOT NULL, "
    "account TEXT NOT NULL, amount_cents INTEGER NOT NULL)"
)


def _now() -> datetime:
    return datetime.now(UTC)


def _connect(path: Path) -> sqlite3.Connection:
    conn = sqlite3.connect(str(path), timeout=5, isolation_level=None)
    conn.execute("PRAGMA busy_timeout = 5000")
    conn.execute(SCHEMA)
    return conn


def _last(conn: sqlite3.Connection) -> tuple[int, str | None]:
    row = conn.execute("SELECT id, ts FROM entries ORDER BY id DESC LIMIT 1").fetchone()
    return (row[0], row[1]) if row else (0, None)


class LedgerWriter:
    """A thread that writes a few entries per second into every region's active ledger."""

    def __init__(
        self,
        ledger_dir: Path,
        regions: list[str],
        primary_of: Callable[[str], str],
        *,
        writes_per_second: float = 4.0,
        replication_lag_s: float = 2.0,
    ) -> None:
        self.dir = ledger_dir
        self.regions = regions
        self.primary_of = primary_of
        self.period = 1.0 / writes_per_second
        self.lag = timedelta(seconds=replication_lag_s)
        self._stop = threading.Event()
        self._lock = threading.Lock()  # promotion/demotion vs the write tick
        self._thread: threading.Thread | None = None
        self._rng = random.Random()
        self.errors: list[str] = []
        (self.dir / "standby").mkdir(parents=True, exist_ok=True)
        for r in regions:
            for p in (self.primary_path(r), self.standby_path(r)):
                _connect(p).close()

    def primary_path(self, region: str) -> Path:
        return self.dir / f"{region}.db"

    def standby_path(self, region: str) -> Path:
        return self.dir / "standby" / f"{region}.db"

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="demo-ledger", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=10)

    def _run(self) -> None:
        while not self._stop.wait(self.period):
            for region in self.regions:
                try:
                    with self._lock:
                        self._tick(region)
                except (sqlite3.Error, OSError) as exc:
                    # A restore may be replacing the file right now; try again next tick.
                    self.errors = [*self.errors[-20:], f"{region}: {exc}"]

    def _tick(self, region: str) -> None:
        promoted = self.primary_of(region) != region
        target = self.standby_path(region) if promoted else self.primary_path(region)
        conn = _connect(target)
        try:
            conn.execute(
                "INSERT INTO entries (ts, account, amount_cents) VALUES (?, ?, ?)",
                (
                    _now().isoformat(timespec="microseconds"),
                    f"acct-{self._rng.randrange(1000, 9999)}",
                    self._rng.randrange(-50_000, 90_000),
                ),
            )
        finally:
            conn.close()
        if not promoted:
            self._replicate(region)

    def _replicate(self, region: str) -> None:
        """Copy primary rows older than the lag to the standby copy."""
        src = _connect(self.primary_path(region))
        dst = _connect(self.standby_path(region))
        try:
            last_id, _ = _last(dst)
            cutoff = (_now() - self.lag).isoformat(timespec="microseconds")
            rows = src.execute(
                "SELECT id, ts, account, amount_cents FROM entries WHERE id > ? AND ts <= ? "
                "ORDER BY id",
                (last_id, cutoff),
            ).fetchall()
            if rows:
                dst.execute("BEGIN")
                dst.executemany("INSERT OR REPLACE INTO entries VALUES (?, ?, ?, ?)", rows)
                dst.execute("COMMIT")
        finally:
            src.close()
            dst.close()

    def lag_seconds(self, region: str) -> float:
        """How far the standby copy trails the primary copy (0 when it is current)."""
        src = _connect(self.primary_path(region))
        dst = _connect(self.standby_path(region))
        try:
            _, p_ts = _last(src)
            _, s_ts = _last(dst)
        finally:
            src.close()
            dst.close()
        if p_ts is None or s_ts is None:
            return 0.0
        delta = datetime.fromisoformat(p_ts) - datetime.fromisoformat(s_ts)
        return round(max(delta.total_seconds(), 0.0), 3)

    def promote(self, region: str, switch: Callable[[], None]) -> float:
        """Freeze replication, call ``switch`` (which repoints the writes), and return
        the recovery point: seconds of writes the standby copy had not received."""
        with self._lock:
            lag = self.lag_seconds(region)
            switch()
            return lag

    def demote(self, region: str, switch: Callable[[], None]) -> None:
        """Rebuild the primary copy from the standby copy (which kept the writes)."""
        with self._lock:
            switch()
            src = sqlite3.connect(str(self.standby_path(region)), timeout=5)
            dst = sqlite3.connect(str(self.primary_path(region)), timeout=5)
            try:
                src.backup(dst)
            finally:
                src.close()
                dst.close()
