"""Local host metrics from psutil, judged against the settings' thresholds."""

from __future__ import annotations

import os
import time
from dataclasses import asdict, dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any

from opsconsole.timeutil import utcnow

if TYPE_CHECKING:
    from opsconsole.config import HostThresholds

__all__ = ["DiskUsage", "HostMetrics", "host_metrics"]


@dataclass(frozen=True)
class DiskUsage:
    mount: str
    percent: float
    used_bytes: int
    total_bytes: int


@dataclass(frozen=True)
class HostMetrics:
    at: datetime
    hostname: str
    cpu_count: int
    cpu_percent: float
    load: tuple[float, float, float]
    load_per_cpu: float
    memory_percent: float
    disks: list[DiskUsage]
    net_sent_bytes_per_s: float
    net_recv_bytes_per_s: float
    problems: list[str] = field(default_factory=list)

    @property
    def state(self) -> str:
        return "degraded" if self.problems else "ok"

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["at"] = self.at.isoformat()
        data["state"] = self.state
        return data


def host_metrics(thresholds: HostThresholds, *, interval: float = 0.5) -> HostMetrics:
    """Sample CPU and network over ``interval`` seconds (blocking; use a thread in async code)."""
    import psutil

    psutil.cpu_percent(None)
    net0 = psutil.net_io_counters()
    t0 = time.monotonic()
    time.sleep(interval)
    cpu = psutil.cpu_percent(None)
    net1 = psutil.net_io_counters()
    dt = max(time.monotonic() - t0, 1e-6)
    ncpu = psutil.cpu_count() or 1
    load = os.getloadavg()
    mem = psutil.virtual_memory().percent
    disks: list[DiskUsage] = []
    seen: set[str] = set()
    for part in psutil.disk_partitions(all=False):
        if part.mountpoint in seen:
            continue
        seen.add(part.mountpoint)
        try:
            u = psutil.disk_usage(part.mountpoint)
        except OSError:
            continue
        disks.append(DiskUsage(part.mountpoint, u.percent, u.used, u.total))
    problems = []
    if cpu > thresholds.cpu_percent:
        problems.append(f"CPU {cpu:.0f}% > {thresholds.cpu_percent:g}%")
    if load[0] / ncpu > thresholds.load_per_cpu:
        problems.append(
            f"load {load[0]:.2f} per CPU {load[0] / ncpu:.2f} > {thresholds.load_per_cpu:g}"
        )
    if mem > thresholds.memory_percent:
        problems.append(f"memory {mem:.0f}% > {thresholds.memory_percent:g}%")
    for d in disks:
        if d.percent > thresholds.disk_percent:
            problems.append(f"disk {d.mount} {d.percent:.0f}% > {thresholds.disk_percent:g}%")
    return HostMetrics(
        at=utcnow(),
        hostname=os.uname().nodename,
        cpu_count=ncpu,
        cpu_percent=cpu,
        load=(round(load[0], 2), round(load[1], 2), round(load[2], 2)),
        load_per_cpu=round(load[0] / ncpu, 2),
        memory_percent=mem,
        disks=disks,
        net_sent_bytes_per_s=round((net1.bytes_sent - net0.bytes_sent) / dt, 1),
        net_recv_bytes_per_s=round((net1.bytes_recv - net0.bytes_recv) / dt, 1),
        problems=problems,
    )
