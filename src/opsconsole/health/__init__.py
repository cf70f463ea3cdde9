"""Live health: probes, the monitor, rolling statistics, stored samples, host metrics.

Plain Python, no UI imports. Importing the package is cheap; submodules load httpx etc.
Public API: :class:`Monitor` (monitor.py), :class:`Snapshot` and the status/event types
(model.py), :func:`check` (one sweep), :func:`host_metrics` (host.py).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from opsconsole.config import Config
    from opsconsole.health.model import Snapshot

__all__ = [
    "Monitor",
    "ProbeResult",
    "Snapshot",
    "StateChanged",
    "SweepCompleted",
    "check",
    "host_metrics",
]

_LAZY = {
    "Monitor": "opsconsole.health.monitor",
    "Snapshot": "opsconsole.health.model",
    "ProbeResult": "opsconsole.health.model",
    "StateChanged": "opsconsole.health.model",
    "SweepCompleted": "opsconsole.health.model",
    "host_metrics": "opsconsole.health.host",
}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(name)


async def check(
    config: Config,
    *,
    region: str | None = None,
    service: str | None = None,
    db: Any = None,
    audit: Any = None,
    bus: Any = None,
) -> Snapshot:
    """One sweep (continuing the stored hysteresis state when ``db`` is given): what
    ``opsconsole status`` and a runbook's health gate use."""
    from opsconsole.health.monitor import Monitor

    async with Monitor(config, db=db, audit=audit, bus=bus, region=region, service=service) as mon:
        await mon.restore()
        return await mon.sweep()
