"""The drill scheduler service (``opsconsole scheduler``) on APScheduler 3.x.

* Jobs are built from ``drills.yaml`` at start and rebuilt when it (or the inventory)
  changes; each job has an explicit ``misfire_grace_time`` and ``coalesce=True``. The
  job store is an in-memory one owned by this process: job stores are never shared
  between schedulers, and the definitions file is the source of truth anyway.
* Due dates are accounted for in the database, not in APScheduler: every firing,
  every misfire event and the start-up catch-up call :meth:`DrillScheduler.process_due`,
  which walks the cron schedule from the last accounted-for due date up to now, records
  each due date that can no longer run as ``missed``, and runs the latest once if it
  is still within the grace window. So nothing is silently dropped, whichever path
  notices first, and nothing runs twice.
* One scheduler per database (:mod:`opsconsole.drills.lock`).
* First SIGTERM/SIGINT: stop scheduling, let running drills finish. Second: cancel
  them (recorded ``interrupted``; the runbook run stays resumable).
* One JSON log line per event on stdout.
"""

from __future__ import annotations

import asyncio
import signal
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from opsconsole.drills import store
from opsconsole.drills.due import JsonLog, anchor_key, claim, touch_anchor
from opsconsole.drills.execute import DrillContext, finish_live
from opsconsole.drills.loader import drills_path, load_drills
from opsconsole.errors import ExitCode, OpsError
from opsconsole.timeutil import isoformat, utcnow

if TYPE_CHECKING:
    import sqlite_utils
    from apscheduler.schedulers.asyncio import AsyncIOScheduler

    from opsconsole.audit import AuditLog
    from opsconsole.config import Config
    from opsconsole.drills.model import DrillsFile

__all__ = ["DrillScheduler", "JsonLog"]

JOB_PREFIX = "drill:"


