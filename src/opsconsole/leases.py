"""Leases: who holds something that must survive a dead process or another host.

A lease is one row in ``leases``: a name (``scheduler``, ``run:<id>``), a random token,
its holder (account, host, pid and the pid's start time) and acquired / heartbeat /
expiry timestamps read from the database's clock (so hosts with skewed clocks agree). It
is taken by compare-and-set inside :func:`opsconsole.store.immediate` (writers are
serialized on both engines), kept alive by a heartbeat at a fraction of its lifetime
(:class:`Keeper`, a thread with its own connection), and given up with :func:`release`.

A holder that stops heartbeating (killed, hung, its host gone) leaves a lease that is
*stale* once its expiry has passed, and anyone may then take it over. On the holder's own
host a lease whose process is gone (the pid no longer runs, or now names another process:
the start time tells) is stale at once - the fast path. A lease held on another host is
never judged by local pids. Every takeover is audited (``lease.taken_over``: by whom,
from whom, how stale and why).
"""

from __future__ import annotations

import contextlib
import os
import secrets
import socket
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from opsconsole.errors import ExitCode, OpsError
from opsconsole.store import immediate
from opsconsole.store.migrations import Migrations
from opsconsole.timeutil import isoformat, parse_when, utcnow

if TYPE_CHECKING:
    from opsconsole.audit import AuditLog
    from opsconsole.store import Database

__all__ = [
    "DEFAULT_SECONDS",
    "Holder",
    "Keeper",
    "Lease",
    "LeaseHeld",
    "acquire",
    "db_now",
    "from_row",
    "get",
    "heartbeat",
    "keeper",
    "local_host",
    "migrations",
    "release",
]

#: How long a lease lives without a heartbeat (settings ``lease_seconds``).
DEFAULT_SECONDS = 30.0
#: The heartbeat runs at this fraction of a lease's lifetime: two can be missed.
HEARTBEAT_FRACTION = 1 / 3

migrations = Migrations("opsconsole.leases")


@migrations(name="0001_leases")
def _m0001(db: Any) -> None:
    db.execute(
        """
        CREATE TABLE leases (
            name TEXT PRIMARY KEY,
            token TEXT NOT NULL,
            account TEXT NOT NULL,
            host TEXT NOT NULL,
            pid INTEGER,
            pid_start INTEGER,
            acquired_at TEXT NOT NULL,
            heartbeat_at TEXT NOT NULL,
            expires_at TEXT NOT NULL,
            seconds REAL NOT NULL
        )
        """
    )


def local_host() -> str:
    """The host name this process holds leases under: ``OPSCONSOLE_LEASE_HOST`` (for
    containers that share a host name, and for tests that play two hosts), else the
    host name. Pids are compared only between holders under the same name."""
    return os.environ.get("OPSCONSOLE_LEASE_HOST") or socket.gethostname()


@dataclass(frozen=True)
class Holder:
    """Who holds a lease: the account acting, and the process (host, pid, start time)."""

    account: str
    host: str
    pid: int | None
    pid_start: int | None

    @classmethod
    def me(cls, account: str, host: str | None = None) -> Holder:
        from opsconsole.runbooks.procs import proc_start

        pid = os.getpid()
        return cls(account, host or local_host(), pid, proc_start(pid))

    def same_process(self, other: Holder) -> bool:
        """The same process (whatever account it acted as)."""
        return (self.host, self.pid, self.pid_start) == (other.host, other.pid, other.pid_start)

    def describe(self) -> str:
        return f"{self.account} (pid {self.pid} on {self.host})"


@dataclass(frozen=True)
class Lease:
    name: str
    token: str
    holder: Holder
    acquired_at: datetime
    heartbeat_at: datetime
    expires_at: datetime
    seconds: float

    def stale_reason(self, now: datetime, *, host: str | None = None) -> str | None:
        """None while the lease is live; otherwise why it is stale.

        ``host`` is the judging process's host: only there do pids mean anything."""
        here = host or local_host()
        if self.holder.host == here and self.holder.pid:
            from opsconsole.runbooks.procs import alive

            if not alive(self.holder.pid, self.holder.pid_start):
                return "holder process is gone"
        if now >= self.expires_at:
            return f"no heartbeat since {isoformat(self.heartbeat_at)} (expired)"
        return None

    def describe(self) -> str:
        return (
            f"{self.holder.describe()} since {isoformat(self.acquired_at)} "
            f"(last heartbeat {isoformat(self.heartbeat_at)})"
        )


