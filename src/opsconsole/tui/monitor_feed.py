"""The live feed: the health monitor, in its own thread and event loop.

Probing hundreds of targets must not compete with key handling on the UI loop, so the
:class:`~opsconsole.health.Monitor` runs in a background thread with its own asyncio
loop and database connection. The dashboard's worker calls :meth:`MonitorFeed.poll`,
which blocks until the next sweep finished, so the UI is handed each sweep once.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
from pathlib import Path
from typing import TYPE_CHECKING, Any

from opsconsole.tui.feed import HealthFeed, HealthSnapshot, HostView, RegionView, TargetView

if TYPE_CHECKING:
    from opsconsole.config import Config
    from opsconsole.tui.context import TuiContext

__all__ = ["MONITOR_ACTOR", "MonitorFeed", "convert_host", "convert_snapshot", "make_feed"]

# Automatic health changes are the monitor's doing, not the person's at the console: the
# audit log names the monitor as actor (the OS account running it is kept in details).
MONITOR_ACTOR = "monitor"


def convert_snapshot(snap: Any, config: Config, *, seq: int = 0) -> HealthSnapshot:
    """A health ``Snapshot`` as the dashboard draws it: one row per service."""
    regions: list[RegionView] = []
    targets: list[TargetView] = []
    for rid, region_cfg in config.inventory.regions.items():
        status = snap.regions.get(rid)
        regions.append(
            RegionView(
                id=rid,
                name=region_cfg.name,
                standby=region_cfg.standby,
                timezone=region_cfg.timezone,
                state=status.state if status else "unknown",
                since=status.since if status else None,
            )
        )
        if status is None:
            continue
        for sid, svc in status.services.items():
            first = svc.targets[0] if svc.targets else None
            phases = {
                k: v for k, v in ((first.phases or {}) if first else {}).items() if v is not None
            }
            targets.append(
                TargetView(
                    region=rid,
                    service=sid,
                    state=svc.state,
                    p50_ms=svc.p50,
                    p95_ms=svc.p95,
                    availability=svc.availability,
                    history=tuple(svc.history),
                    since=svc.since,
                    last_error=svc.last_error,
                    phases=phases,
                    errors=tuple(
                        f"{t.endpoint}: {t.last_error}" for t in svc.targets if t.last_error
                    ),
                    endpoint=", ".join(t.id for t in svc.targets),
                    samples=sum(t.samples for t in svc.targets),
                )
            )
    return HealthSnapshot(
        regions=tuple(regions),
        targets=tuple(targets),
        taken_at=snap.at,
        seq=seq,
        note=f"sweep {snap.sweeps}" if not targets else "",
    )


def convert_host(metrics: Any) -> HostView:
    return HostView(
        cpu_percent=metrics.cpu_percent,
        memory_percent=metrics.memory_percent,
        disk_percent=max((d.percent for d in metrics.disks), default=None),
        load_per_cpu=metrics.load_per_cpu,
        net_rx_bps=metrics.net_recv_bytes_per_s,
        net_tx_bps=metrics.net_sent_bytes_per_s,
        alerts=tuple(metrics.problems),
    )


class MonitorFeed:
    """Runs ``Monitor.sweeps()`` in a thread; ``poll`` returns each new sweep once."""

    interval = 0.0  # poll itself waits for the next sweep

    def __init__(
        self,
        config: Config,
        db_path: Path,
        *,
        actor: str | None = None,
        audit_key: bytes | None = None,
    ) -> None:
        self.config = config
        self.db_path = db_path
        self.actor = actor
        self.audit_key = audit_key
        self._cond = threading.Condition()
        self._latest: HealthSnapshot | None = None
        self._host: HostView | None = None
        self._seq = 0
        self._seen = 0
        self._thread: threading.Thread | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop: asyncio.Event | None = None
        self.error: str | None = None

    def _start(self) -> None:
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name="health-monitor", daemon=True)
            self._thread.start()

    def _run(self) -> None:
        asyncio.run(self._main())

    async def _main(self) -> None:
        from opsconsole.audit import AuditLog
        from opsconsole.health import Monitor, host_metrics
        from opsconsole.store import open_db

        self._loop = asyncio.get_running_loop()
        self._stop = asyncio.Event()
        db = open_db(self.db_path, migrate=False)
        audit = AuditLog(db, actor=MONITOR_ACTOR, interface="tui", key=self.audit_key)
        thresholds = self.config.settings.host

        async def host_loop() -> None:
            assert self._stop is not None
            while not self._stop.is_set():
                metrics = await asyncio.to_thread(host_metrics, thresholds, interval=0.5)
                self._host = convert_host(metrics)
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._stop.wait(), 2.0)

        host_task = asyncio.create_task(host_loop())
        try:
            async with Monitor(self.config, db=db, audit=audit) as mon:
                await mon.restore()
                self._publish(mon.snapshot())
                async for snap in mon.sweeps(stop=self._stop):
                    self._publish(snap)
        except Exception as exc:  # reported on the dashboard instead of killing the thread
            self.error = f"health monitor stopped: {exc}"
            with self._cond:
                self._seq += 1
                self._cond.notify_all()
        finally:
            host_task.cancel()
            with contextlib.suppress(BaseException):
                await host_task
            db.conn.close()

    def _publish(self, snap: Any) -> None:
        with self._cond:
            self._seq += 1
            self._latest = convert_snapshot(snap, self.config, seq=self._seq)
            self._cond.notify_all()

    def poll(self, stop: threading.Event) -> HealthSnapshot:
        self._start()
        with self._cond:
            while self._seq == self._seen and not stop.is_set():
                self._cond.wait(0.25)
            self._seen = self._seq
            latest = self._latest or HealthSnapshot(note="starting the health monitor…")
        if self.error:
            return HealthSnapshot(
                regions=latest.regions, targets=latest.targets, host=self._host, note=self.error
            )
        return HealthSnapshot(
            regions=latest.regions,
            targets=latest.targets,
            host=self._host,
            taken_at=latest.taken_at,
            seq=latest.seq,
            note=latest.note,
        )

    def close(self) -> None:
        loop, stop = self._loop, self._stop
        if loop is not None and stop is not None and not loop.is_closed():
            with contextlib.suppress(RuntimeError):
                loop.call_soon_threadsafe(stop.set)
        if self._thread is not None:
            self._thread.join(timeout=15)


def make_feed(ctx: TuiContext) -> HealthFeed:
    assert ctx.config is not None
    return MonitorFeed(ctx.config, ctx.db_path, actor=ctx.actor, audit_key=ctx.audit.key)
