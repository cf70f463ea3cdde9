"""Run locks: one run at a time per key (e.g. ``failover:sa-east-1``).

A lock belongs to its holder *run* until the run ends: through a durable wait (an
approval) it is held without any process. While the run executes, the process doing it
holds the run's lease (``run:<id>``, see :mod:`opsconsole.leases`), so whether a lock is
live is decided by that lease, on any host: a lock whose run is not waiting and whose
lease is stale or gone (killed, crashed, its host lost) - and, on the lease's host, no
process its steps started still runs - is *stale*. It is reported as such, the holder
run takes it back on resume, and ``opsconsole runbook unlock KEY`` releases it (audited).
"""

from __future__ import annotations

import os
import socket
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

import sqlite_utils

from opsconsole import leases
from opsconsole.errors import ExitCode, NotFoundError, OpsError
from opsconsole.leases import Lease
from opsconsole.runbooks import procs
from opsconsole.store import immediate
from opsconsole.timeutil import isoformat, utcnow

if TYPE_CHECKING:
    from opsconsole.audit import AuditLog

__all__ = [
    "LockHeld",
    "LockInfo",
    "acquire_lock",
    "get_lock",
    "list_locks",
    "normalize_key",
    "release_lock",
]


def normalize_key(key: str) -> str:
    """One spelling per lock: Unicode NFKC, case-folded, whitespace collapsed and trimmed
    (``db3``, ``DB3`` and ``"db3 "`` are the same lock)."""
    import unicodedata

    return " ".join(unicodedata.normalize("NFKC", key).casefold().split())


@dataclass
class LockInfo:
    key: str
    run_id: str
    actor: str
    pid: int | None
    hostname: str | None
    acquired_at: str
    pid_start: int | None = None
    holder_status: str | None = None
    lease: Lease | None = None  # of the holder run, while a process executes it
    judged_at: datetime | None = None  # the database's clock when this was read

    @property
    def lease_live(self) -> bool:
        return (
            self.lease is not None and self.lease.stale_reason(self.judged_at or utcnow()) is None
        )

    @property
    def stale(self) -> bool:
        """The holder run is not waiting, no live process executes it, and (on the host
        where it ran) no process its steps started is left."""
        if self.holder_status == "waiting_approval":
            return False  # a durable wait holds the lock without a process
        if self.lease_live:
            return False
        host = self.lease.holder.host if self.lease else self.hostname
        if host == leases.local_host():
            return not procs.find_by_token(f"{self.run_id}/")
        return True  # gone there: its host's guard ends its step processes with it

    def describe(self) -> str:
        if self.lease is not None:
            where = f"pid {self.lease.holder.pid} on {self.lease.holder.host}"
        else:
            where = f"pid {self.pid} on {self.hostname}"
        text = f"run {self.run_id} by {self.actor} ({where}, since {self.acquired_at})"
        if self.stale:
            text += (
                f"; its process is gone (stale lock): `opsconsole runbook resume {self.run_id}`"
                f" or `opsconsole runbook unlock {self.key}`"
            )
        return text


class LockHeld(OpsError):
    exit_code = ExitCode.CONFLICT

    def __init__(self, lock: LockInfo) -> None:
        super().__init__(f"lock {lock.key!r} is held by {lock.describe()}")
        self.lock = lock


def pid_alive(pid: int) -> bool:
    """``pid`` exists and is not a zombie."""
    return procs.alive(pid)


_SELECT = (
    "SELECT l.key, l.run_id, l.actor, l.pid, l.hostname, l.acquired_at, l.pid_start, "
    "r.status, s.name, s.token, s.account, s.host, s.pid, s.pid_start, s.acquired_at, "
    "s.heartbeat_at, s.expires_at, s.seconds FROM run_locks l "
    "LEFT JOIN runs r ON r.id = l.run_id LEFT JOIN leases s ON s.name = 'run:' || l.run_id"
)


def _lock(row: Any, now: datetime) -> LockInfo:
    lease = leases.from_row(row[8:]) if row[8] is not None else None
    return LockInfo(*row[:8], lease=lease, judged_at=now)


def get_lock(db: sqlite_utils.Database, key: str) -> LockInfo | None:
    row = db.execute(f"{_SELECT} WHERE l.key = ?", [normalize_key(key)]).fetchone()
    return _lock(row, leases.db_now(db)) if row else None


def list_locks(db: sqlite_utils.Database) -> list[LockInfo]:
    now = leases.db_now(db)
    return [_lock(r, now) for r in db.execute(f"{_SELECT} ORDER BY l.key").fetchall()]


def acquire_lock(db: sqlite_utils.Database, audit: AuditLog, key: str, run_id: str) -> None:
    """Take ``key`` for ``run_id``; raise :class:`LockHeld`.

    Re-entrant only for the same run *in a process that may own it*: the run's lease
    must be this process's or not live (the run itself is claimed by compare-and-set
    before its lock is taken, see ``state.claim_run``)."""
    key = normalize_key(key)
    me = os.getpid()
    with immediate(db):
        held = get_lock(db, key)
        if held is not None and (
            held.run_id != run_id
            or (
                held.lease_live
                and held.lease is not None
                and leases.keeper(db).holds(held.lease.name) != held.lease
            )
        ):
            raise LockHeld(held)
        db.execute(
            "INSERT INTO run_locks (key, run_id, actor, pid, hostname, acquired_at, pid_start) "
            "VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT(key) DO UPDATE SET pid = excluded.pid, "
            "hostname = excluded.hostname, pid_start = excluded.pid_start",
            [
                key,
                run_id,
                audit.actor,
                me,
                socket.gethostname(),
                isoformat(utcnow()),
                procs.proc_start(me),
            ],
        )
        db.execute("UPDATE runs SET lock_key = ? WHERE id = ?", [key, run_id])
        audit.record("runbook.lock.acquired", key, {"run_id": run_id})


def release_lock(
    db: sqlite_utils.Database,
    audit: AuditLog,
    key: str,
    *,
    run_id: str | None = None,
    force: bool = False,
    config: Any = None,
) -> LockInfo:
    """Release ``key``. Without ``run_id`` (an operator's unlock) the holder must be
    stale or finished unless ``force``."""
    key = normalize_key(key)
    if run_id is None:  # an operator's unlock: someone else's lock needs the permission
        from opsconsole.runbooks.authz import check_unlock

        check_unlock(db, audit, key, config)
    with immediate(db):
        held = get_lock(db, key)
        if held is None:
            raise NotFoundError(f"no lock {key!r}")
        if run_id is not None and held.run_id != run_id:
            return held
        if run_id is None and not force:
            live = held.holder_status in ("running", "waiting_approval") and not held.stale
            if live:
                raise OpsError(
                    f"lock {key!r} is held by a live {held.describe()}; use --force to break it",
                    exit_code=ExitCode.CONFLICT,
                )
        db.execute("DELETE FROM run_locks WHERE key = ?", [key])
        audit.record(
            "runbook.lock.released",
            key,
            {
                "run_id": held.run_id,
                "holder": held.actor,
                "stale": held.stale,
                "by_operator": run_id is None,
                "forced": force,
            },
        )
    return held
