"""One scheduler per database: a lock row naming pid, host and since.

The row is taken in a write transaction. A second scheduler refuses, naming the
holder. A holder that is gone is taken over: on this host, when its pid no longer runs
(or now belongs to another process - the process start time is kept to tell); on
another host, when its heartbeat is older than ``stale_after`` seconds.
"""

from __future__ import annotations

import os
import secrets
import socket
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

import sqlite_utils

from opsconsole.errors import ExitCode, OpsError
from opsconsole.store import immediate
from opsconsole.timeutil import isoformat, parse_when, utcnow

if TYPE_CHECKING:
    from opsconsole.audit import AuditLog

__all__ = ["LockHolder", "SchedulerLock", "SchedulerLocked", "pid_alive"]


class SchedulerLocked(OpsError):
    exit_code = ExitCode.CONFLICT


@dataclass(frozen=True)
class LockHolder:
    pid: int
    host: str
    since: datetime
    heartbeat: datetime
    proc_started: float | None
    token: str

    def describe(self) -> str:
        return (
            f"pid {self.pid} on {self.host} since {isoformat(self.since)} "
            f"(last heartbeat {isoformat(self.heartbeat)})"
        )


def _proc_started(pid: int) -> float | None:
    try:
        import psutil

        return float(psutil.Process(pid).create_time())
    except Exception:
        return None


def pid_alive(pid: int, proc_started: float | None = None) -> bool:
    """Is ``pid`` running here, and (if known) the same process that took the lock?"""
    try:
        import psutil
    except ImportError:  # pragma: no cover - psutil is a dependency
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return False
        except PermissionError:
            return True
        return True
    try:
        proc = psutil.Process(pid)
        if proc.status() == psutil.STATUS_ZOMBIE:
            return False
        started = proc.create_time()
    except (psutil.NoSuchProcess, psutil.ZombieProcess):
        return False
    except psutil.AccessDenied:
        return True
    return proc_started is None or abs(started - proc_started) < 1.0


class SchedulerLock:
    def __init__(self, db: sqlite_utils.Database, *, stale_after: float = 60.0) -> None:
        self.db = db
        self.stale_after = stale_after
        self.token = secrets.token_hex(8)
        self.pid = os.getpid()
        self.host = socket.gethostname()
        self.held = False

    def holder(self) -> LockHolder | None:
        row = self.db.execute(
            "SELECT pid, host, since, heartbeat, proc_started, token FROM scheduler_lock "
            "WHERE id = 1"
        ).fetchone()
        if row is None:
            return None
        return LockHolder(row[0], row[1], parse_when(row[2]), parse_when(row[3]), row[4], row[5])

    def is_dead(self, holder: LockHolder, now: datetime | None = None) -> bool:
        now = now or utcnow()
        if holder.host == self.host:
            return not pid_alive(holder.pid, holder.proc_started)
        return now - holder.heartbeat > timedelta(seconds=self.stale_after)

    def acquire(
        self, audit: AuditLog | None = None, details: dict[str, Any] | None = None
    ) -> LockHolder | None:
        """Take the lock; return the dead holder it took over from, if any.

        Raises :class:`SchedulerLocked` naming the live holder. With ``audit``, the
        ``scheduler.start`` event commits together with the lock row (fail closed).
        """
        now = utcnow()
        with immediate(self.db):
            holder = self.holder()
            if holder is not None and holder.token != self.token and not self.is_dead(holder, now):
                raise SchedulerLocked(
                    f"another scheduler is running on this database: {holder.describe()}"
                )
            self.db.execute(
                "INSERT INTO scheduler_lock (id, token, pid, host, proc_started, since, "
                "heartbeat) VALUES (1, ?, ?, ?, ?, ?, ?) ON CONFLICT (id) DO UPDATE SET "
                "token = excluded.token, pid = excluded.pid, host = excluded.host, "
                "proc_started = excluded.proc_started, since = excluded.since, "
                "heartbeat = excluded.heartbeat",
                (
                    self.token,
                    self.pid,
                    self.host,
                    _proc_started(self.pid),
                    isoformat(now),
                    isoformat(now),
                ),
            )
            previous = holder if holder is not None and holder.token != self.token else None
            if audit is not None:
                info = {"pid": self.pid, "host": self.host, **(details or {})}
                if previous is not None:
                    info["took_over_from"] = previous.describe()
                audit.record("scheduler.start", f"pid {self.pid}@{self.host}", info)
        self.held = True
        return previous

    def heartbeat(self) -> bool:
        """Refresh the heartbeat; False if the lock is no longer ours (taken over)."""
        with immediate(self.db):
            cur = self.db.execute(
                "UPDATE scheduler_lock SET heartbeat = ? WHERE id = 1 AND token = ?",
                (isoformat(utcnow()), self.token),
            )
        self.held = cur.rowcount == 1
        return self.held

    def release(self) -> None:
        with immediate(self.db):
            self.db.execute("DELETE FROM scheduler_lock WHERE id = 1 AND token = ?", [self.token])
        self.held = False