class DrillScheduler:
    def __init__(
        self,
        *,
        db: sqlite_utils.Database,
        audit: AuditLog,
        load_config: Callable[[], Config],
        log: Callable[..., None] | None = None,
        operator_factory: Callable[[str], Any] | None = None,
    ) -> None:
        self.db = db
        self.audit = audit
        self._load_config = load_config
        self.log = log or JsonLog()
        self._operator_factory = operator_factory
        self.config: Config | None = None
        self.drills: DrillsFile | None = None
        self._signature: tuple[Any, ...] | None = None
        self._scheduler: AsyncIOScheduler | None = None
        self._running: set[asyncio.Task[Any]] = set()
        self._active: set[str] = set()  # drills with a run in progress here
        self._stop = asyncio.Event()
        self._signals = 0
        self._lock: Any = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._lost = False

    # --- definitions ------------------------------------------------------------

    def _files(self) -> list[Path]:
        assert self.config is not None
        d = self.config.directory
        return [d / "inventory.yaml", d / "settings.yaml", drills_path(self.config)]

    def _stat(self) -> tuple[Any, ...]:
        sig = []
        for p in self._files():
            try:
                st = p.stat()
                sig.append((str(p), st.st_mtime_ns, st.st_size))
            except OSError:
                sig.append((str(p), None, None))
        return tuple(sig)

    def load(self) -> None:
        """(Re)load config and drills; raises on an invalid file."""
        config = self._load_config()
        drills = load_drills(config).file
        self.config, self.drills = config, drills
        self._signature = self._stat()
        # A definition new to the database counts from when the file was last written
        # (at the latest): a due date after a hand edit made while no scheduler ran is
        # still noticed as missed.
        now = utcnow()
        try:
            mtime = datetime.fromtimestamp(drills_path(config).stat().st_mtime, UTC)
        except OSError:
            mtime = now
        for name, drill in drills.drills.items():
            touch_anchor(self.db, name, anchor_key(drill), min(now, mtime))

    def context(self) -> DrillContext:
        assert self.config is not None and self.drills is not None
        return DrillContext(self.db, self.audit, self.config, self.drills, self.log)

    def _operator(self, name: str) -> Any:
        if self._operator_factory is not None:
            return self._operator_factory(name)
        from opsconsole.operator import UnattendedOperator

        return UnattendedOperator(f"drill {name}")

    # --- due dates ----------------------------------------------------------------

    def claim(
        self, name: str, now: datetime | None = None, *, busy: bool = False
    ) -> store.DrillRun | None:
        """See :func:`opsconsole.drills.due.claim`."""
        return claim(self.context(), name, now, busy=busy)

    async def process_due(self, name: str, now: datetime | None = None) -> store.DrillRun | None:
        """Claim ``name``'s due dates and run the drill if one is due within grace."""
        assert self.drills is not None
        try:
            run = self.claim(name, now, busy=name in self._active)
        except OpsError as exc:
            self.log("drill.error", drill=name, error=str(exc))
            return None
        if run is None or run.status != "running":
            return run
        drill = self.drills.drills[name]
        task = asyncio.current_task()
        if task is not None:
            self._running.add(task)
        self._active.add(name)
        try:
            return await finish_live(self.context(), run, drill, self._operator(name))
        finally:
            self._active.discard(name)
            if task is not None:
                self._running.discard(task)

    def spawn(self, name: str, now: datetime | None = None) -> asyncio.Task[Any]:
        """Process ``name`` in its own task (so stopping APScheduler never cancels it)."""
        task = asyncio.ensure_future(self.process_due(name, now))
        self._running.add(task)
        task.add_done_callback(self._running.discard)
        return task

    async def run_once(self, now: datetime | None = None) -> list[store.DrillRun]:
        """Everything due now, one drill after another (``scheduler --once``)."""
        assert self.drills is not None
        results = []
        for name in list(self.drills.drills):
            if self._stop.is_set():
                break
            task = self.spawn(name, now)
            # wait() rather than await: a second signal cancels the drill's task, not us.
            await asyncio.wait([task])
            if not task.cancelled() and task.exception() is None and task.result() is not None:
                results.append(task.result())
        return results

    # --- APScheduler jobs -------------------------------------------------------

    async def _fire(self, name: str) -> None:
        # Stopping APScheduler cancels the tasks its executor started; a drill must be
        # able to finish after the first SIGTERM, so it runs in a task of its own.
        self.spawn(name)

    def _on_missed(self, event: Any) -> None:
        job_id = str(event.job_id)
        if job_id.startswith(JOB_PREFIX):
            self.log(
                "scheduler.misfire",
                drill=job_id[len(JOB_PREFIX) :],
                due=isoformat(event.scheduled_run_time),
            )
            self.spawn(job_id[len(JOB_PREFIX) :])

    def _on_error(self, event: Any) -> None:
        self.log("scheduler.job_error", job=str(event.job_id), error=repr(event.exception))

    def build_jobs(self) -> None:
        """Replace every drill job with one per enabled, scheduled drill."""
        from opsconsole.drills.schedule import make_trigger, next_due

        assert self._scheduler is not None and self.drills is not None
        for job in self._scheduler.get_jobs():
            if job.id.startswith(JOB_PREFIX):
                job.remove()
        now = utcnow()
        for name, drill in self.drills.drills.items():
            if drill.schedule is None or not drill.enabled:
                continue
            trigger = make_trigger(drill.schedule.cron, drill.schedule.at, drill.schedule.timezone)
            upcoming = next_due(trigger, now)
            if upcoming is None:
                continue
            self._scheduler.add_job(
                self._fire,
                trigger,
                args=[name],
                id=JOB_PREFIX + name,
                name=name,
                replace_existing=True,
                coalesce=True,
                max_instances=1,
                misfire_grace_time=max(1, int(self.drills.grace(drill))),
            )
            self.log("drill.scheduled", drill=name, kind=drill.kind, next_due=isoformat(upcoming))

    def reload_if_changed(self, *, force: bool = False) -> None:
        if not force and self._stat() == self._signature:
            return
        try:
            self.load()
        except OpsError as exc:
            self._signature = self._stat()  # do not repeat the same error every tick
            self.log("drills.invalid", error=str(exc), keeping="previous definitions")
            return
        assert self.drills is not None
        self.log("drills.reloaded", drills=len(self.drills.drills))
        self.build_jobs()
        for name in self.drills.drills:
            self.spawn(name)

    async def _reload_job(self) -> None:
        # async on purpose: AsyncIOExecutor runs plain functions in a thread pool, and
        # the database connection and task spawning belong to the event loop's thread.
        self.reload_if_changed()

    def _add_checkpoint_job(self) -> None:
        """Signed audit checkpoints to the witnesses every
        ``audit.checkpoint_interval_seconds`` (settings), when this account can read
        the signing key (the scheduler's account is where it is meant to live)."""
        from opsconsole.auditing.service import audit_context

        assert self._scheduler is not None and self.config is not None
        interval = self.config.settings.audit.checkpoint_interval_seconds
        ctx = audit_context(self.config)
        if not interval or not ctx.private_key_readable() or not ctx.witnesses:
            return

        db_file = self.db.location

        def checkpoint() -> None:
            # Its own connection: a transaction on the shared one could interleave with
            # a drill's, which runs in another thread.
            from opsconsole.auditing.service import checkpoint_quietly
            from opsconsole.store import open_db

            db = open_db(db_file, migrate=False)
            try:
                log = ctx.audit_log(db, actor=self.audit.actor, interface="scheduler")
                checkpoint_quietly(log, ctx)
            finally:
                db.conn.close()

        async def job() -> None:
            await asyncio.to_thread(checkpoint)

        self._scheduler.add_job(
            job,
            "interval",
            id="audit-checkpoint",
            seconds=interval,
            coalesce=True,
            misfire_grace_time=None,
            next_run_time=utcnow(),
        )

    def _lease_lost(self, lease: Any) -> None:
        """From the lease keeper's thread: another scheduler took the lease over (ours
        had expired: this process was stopped or cut off from the database)."""

        def stop() -> None:
            self.log("scheduler.lock_lost", error=f"another scheduler took over {lease.name}")
            self._lost = True
            self._stop.set()

        if self._loop is not None:
            self._loop.call_soon_threadsafe(stop)

    # --- lifecycle --------------------------------------------------------------

    def _on_signal(self, signum: int) -> None:
        self._signals += 1
        name = signal.Signals(signum).name
        if self._signals == 1:
            self.log(
                "scheduler.stopping",
                signal=name,
                running=len(self._running),
                hint="running drills finish; signal again to interrupt them",
            )
            self._stop.set()
        else:
            self.log("scheduler.interrupting", signal=name, running=len(self._running))
            for task in list(self._running):
                task.cancel()

    def install_signals(self) -> None:
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, self._on_signal, sig)
        loop.add_signal_handler(signal.SIGHUP, lambda: self.reload_if_changed(force=True))

    def stop(self) -> None:
        self._stop.set()

    async def _drain(self) -> None:
        while self._running:
            await asyncio.wait(list(self._running))

    async def serve(
        self,
        *,
        once: bool = False,
        signals: bool = True,
        lease_seconds: float | None = None,
        lock_host: str | None = None,
    ) -> int:
        """Run until stopped (or, with ``once``, until what is due now has run).

        ``lease_seconds``: how long the scheduler lease outlives its last heartbeat
        (default: settings ``lease_seconds``); ``lock_host``: the host name it is held
        under (default: this host's name)."""
        from opsconsole.drills.lock import SchedulerLock

        self.load()
        assert self.drills is not None and self.config is not None
        self._loop = asyncio.get_running_loop()
        seconds = lease_seconds or self.config.settings.lease_seconds
        self._lock = SchedulerLock(self.db, seconds=seconds, host=lock_host)
        previous = self._lock.acquire(
            self.audit,
            {"once": once},
            heartbeat_every=self.drills.scheduler.heartbeat_seconds,
            on_lost=self._lease_lost,
        )
        holder = self._lock.lease.holder if self._lock.lease else None
        if previous is not None:
            self.log("scheduler.lock_takeover", previous=previous.describe())
        self.log(
            "scheduler.started",
            pid=holder.pid if holder else None,
            host=holder.host if holder else None,
            once=once,
            drills=len(self.drills.drills),
        )
        if signals:
            self.install_signals()
        try:
            if once:
                await self.run_once()
            else:
                await self._serve_forever()
            await self._drain()
        finally:
            self._lock.release()
            self.audit.record(
                "scheduler.stop",
                f"pid {holder.pid}@{holder.host}" if holder else "scheduler",
                {"signals": self._signals},
            )
            self.log("scheduler.stopped", pid=holder.pid if holder else None)
        return int(ExitCode.CONFLICT) if self._lost else 0

    async def _serve_forever(self) -> None:
        from apscheduler.events import EVENT_JOB_ERROR, EVENT_JOB_MISSED
        from apscheduler.executors.asyncio import AsyncIOExecutor
        from apscheduler.jobstores.memory import MemoryJobStore
        from apscheduler.schedulers.asyncio import AsyncIOScheduler

        assert self.drills is not None
        settings = self.drills.scheduler
        self._scheduler = AsyncIOScheduler(
            jobstores={"default": MemoryJobStore()},
            executors={"default": AsyncIOExecutor()},
            job_defaults={
                "coalesce": True,
                "max_instances": 1,
                "misfire_grace_time": int(settings.misfire_grace_seconds),
            },
            timezone="UTC",
        )
        self._scheduler.add_listener(self._on_missed, EVENT_JOB_MISSED)
        self._scheduler.add_listener(self._on_error, EVENT_JOB_ERROR)
        self._scheduler.start()
        self.build_jobs()
        self._scheduler.add_job(
            self._reload_job,
            "interval",
            id="reload",
            seconds=settings.reload_seconds,
            coalesce=True,
            misfire_grace_time=None,
        )
        # The lease is heartbeaten by its keeper thread (see serve()).
        self._add_checkpoint_job()
        # Catch-up: due dates that passed while no scheduler ran.
        for name in self.drills.drills:
            self.spawn(name)
        try:
            await self._stop.wait()
        finally:
            self._scheduler.shutdown(wait=False)
