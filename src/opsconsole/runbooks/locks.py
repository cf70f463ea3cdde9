"""Run locks: one run at a time per key (e.g. ``failover:sa-east-1``).

A lock names its holder run, actor, pid and host. A lock whose holder process is gone
(killed, crashed) is *stale*: it is reported as such, the holder run can take it back
on resume, and ``opsconsole runbook unlock KEY`` releases it (audited).
"""

from __future__ import annotations

import os
import socket
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import sqlite_utils

from opsconsole.errors import ExitCode, NotFoundError, OpsError
from opsconsole.store import immediate
from opsconsole.timeutil import isoformat, utcnow

if TYPE_CHECKING:
    from opsconsole.audit import AuditLog

__all__ = ["LockHeld", "LockInfo", "acquire_lock", "get_lock", "list_locks", "release_lock"]


@dataclass
class LockInfo:
    key: str
    run_id: str
    actor: str
    pid: int | None
    hostname: str | None
    acquired_at: str
    holder_status: str | None = None

    @property
    def stale(self) -> bool:
        """The holder process is gone (only decidable on the same host)."""
        if self.holder_status == "waiting_approval":
            return False  # a durable wait holds the lock without a process
        if self.hostname != socket.gethostname() or self.pid is None:
            return False
        return not pid_alive(self.pid)

    def describe(self) -> str:
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
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # A zombie is dead for our purposes.
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii") as fh:
            return fh.read().rsplit(")", 1)[-1].split()[0] != "Z"
    except OSError:
        return True


def get_lock(db: sqlite_utils.Database, key: str) -> LockInfo | None:
    row = db.execute(
        "SELECT l.key, l.run_id, l.actor, l.pid, l.hostname, l.acquired_at, r.status "
        "FROM run_locks l LEFT JOIN runs r ON r.id = l.run_id WHERE l.key = ?",
        [key],
    ).fetchone()
    return LockInfo(*row) if row else None


def list_locks(db: sqlite_utils.Database) -> list[LockInfo]:
    rows = db.execute(
        "SELECT l.key, l.run_id, l.actor, l.pid, l.hostname, l.acquired_at, r.status "
        "FROM run_locks l LEFT JOIN runs r ON r.id = l.run_id ORDER BY l.key"
    ).fetchall()
    return [LockInfo(*r) for r in rows]


def acquire_lock(db: sqlite_utils.Database, audit: AuditLog, key: str, run_id: str) -> None:
    """Take ``key`` for ``run_id`` (re-entrant for the same run); raise :class:`LockHeld`."""
    with immediate(db):
        held = get_lock(db, key)
        if held is not None and held.run_id != run_id:
            raise LockHeld(held)
        db.execute(
            "INSERT INTO run_locks (key, run_id, actor, pid, hostname, acquired_at) "
            "VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT(key) DO UPDATE SET pid = excluded.pid, "
            "hostname = excluded.hostname",
            [key, run_id, audit.actor, os.getpid(), socket.gethostname(), isoformat(utcnow())],
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
