"""One scheduler per database: the ``scheduler`` lease (see :mod:`opsconsole.leases`).

A second scheduler - on this host or another - refuses, naming the holder. The holder
heartbeats from a thread; when it stops (killed, hung, its host gone) the lease is stale
once it expires and the next scheduler takes it over (audited ``lease.taken_over``). On
the holder's own host a holder whose process is gone is taken over at once.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from opsconsole import leases
from opsconsole.errors import ExitCode, OpsError
from opsconsole.leases import Holder, Lease, LeaseHeld
from opsconsole.store import immediate

if TYPE_CHECKING:
    from opsconsole.audit import AuditLog
    from opsconsole.store import Database

__all__ = ["LEASE", "SchedulerLock", "SchedulerLocked"]

LEASE = "scheduler"


class SchedulerLocked(OpsError):
    exit_code = ExitCode.CONFLICT


class SchedulerLock:
    """The scheduler's lease on ``db``.

    ``seconds``: how long the lease outlives the last heartbeat (settings
    ``lease_seconds``); ``host``: the host name the lease is held under (``--lock-host``;
    the real host name by default: only there are pids compared)."""

    def __init__(
        self,
        db: Database,
        *,
        seconds: float = leases.DEFAULT_SECONDS,
        host: str | None = None,
    ) -> None:
        self.db = db
        self.seconds = seconds
        self.host = host
        self.lease: Lease | None = None

    @property
    def held(self) -> bool:
        return self.lease is not None

    def holder(self) -> Lease | None:
        return leases.get(self.db, LEASE)

    def acquire(
        self,
        audit: AuditLog,
        details: dict[str, Any] | None = None,
        *,
        heartbeat_every: float | None = None,
        on_lost: Callable[[Lease], None] | None = None,
    ) -> Lease | None:
        """Take the lease and start heartbeating it; return the stale lease it took over.

        Raises :class:`SchedulerLocked` naming the live holder. The ``scheduler.start``
        event commits together with the lease (fail closed)."""
        holder = Holder.me(audit.actor, self.host)
        try:
            with immediate(self.db):
                taken = leases.acquire(
                    self.db, audit, LEASE, holder, seconds=self.seconds, what="the scheduler lock"
                )
                info: dict[str, Any] = {"pid": holder.pid, "host": holder.host, **(details or {})}
                if taken.previous is not None:
                    info["took_over_from"] = taken.previous.describe()
                    info["takeover_reason"] = taken.reason
                audit.record("scheduler.start", f"pid {holder.pid}@{holder.host}", info)
        except LeaseHeld as exc:
            raise SchedulerLocked(
                f"another scheduler is running on this database: {exc.lease.describe()}; "
                f"it is taken over once its holder stops heartbeating for "
                f"{exc.lease.seconds:g} s"
            ) from None
        self.lease = taken.lease
        leases.keeper(self.db).keep(taken.lease, interval=heartbeat_every, on_lost=on_lost)
        return taken.previous

    def heartbeat(self) -> bool:
        """Refresh the lease now; False if it is no longer ours (taken over)."""
        if self.lease is None:
            return False
        if not leases.heartbeat(self.db, LEASE, self.lease.token):
            self.lease = None
        return self.lease is not None

    def release(self) -> None:
        if self.lease is None:
            return
        leases.keeper(self.db).drop(LEASE, self.lease.token)
        leases.release(self.db, LEASE, self.lease.token)
        self.lease = None
