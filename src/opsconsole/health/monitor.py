"""The monitor: sweeps every target under concurrency limits, keeps state, reports changes.

One sweep probes every target at once, bounded by a global semaphore
(``probe.concurrency``) and one per host (``probe.per_host_concurrency``, keyed by
``host:port`` / SSH alias). Every probe is bounded by its own timeout, so one hanging
target never holds the sweep longer than that timeout.

Roll-up: a service is ``down`` when all its targets are down, ``degraded`` when any target
is not ok; a region is ``down`` when any of its *critical* services is down, and
``degraded`` when any service is not ok.

Consumers (CLI ``watch``, the TUI, runbook health gates)::

    async with Monitor(config, db=db, audit=audit, bus=bus) as mon:
        await mon.restore()                 # optional: rebuild state from stored samples
        snap = await mon.sweep()            # one sweep -> Snapshot
        async for snap in mon.sweeps():     # sweep every interval, forever
            render(snap)
        mon.snapshot()                      # the latest state, any time, no I/O
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Callable
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from opsconsole.health.model import (
    STATE_SYMBOL,
    Outcome,
    ProbeResult,
    Snapshot,
    StateChanged,
    SweepCompleted,
    Target,
    TargetHistory,
    targets_from_config,
)
from opsconsole.health.rollup import RollUp
from opsconsole.health.stats import Tracker
from opsconsole.timeutil import utcnow

if TYPE_CHECKING:
    import sqlite_utils

    from opsconsole.audit import AuditLog
    from opsconsole.config import Config
    from opsconsole.events import EventBus
    from opsconsole.health.probes import Probe

__all__ = ["Monitor"]

# A large inventory means hundreds of thousands of long-lived objects (config models,
# trackers, their windows). Python's full collections rescan all of them, pausing every
# thread of the process for ~0.5 s several times a sweep at 5,000 targets (measured:
# bench/probes.py); gc.freeze() moves what exists after the first sweep out of the
# collector's view (refcounting still frees it). Once per process, and only from this
# many targets on, where the pauses are felt.
FREEZE_AT = 1000
_frozen = False


def _freeze_long_lived(targets: int) -> None:
    global _frozen
    if _frozen or targets < FREEZE_AT:
        return
    import gc

    _frozen = True
    gc.collect(1)  # the young garbage of start-up is not worth keeping forever
    gc.freeze()


class Monitor:
    def __init__(
        self,
        config: Config,
        *,
        db: sqlite_utils.Database | None = None,
        audit: AuditLog | None = None,
        bus: EventBus | None = None,
        region: str | None = None,
        service: str | None = None,
        targets: list[Target] | None = None,
        notify: bool = True,
        persist: bool = True,
    ) -> None:
        """``db``: stored samples to ``restore`` from and, with ``persist``, to write each
        sweep's samples to (``persist=False``: a dry run that reads the state only)."""
        from opsconsole.health.probes import HttpProbe, SshProbe, TcpProbe

        self.config = config
        self.settings = config.settings.probe
        self.db = db
        self.audit = audit
        self.bus = bus
        self.notify = notify
        self.persist = persist
        self.region_filter = region
        self.service_filter = service
        self.targets = (
            targets
            if targets is not None
            else targets_from_config(config, region=region, service=service)
        )
        self._trackers: dict[str, Tracker] = {t.id: self._tracker(t) for t in self.targets}
        self._rollup = RollUp(config, region)
        self._probes: dict[str, Probe] = {
            "http": HttpProbe(
                config,
                max_connections=self.settings.concurrency,
                per_host=self.settings.per_host_concurrency,
            ),
            "tcp": TcpProbe(),
            "ssh": SshProbe(config),
        }
        self._sources = self._prometheus_sources()
        self._global: asyncio.Semaphore | None = None
        self._per_host: dict[str, asyncio.Semaphore] = {}
        self._db_lock: asyncio.Lock | None = None
        self._pending: set[asyncio.Task[Any]] = set()
        self._listeners: list[Callable[[Snapshot], Any]] = []
        self._last_prune = 0.0
        self._prepared = False
        self._snapshot = Snapshot(at=utcnow(), regions={})
        self.sweep_count = 0
        self.errors: list[str] = []  # audit/persistence/webhook problems (never raised)
        self.deliveries: list[Any] = []  # webhook Delivery results, newest last
        self._snapshot = self._rollup.build(self._trackers.values(), elapsed=None, sweeps=0)

    # -- setup ---------------------------------------------------------------------------

    def _tracker(self, target: Target) -> Tracker:
        h = self.settings.hysteresis
        return Tracker(
            target,
            window=self.settings.window,
            down_after=h.down_after,
            recover_after=h.recover_after,
            flap_window=self.settings.flapping.window,
            flap_threshold=self.settings.flapping.threshold,
        )

    def _prometheus_sources(self) -> list[Any]:
        out = []
        for rid, reg in self.config.inventory.regions.items():
            if reg.prometheus_url is None or self.region_filter not in (None, rid):
                continue
            from opsconsole.health.prometheus import PrometheusSource

            out.append(
                PrometheusSource(
                    rid,
                    str(reg.prometheus_url),
                    timeout=self.settings.timeout_seconds,
                    critical_services={s for s, svc in reg.services.items() if svc.critical},
                )
            )
        return out

    def on_sweep(self, callback: Callable[[Snapshot], Any]) -> Callable[[], None]:
        """Call ``callback(snapshot)`` after every sweep; returns an unsubscribe function."""
        self._listeners.append(callback)
        return lambda: self._listeners.remove(callback) if callback in self._listeners else None

    async def __aenter__(self) -> Monitor:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        """Wait (briefly) for webhook posts in flight, then close the clients."""
        if self._pending:
            await asyncio.wait(self._pending, timeout=10)
        for probe in self._probes.values():
            await probe.aclose()
        for src in self._sources:
            await src.aclose()

    # -- probing -------------------------------------------------------------------------

    async def _probe(self, target: Target) -> Outcome:
        if self._global is None:
            self._global = asyncio.Semaphore(self.settings.concurrency)
        host_sem = self._per_host.get(target.host_key)
        if host_sem is None:
            host_sem = self._per_host[target.host_key] = asyncio.Semaphore(
                self.settings.per_host_concurrency
            )
        async with host_sem, self._global:
            try:
                # The probe enforces its own timeout; this is a backstop (e.g. a stuck thread).
                async with asyncio.timeout(target.timeout + 1):
                    return await self._probes[target.kind].check(target)
            except TimeoutError:
                return Outcome(
                    ok=False,
                    latency_ms=None,
                    error=f"timeout after {target.timeout:g}s",
                    timed_out=True,
                )
            except Exception as exc:
                return Outcome(ok=False, latency_ms=None, error=f"probe error: {exc!r}")

    async def _one(self, target: Target) -> tuple[Target, Outcome, datetime]:
        outcome = await self._probe(target)
        return target, outcome, utcnow()

    async def _source(self, src: Any) -> list[tuple[Target, Outcome, datetime]]:
        if self._global is None:
            self._global = asyncio.Semaphore(self.settings.concurrency)
        async with self._global:
            results = await src.collect()
        at = utcnow()
        return [(t, o, at) for t, o in results]

    async def sweep(self) -> Snapshot:
        """Probe everything once; update state; persist, audit, notify; return the snapshot."""
        if not self._prepared:
            self._prepared = True
            self._probes["http"].prepare(self.targets)  # type: ignore[attr-defined]
        t0 = time.perf_counter()
        src_jobs = asyncio.gather(*(self._source(s) for s in self._sources))
        jobs: list[asyncio.Task[tuple[Target, Outcome, datetime]]] = []
        try:
            for i, target in enumerate(self.targets):
                jobs.append(asyncio.create_task(self._one(target)))
                if i % 500 == 499:
                    # Each new task's first step runs in the next turn of the loop: start
                    # them 500 at a time so that turn stays short with thousands of targets.
                    await asyncio.sleep(0)
            results = list(await asyncio.gather(*jobs))
            for batch in await src_jobs:
                results.extend(batch)
        except BaseException:
            for job in jobs:
                job.cancel()
            src_jobs.cancel()
            raise
        elapsed = time.perf_counter() - t0
        changes: list[StateChanged] = []
        for i, (target, outcome, at) in enumerate(results):
            if i % 500 == 499:
                # Thousands of results: let the loop breathe (key presses, other tasks).
                await asyncio.sleep(0)
            tracker = self._trackers.get(target.id)
            if tracker is None:  # a target a health source discovered
                tracker = self._trackers[target.id] = self._tracker(target)
            changed = tracker.add(outcome, at)
            if self.bus is not None:
                self.bus.publish(
                    ProbeResult(
                        target=target.id,
                        region=target.region,
                        service=target.service,
                        endpoint=target.endpoint,
                        ok=outcome.ok,
                        slow=outcome.slow,
                        latency_ms=outcome.latency_ms,
                        error=outcome.error,
                        status_code=outcome.status_code,
                        phases=outcome.phases,
                        timed_out=outcome.timed_out,
                        at=at,
                    )
                )
            if changed:
                changes.append(
                    StateChanged(
                        level="target",
                        key=target.id,
                        region=target.region,
                        service=target.service,
                        old=changed[0],
                        new=changed[1],
                        reason=tracker.reason,
                        at=at,
                    )
                )
        if self.sweep_count == 0:
            _freeze_long_lived(len(self._trackers))
        self.sweep_count += 1
        snap = await self._rollup.abuild(
            self._trackers.values(), elapsed=elapsed, sweeps=self.sweep_count, changes=changes
        )
        self._snapshot = snap
        await self._after_sweep(results, changes)
        if self.bus is not None:
            for ev in changes:
                self.bus.publish(ev)
            self.bus.publish(SweepCompleted(snapshot=snap))
        for cb in list(self._listeners):
            res = cb(snap)
            if asyncio.iscoroutine(res):
                await res
        return snap

    async def sweeps(self, *, stop: asyncio.Event | None = None) -> AsyncIterator[Snapshot]:
        """Sweep every ``interval_seconds`` (a slow sweep delays the next; sweeps never
        overlap) and yield each snapshot, until ``stop`` is set."""
        loop = asyncio.get_running_loop()
        stop = stop or asyncio.Event()
        while not stop.is_set():
            started = loop.time()
            yield await self.sweep()
            wait = self.settings.interval_seconds - (loop.time() - started)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), max(wait, 0))

    async def run(self, *, stop: asyncio.Event | None = None) -> None:
        """Sweep until ``stop`` is set (listeners and the bus get every snapshot)."""
        async for _ in self.sweeps(stop=stop):
            pass

    def snapshot(self) -> Snapshot:
        return self._snapshot

    def history(self, target: str) -> TargetHistory | None:
        """One target's stored window (samples oldest first) with min/p50/p95/p99/max —
        the drill-down view; None for an unknown target id. No I/O."""
        tracker = self._trackers.get(target)
        return tracker.history() if tracker is not None else None

    def transitional(self) -> bool:
        """Some target's state may still move on the next sweep without the endpoint
        changing (failures short of ``down_after``, a recovery short of
        ``recover_after``, no sample yet). One-shot checks sweep until this is false."""
        return any(t.transitional for t in self._trackers.values())

    # -- state from stored samples -----------------------------------------------------

    async def restore(self) -> int:
        """Replay recent stored samples into the trackers (no events), so a fresh process
        (``status``) continues the hysteresis where the last one left off. Returns the
        number of samples replayed."""
        if self.db is None:
            return 0
        from opsconsole.health import storage

        horizon = self.settings.interval_seconds * self.settings.window
        since = utcnow() - timedelta(seconds=max(horizon, 60))
        async with self._lock():
            samples = await asyncio.to_thread(
                storage.recent_samples, self.db, list(self._trackers), since
            )
        for s in samples:
            self._trackers[s.target].add(s.outcome, s.at)
        self._snapshot = self._rollup.build(
            self._trackers.values(), elapsed=None, sweeps=self.sweep_count
        )
        return len(samples)

    def _lock(self) -> asyncio.Lock:
        if self._db_lock is None:
            self._db_lock = asyncio.Lock()
        return self._db_lock

    # -- side effects ------------------------------------------------------------------

    def _reportable(self, ev: StateChanged) -> bool:
        # Start-up discoveries of a healthy system are not news; problems found are.
        return ev.level != "target" and not (ev.old == "unknown" and ev.new in ("ok", "unknown"))

    async def _after_sweep(
        self, results: list[tuple[Target, Outcome, datetime]], changes: list[StateChanged]
    ) -> None:
        report = [c for c in changes if self._reportable(c)]
        if self.db is not None and self.persist:
            async with self._lock():
                await asyncio.to_thread(self._write, results, report)
        if self.notify and report and self.config.settings.webhooks:
            task = asyncio.ensure_future(self._post(report))
            self._pending.add(task)
            task.add_done_callback(self._pending.discard)

    def _write(
        self, results: list[tuple[Target, Outcome, datetime]], report: list[StateChanged]
    ) -> None:
        from opsconsole.health import storage

        assert self.db is not None
        try:
            storage.write(self.db, results)
            now = time.monotonic()
            if now - self._last_prune > 60:
                self._last_prune = now
                storage.prune(
                    self.db,
                    now=utcnow(),
                    raw_minutes=self.settings.raw_retention_minutes,
                    rollup_days=self.settings.rollup_retention_days,
                )
        except Exception as exc:
            self.errors.append(f"cannot store samples: {exc}")
        if self.audit is None:
            return
        for ev in report:
            try:
                self.audit.record(
                    "health.state_changed",
                    ev.key,
                    {
                        "level": ev.level,
                        "region": ev.region,
                        "service": ev.service,
                        "old": ev.old,
                        "new": ev.new,
                        "reason": ev.reason,
                        "at": ev.at.isoformat(),
                    },
                    ev.new,
                )
            except Exception as exc:
                self.errors.append(f"cannot audit state change of {ev.key}: {exc}")

    async def _post(self, report: list[StateChanged]) -> None:
        from opsconsole.notify import post_event

        for ev in report:
            env = self.config.inventory.regions.get(ev.region)
            text = (
                f"{STATE_SYMBOL.get(ev.new, '')} {ev.key} is {ev.new.upper()} "
                f"(was {ev.old})"
                + (f": {ev.reason}" if ev.reason else "")
                + (f" [{env.environment}]" if env else "")
            )
            data = {
                "level": ev.level,
                "key": ev.key,
                "region": ev.region,
                "service": ev.service,
                "old": ev.old,
                "new": ev.new,
                "reason": ev.reason,
                "at": ev.at.isoformat(),
            }
            try:
                got = await post_event(
                    self.config.settings.webhooks, "health.state_changed", text, data
                )
            except Exception as exc:
                self.errors.append(f"webhook: {exc}")
                continue
            self.deliveries.extend(got)
            self.errors.extend(f"webhook {d.webhook}: {d.error}" for d in got if not d.ok)