class LeaseHeld(OpsError):
    """The lease is held by a live holder."""

    exit_code = ExitCode.CONFLICT

    def __init__(self, lease: Lease, what: str | None = None) -> None:
        super().__init__(f"{what or lease.name} is held by {lease.describe()}")
        self.lease = lease


def db_now(db: Database) -> datetime:
    """The database's clock (PostgreSQL), or this host's (SQLite: one host anyway)."""
    if db.engine == "postgresql":
        value = db.execute("SELECT clock_timestamp()").fetchone()[0]
        moment = value if isinstance(value, datetime) else parse_when(str(value))
        return moment.astimezone(UTC)
    return utcnow()


_COLUMNS = (
    "name, token, account, host, pid, pid_start, acquired_at, heartbeat_at, expires_at, seconds"
)


def from_row(row: Any) -> Lease:
    """A lease from the row of its columns (in ``leases`` order, see the migration)."""
    return Lease(
        row[0],
        row[1],
        Holder(row[2], row[3], row[4], row[5]),
        parse_when(row[6]),
        parse_when(row[7]),
        parse_when(row[8]),
        float(row[9]),
    )


def get(db: Database, name: str) -> Lease | None:
    row = db.execute(f"SELECT {_COLUMNS} FROM leases WHERE name = ?", [name]).fetchone()
    return from_row(row) if row else None


@dataclass(frozen=True)
class Taken:
    """A lease just acquired, and the stale lease it replaced (if any)."""

    lease: Lease
    previous: Lease | None = None
    reason: str | None = None


def acquire(
    db: Database,
    audit: AuditLog,
    name: str,
    holder: Holder,
    *,
    seconds: float = DEFAULT_SECONDS,
    mine: Callable[[Lease], bool] | None = None,
    now: datetime | None = None,
    what: str | None = None,
) -> Taken:
    """Take ``name`` for ``holder`` (compare-and-set in a write transaction; joins the
    caller's). Raises :class:`LeaseHeld` while another holder's lease is live.

    ``mine``: the caller knows the current lease is its own (a re-claim in the same
    process): it is replaced without a staleness check. ``now`` (tests): judge at this
    moment instead of the database clock. Taking over a stale lease records
    ``lease.taken_over`` in the same transaction."""
    with immediate(db):
        moment = now or db_now(db)
        held = get(db, name)
        reason = None
        if held is not None and not (mine is not None and mine(held)):
            reason = held.stale_reason(moment, host=holder.host)
            if reason is None:
                raise LeaseHeld(held, what)
        lease = Lease(
            name,
            secrets.token_hex(16),
            holder,
            moment,
            moment,
            moment + timedelta(seconds=seconds),
            float(seconds),
        )
        db.execute("DELETE FROM leases WHERE name = ?", [name])
        db.execute(
            f"INSERT INTO leases ({_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            [
                name,
                lease.token,
                holder.account,
                holder.host,
                holder.pid,
                holder.pid_start,
                isoformat(moment),
                isoformat(moment),
                isoformat(lease.expires_at),
                seconds,
            ],
        )
        if held is not None and reason is not None:
            audit.record(
                "lease.taken_over",
                name,
                {
                    "reason": reason,
                    "stale_for_seconds": round(
                        max(0.0, (moment - held.expires_at).total_seconds()), 3
                    ),
                    "silent_for_seconds": round((moment - held.heartbeat_at).total_seconds(), 3),
                    "from": _holder_details(held),
                    "to": _holder_details(lease),
                },
            )
    return Taken(lease, held if reason is not None else None, reason)


def _holder_details(lease: Lease) -> dict[str, Any]:
    return {
        "account": lease.holder.account,
        "host": lease.holder.host,
        "pid": lease.holder.pid,
        "token": lease.token[:8],
        "acquired_at": isoformat(lease.acquired_at),
        "heartbeat_at": isoformat(lease.heartbeat_at),
        "expires_at": isoformat(lease.expires_at),
    }


