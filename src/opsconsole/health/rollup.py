"""Roll-up of target states to services and regions, remembering when each changed.

A service is ``down`` when all its targets are down, otherwise the worst of its targets'
states with ``down`` counted as ``degraded``; a region is ``down`` when any of its
*critical* services is down, otherwise the worst of its services' states (a non-critical
service down makes it ``degraded``). ``flapping`` ranks between degraded and down.
"""

from __future__ import annotations

import asyncio
from collections import defaultdict
from collections.abc import Generator, Iterable
from datetime import datetime
from typing import TYPE_CHECKING

from opsconsole.health.model import (
    HealthState,
    RegionStatus,
    ServiceStatus,
    Snapshot,
    StateChanged,
    TargetStatus,
    worst,
)
from opsconsole.health.stats import Tracker, percentile
from opsconsole.timeutil import utcnow

if TYPE_CHECKING:
    from opsconsole.config import Config

__all__ = ["RollUp"]

CHUNK = 250  # services rolled up between two turns of the event loop (abuild)


class RollUp:
    def __init__(self, config: Config, region_filter: str | None = None) -> None:
        self.config = config
        self.region_filter = region_filter
        self.rolled: dict[str, tuple[HealthState, datetime | None]] = {}

    def _roll(
        self,
        key: str,
        state: HealthState,
        at: datetime,
        changes: list[StateChanged] | None,
        level: str,
        region: str,
        service: str | None,
        reason: str | None,
    ) -> datetime | None:
        old, since = self.rolled.get(key, ("unknown", None))
        if state != old:
            since = at  # callers pass the time of the underlying change, not "now"
            self.rolled[key] = (state, since)
            if changes is not None:
                changes.append(
                    StateChanged(
                        level=level,
                        key=key,
                        region=region,
                        service=service,  # type: ignore[arg-type]
                        old=old,
                        new=state,
                        reason=reason,
                        at=at,
                    )
                )
        return since

    def build(
        self,
        trackers: Iterable[Tracker],
        *,
        elapsed: float | None,
        sweeps: int,
        changes: list[StateChanged] | None = None,
    ) -> Snapshot:
        """The snapshot of these trackers; roll-up changes are appended to ``changes``
        (pass None to update the remembered states silently)."""
        steps = self._build(trackers, elapsed, sweeps, changes)
        while True:
            try:
                next(steps)
            except StopIteration as done:
                return done.value  # type: ignore[no-any-return]

    async def abuild(
        self,
        trackers: Iterable[Tracker],
        *,
        elapsed: float | None,
        sweeps: int,
        changes: list[StateChanged] | None = None,
    ) -> Snapshot:
        """:meth:`build`, giving the event loop a turn every ``CHUNK`` services, so a
        roll-up of thousands of targets never holds the loop for long."""
        steps = self._build(trackers, elapsed, sweeps, changes)
        while True:
            try:
                next(steps)
            except StopIteration as done:
                return done.value  # type: ignore[no-any-return]
            await asyncio.sleep(0)

    def _build(
        self,
        trackers: Iterable[Tracker],
        elapsed: float | None,
        sweeps: int,
        changes: list[StateChanged] | None,
    ) -> Generator[None, None, Snapshot]:
        at = utcnow()
        done = 0
        by_service: dict[tuple[str, str], list[Tracker]] = defaultdict(list)
        for tr in trackers:
            by_service[(tr.target.region, tr.target.service)].append(tr)
        regions: dict[str, RegionStatus] = {}
        inv = self.config.inventory.regions
        region_ids = [r for r in inv if self.region_filter in (None, r)]
        region_ids += sorted({r for r, _ in by_service if r not in region_ids})
        for rid in region_ids:
            services: dict[str, ServiceStatus] = {}
            keys = [k for k in by_service if k[0] == rid]
            for _, sid in keys:
                services[sid] = self._service(rid, sid, by_service[(rid, sid)], at, changes)
                done += 1
                if done % CHUNK == 0:
                    yield
            crit_down = any(s.state == "down" and s.critical for s in services.values())
            states = [s.state for s in services.values()]
            state: HealthState = "down" if crit_down else worst(states)
            if state == "down" and not crit_down:
                state = "degraded"
            bad = sorted(
                f"{s.service} {s.state}"
                for s in services.values()
                if s.state in ("down", "degraded")
            )
            when = max((s.since for s in services.values() if s.since), default=at)
            since = self._roll(
                rid, state, when, changes, "region", rid, None, ", ".join(bad) or None
            )
            name = inv[rid].name if rid in inv else rid
            regions[rid] = RegionStatus(rid, name, state, since, services)
        return Snapshot(at=at, regions=regions, sweep_seconds=elapsed, sweeps=sweeps)

    def _service(
        self,
        rid: str,
        sid: str,
        trackers: list[Tracker],
        at: datetime,
        changes: list[StateChanged] | None,
    ) -> ServiceStatus:
        statuses: tuple[TargetStatus, ...] = tuple(t.status() for t in trackers)
        states = [t.state for t in statuses]
        if states and all(s == "down" for s in states):
            state: HealthState = "down"
        else:
            state = worst(states)
            state = "degraded" if state == "down" else state
        if len(statuses) == 1:  # the common case: the target's figures are the service's
            only = statuses[0]
            p50, p95, availability = only.p50, only.p95, only.availability
        else:
            lat = sorted(v for t in trackers for v in t.latencies())  # timeouts count
            n = sum(len(t.samples) for t in trackers)
            fails = sum(1 for t in trackers for s in t.samples if not s.ok)
            p50, p95 = percentile(lat, 50), percentile(lat, 95)
            availability = round(100 * (n - fails) / n, 2) if n else None
        errored = [t for t in statuses if t.last_error and t.state != "ok"]
        reason = next((tr.reason for tr in trackers if tr.state == state and tr.reason), None)
        when = max((t.since for t in trackers if t.since), default=at)
        since = self._roll(f"{rid}/{sid}", state, when, changes, "service", rid, sid, reason)
        return ServiceStatus(
            region=rid,
            service=sid,
            critical=trackers[0].target.critical,
            state=state,
            since=since,
            targets=statuses,
            p50=p50,
            p95=p95,
            availability=availability,
            last_error=errored[0].last_error
            if errored
            else next((t.last_error for t in statuses if t.last_error), None),
            history=statuses[0].history if statuses else (),
        )
