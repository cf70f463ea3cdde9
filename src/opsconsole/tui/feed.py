"""What the dashboard draws, and where it comes from.

The dashboard never talks to probes. It asks a :class:`HealthFeed` for a
:class:`HealthSnapshot` in a worker thread, one poll at a time (a new poll starts only
after the previous one returned, so polls never pile up). Tests hand it a
:class:`StaticFeed` holding a fixed snapshot; the console runs :class:`MonitorFeed`
over the health monitor (see ``opsconsole.tui.monitor_feed``).
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from datetime import datetime
from typing import Protocol

from opsconsole.timeutil import utcnow

__all__ = [
    "HealthFeed",
    "HealthSnapshot",
    "HostView",
    "IncidentView",
    "RegionView",
    "StaticFeed",
    "TargetView",
]


@dataclass(frozen=True)
class TargetView:
    """One service in one region, as the grid shows it."""

    region: str
    service: str
    state: str = "unknown"  # ok | degraded | down | unknown
    p50_ms: float | None = None
    p95_ms: float | None = None
    availability: float | None = None  # percent
    history: tuple[float | None, ...] = ()  # latency ms per sample; None = failed
    since: datetime | None = None
    last_error: str | None = None
    phases: dict[str, float] = field(default_factory=dict)  # phase -> ms
    errors: tuple[str, ...] = ()  # recent errors, newest last
    endpoint: str = ""
    samples: int = 0


@dataclass(frozen=True)
class RegionView:
    id: str
    name: str = ""
    state: str = "unknown"
    since: datetime | None = None
    standby: str | None = None
    timezone: str = "UTC"


@dataclass(frozen=True)
class HostView:
    cpu_percent: float | None = None
    memory_percent: float | None = None
    disk_percent: float | None = None
    load_per_cpu: float | None = None
    net_rx_bps: float | None = None
    net_tx_bps: float | None = None
    alerts: tuple[str, ...] = ()


@dataclass(frozen=True)
class IncidentView:
    id: str
    title: str
    severity: str
    status: str
    deadline_name: str | None = None
    deadline_due: datetime | None = None


@dataclass(frozen=True)
class HealthSnapshot:
    regions: tuple[RegionView, ...] = ()
    targets: tuple[TargetView, ...] = ()
    host: HostView | None = None
    taken_at: datetime = field(default_factory=utcnow)
    seq: int = 0
    note: str = ""  # e.g. "monitor starting" / an error from the feed

    def region(self, rid: str) -> RegionView | None:
        return next((r for r in self.regions if r.id == rid), None)

    @property
    def down_regions(self) -> list[RegionView]:
        return [r for r in self.regions if r.state == "down"]


class HealthFeed(Protocol):
    """A source of snapshots. ``poll`` may block (it runs in a worker thread)."""

    interval: float

    def poll(self, stop: threading.Event) -> HealthSnapshot:
        """Return the next snapshot; return early (any snapshot) once ``stop`` is set."""

    def close(self) -> None: ...


class StaticFeed:
    """Always the same snapshot (tests, snapshots); ``push`` replaces it."""

    def __init__(self, snapshot: HealthSnapshot, interval: float = 0.05) -> None:
        self.snapshot = snapshot
        self.interval = interval
        self.polls = 0
        self._lock = threading.Lock()

    def push(self, snapshot: HealthSnapshot) -> None:
        with self._lock:
            self.snapshot = snapshot

    def poll(self, stop: threading.Event) -> HealthSnapshot:
        with self._lock:
            self.polls += 1
            return self.snapshot

    def close(self) -> None:
        return None
