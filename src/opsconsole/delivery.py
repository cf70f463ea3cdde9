"""The outbox worker: sends pending messages, retries with backoff, marks sent or dead.

Each message goes to every channel whose ``events`` patterns match it. A channel that
took the message is recorded at once (``delivered``), so a retry only goes to the
channels that failed: retries never send twice to the same channel. Retries use
``stamina`` (exponential backoff with jitter, ``notifications.max_attempts`` tries in
all, counted in the table so a restarted worker continues the count); a message still
failing after the last try is ``dead`` and stays in the table until ``notify retry``.

Several workers (two ``serve`` processes, ``notify retry`` from a shell) may run at once:
a message is claimed with a lease (compare-and-set on ``claimed_until``) before it is
sent, so only one of them sends it.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import socket
from datetime import timedelta
from typing import TYPE_CHECKING, Any

from opsconsole.notify import DeliveryFailed, channel_secret, channel_wants, send
from opsconsole.outbox import Message, get
from opsconsole.store import immediate
from opsconsole.timeutil import isoformat, utcnow

if TYPE_CHECKING:
    import sqlite_utils

    from opsconsole.audit import AuditLog
    from opsconsole.config import Channel, Config

__all__ = ["Deliverer"]

LEASE_SECONDS = 300


class Deliverer:
    """Delivers outbox messages with one database connection of its own."""

    def __init__(self, db: sqlite_utils.Database, audit: AuditLog, config: Config) -> None:
        self.db = db
        self.audit = audit
        self.config = config
        self.settings = config.settings.notifications
        self.worker = f"{socket.gethostname()}:{os.getpid()}:{id(self):x}"
        self._lock = asyncio.Lock()
        self._secrets: dict[str, str | None] = {
            c.name: channel_secret(c, config) for c in self.settings.channels
        }
        self._tasks: set[asyncio.Task[str]] = set()
        self.wake = asyncio.Event()

    async def _db(self, fn: Any, *args: Any) -> Any:
        async with self._lock:
            return await asyncio.to_thread(fn, *args)

    # -- store operations (run in a thread) ------------------------------------------------

    def _due_ids(self) -> list[int]:
        now = isoformat(utcnow())
        rows = self.db.execute(
            "SELECT id FROM outbox WHERE status = 'pending' AND next_attempt_at <= ? "
            "AND (claimed_until IS NULL OR claimed_until < ?) ORDER BY id LIMIT 100",
            (now, now),
        ).fetchall()
        return [r[0] for r in rows]

    def _claim(self, message_id: int) -> Message | None:
        now = utcnow()
        with immediate(self.db):
            cur = self.db.execute(
                "UPDATE outbox SET claimed_by = ?, claimed_until = ? WHERE id = ? AND "
                "status = 'pending' AND (claimed_until IS NULL OR claimed_until < ? "
                "OR claimed_by = ?)",
                (
                    self.worker,
                    isoformat(now + timedelta(seconds=LEASE_SECONDS)),
                    message_id,
                    isoformat(now),
                    self.worker,
                ),
            )
            if cur.rowcount != 1:
                return None
        return get(self.db, message_id)

    def _mark_channel(self, message_id: int, channel: str) -> None:
        with immediate(self.db):
            msg = get(self.db, message_id)
            done = [*msg.delivered, channel]
            self.db.execute(
                "UPDATE outbox SET delivered = ? WHERE id = ?", (json.dumps(done), message_id)
            )

    def _finish(self, message_id: int, status: str, error: str | None = None) -> None:
        with immediate(self.db):
            self.db.execute(
                "UPDATE outbox SET status = ?, sent_at = ?, last_error = CASE WHEN ? = 'sent' "
                "THEN NULL ELSE COALESCE(?, last_error) END, claimed_by = NULL, "
                "claimed_until = NULL WHERE id = ?",
                (
                    status,
                    isoformat(utcnow()) if status == "sent" else None,
                    status,
                    error,
                    message_id,
                ),
            )
            if status == "dead":
                msg = get(self.db, message_id)
                self.audit.record(
                    "notify.dead",
                    str(message_id),
                    {"event": msg.event, "attempts": msg.attempts, "error": error},
                    "failed",
                )

    def _failed_try(self, message_id: int, error: str, retry_in: float) -> None:
        now = utcnow()
        with immediate(self.db):
            self.db.execute(
                "UPDATE outbox SET attempts = attempts + 1, last_error = ?, next_attempt_at = ?, "
                "claimed_until = ? WHERE id = ? AND claimed_by = ?",
                (
                    error,
                    isoformat(now + timedelta(seconds=retry_in)),
                    isoformat(now + timedelta(seconds=LEASE_SECONDS + retry_in)),
                    message_id,
                    self.worker,
                ),
            )

    # -- delivery --------------------------------------------------------------------------

    def _channels_for(self, msg: Message) -> list[Channel]:
        return [c for c in self.settings.channels if channel_wants(c, msg.event)]

    async def _try_once(self, msg_id: int) -> None:
        msg: Message = await self._db(get, self.db, msg_id)
        wanted = [c for c in self._channels_for(msg) if c.name not in msg.delivered]
        errors: list[str] = []
        for channel in wanted:
            try:
                await send(channel, msg, self._secrets.get(channel.name))
            except DeliveryFailed as exc:
                errors.append(f"{channel.name}: {exc}")
                continue
            await self._db(self._mark_channel, msg_id, channel.name)
        if errors:
            raise DeliveryFailed("; ".join(errors))

    async def deliver(self, message_id: int, *, attempts: int | None = None) -> str:
        """Send one message now, retrying with backoff; return its final status
        (``sent``, ``dead``, ``skipped``, or ``pending`` when someone else holds it or
        when ``attempts`` ran out before ``max_attempts``)."""
        msg = await self._db(self._claim, message_id)
        if msg is None:
            current: Message = await self._db(get, self.db, message_id)
            return current.status
        if not self._channels_for(msg):
            await self._db(self._finish, message_id, "skipped", None)
            return "skipped"
        left = max(self.settings.max_attempts - msg.attempts, 1)
        tries = min(left, attempts) if attempts is not None else left
        initial, cap = self.settings.backoff_initial_seconds, self.settings.backoff_max_seconds
        try:
            return await self._retry(message_id, tries, initial, cap)
        except asyncio.CancelledError:
            # Shutting down: let the next worker take it at once instead of after the lease.
            self._release(message_id)
            raise

    def _release(self, message_id: int) -> None:
        with immediate(self.db):
            self.db.execute(
                "UPDATE outbox SET claimed_by = NULL, claimed_until = NULL "
                "WHERE id = ? AND claimed_by = ?",
                (message_id, self.worker),
            )

    async def _retry(self, message_id: int, tries: int, initial: float, cap: float) -> str:
        import stamina

        count = 0
        try:
            async for attempt in stamina.retry_context(
                on=DeliveryFailed,
                attempts=tries,
                timeout=None,
                wait_initial=initial,
                wait_max=cap,
                wait_jitter=initial,
            ):
                with attempt:
                    count += 1
                    try:
                        await self._try_once(message_id)
                    except DeliveryFailed as exc:
                        retry_in = min(initial * 2 ** (count - 1), cap)
                        await self._db(self._failed_try, message_id, str(exc), retry_in)
                        raise
        except DeliveryFailed as exc:
            final: Message = await self._db(get, self.db, message_id)
            if final.attempts >= self.settings.max_attempts:
                await self._db(self._finish, message_id, "dead", str(exc))
                return "dead"
            await self._db(self._release, message_id)  # the next worker continues the count
            return "pending"
        await self._db(self._finish, message_id, "sent", None)
        return "sent"

    async def drain(self) -> dict[int, str]:
        """Deliver every message due now (concurrently); their final statuses."""
        ids = await self._db(self._due_ids)
        results = await asyncio.gather(*(self.deliver(i) for i in ids))
        return dict(zip(ids, results, strict=True))

    async def run(self, stop: asyncio.Event) -> None:
        """Poll for due messages until ``stop``; each message is delivered in its own task
        so one slow channel does not hold the others."""
        busy: set[int] = set()
        loop = asyncio.get_running_loop()
        pruned_at = -3600.0
        while not stop.is_set():
            if loop.time() - pruned_at >= 3600:
                pruned_at = loop.time()
                from opsconsole.outbox import prune

                cutoff = utcnow() - timedelta(days=self.settings.retention_days)
                with contextlib.suppress(Exception):
                    await self._db(prune, self.db, cutoff)
            try:
                ids = await self._db(self._due_ids)
            except Exception:  # a locked/broken store: try again next round
                ids = []
            for i in ids:
                if i in busy:
                    continue
                busy.add(i)
                task = asyncio.create_task(self.deliver(i))
                self._tasks.add(task)
                task.add_done_callback(self._tasks.discard)
                task.add_done_callback(lambda _t, i=i: busy.discard(i))
            self.wake.clear()
            waiter = asyncio.ensure_future(self.wake.wait())
            stopper = asyncio.ensure_future(stop.wait())
            await asyncio.wait(
                {waiter, stopper},
                timeout=self.settings.poll_seconds,
                return_when=asyncio.FIRST_COMPLETED,
            )
            waiter.cancel()
            stopper.cancel()
        for task in list(self._tasks):
            task.cancel()
        if self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)