def heartbeat(db: Database, name: str, token: str, *, now: datetime | None = None) -> bool:
    """Push the expiry of our lease forward; False if it is no longer ours (taken over,
    released)."""
    with immediate(db):
        moment = now or db_now(db)
        row = db.execute(
            "SELECT seconds FROM leases WHERE name = ? AND token = ?", [name, token]
        ).fetchone()
        if row is None:
            return False
        db.execute(
            "UPDATE leases SET heartbeat_at = ?, expires_at = ? WHERE name = ? AND token = ?",
            [
                isoformat(moment),
                isoformat(moment + timedelta(seconds=float(row[0]))),
                name,
                token,
            ],
        )
    return True


def release(db: Database, name: str, token: str) -> bool:
    """Give up our lease (nothing happens if it is no longer ours)."""
    with immediate(db):
        cur = db.execute("DELETE FROM leases WHERE name = ? AND token = ?", [name, token])
    return cur.rowcount == 1


@dataclass
class _Kept:
    lease: Lease
    interval: float
    on_lost: Callable[[Lease], None] | None
    due: float = 0.0


@dataclass
class Keeper:
    """Heartbeats this process's leases on one database, from a daemon thread with its
    own connection (a connection is never shared with the thread doing the work).

    A heartbeat that finds the lease no longer ours drops it and calls its ``on_lost``."""

    location: Any
    _kept: dict[str, _Kept] = field(default_factory=dict)
    _wake: threading.Condition = field(default_factory=threading.Condition)
    _thread: threading.Thread | None = None
    errors: list[str] = field(default_factory=list)

    def keep(
        self,
        lease: Lease,
        *,
        interval: float | None = None,
        on_lost: Callable[[Lease], None] | None = None,
    ) -> None:
        import time

        every = lease.seconds * HEARTBEAT_FRACTION
        if interval is not None:
            every = min(interval, every)
        with self._wake:
            self._kept[lease.name] = _Kept(lease, every, on_lost, time.monotonic() + every)
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(
                    target=self._run, name=f"lease-keeper {self.location}", daemon=True
                )
                self._thread.start()
            self._wake.notify()

    def drop(self, name: str, token: str | None = None) -> None:
        with self._wake:
            kept = self._kept.get(name)
            if kept is not None and (token is None or kept.lease.token == token):
                del self._kept[name]

    def holds(self, name: str) -> Lease | None:
        with self._wake:
            kept = self._kept.get(name)
            return kept.lease if kept else None

    def holds_any(self) -> bool:
        with self._wake:
            return bool(self._kept)

    def _run(self) -> None:
        import time

        from opsconsole.store import open_db

        db = None
        while True:
            if db is not None and not self.holds_any():
                with contextlib.suppress(Exception):  # idle: no connection held open
                    db.close()
                db = None
            with self._wake:
                while not self._kept:
                    self._wake.wait()
                now = time.monotonic()
                due = [k for k in self._kept.values() if k.due <= now]
                if not due:
                    self._wake.wait(min(k.due for k in self._kept.values()) - now)
                    continue
            try:
                if db is None:
                    db = open_db(self.location, migrate=False)
                for kept in due:
                    kept.due = time.monotonic() + kept.interval
                    if not heartbeat(db, kept.lease.name, kept.lease.token):
                        self.drop(kept.lease.name, kept.lease.token)
                        if kept.on_lost is not None:
                            kept.on_lost(kept.lease)
            except Exception as exc:  # the database is down: try again at the next beat
                self.errors.append(f"{type(exc).__name__}: {exc}")
                del self.errors[:-10]
                if db is not None:
                    with contextlib.suppress(Exception):  # a broken connection
                        db.close()
                db = None
                time.sleep(min(k.interval for k in due))


_KEEPERS: dict[str, Keeper] = {}
_KEEPERS_LOCK = threading.Lock()


def keeper(db: Database) -> Keeper:
    """The process's keeper for ``db``'s database (one thread and connection per database)."""
    key = str(db.location)
    with _KEEPERS_LOCK:
        if key not in _KEEPERS:
            _KEEPERS[key] = Keeper(db.location)
        return _KEEPERS[key]
