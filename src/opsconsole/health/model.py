"""What the health capability talks about: targets, probe outcomes, states, snapshots, events."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any, Literal
from urllib.parse import urlsplit

from opsconsole.events import Event

if TYPE_CHECKING:
    from opsconsole.config import Config, Endpoint

__all__ = [
    "STATE_ORDER",
    "STATE_SYMBOL",
    "HealthState",
    "Outcome",
    "ProbeResult",
    "RegionStatus",
    "Sample",
    "ServiceStatus",
    "Snapshot",
    "StateChanged",
    "SweepCompleted",
    "Target",
    "TargetHistory",
    "TargetStatus",
    "targets_from_config",
    "worst",
]

HealthState = Literal["unknown", "ok", "degraded", "flapping", "down"]
# ``flapping``: the probe result keeps changing (see stats.py); worse than degraded,
# never "down" (a failover gate waits for down, not for a flapping region).
STATE_ORDER: dict[str, int] = {"unknown": 0, "ok": 1, "degraded": 2, "flapping": 3, "down": 4}
# A word and a symbol, never colour alone.
STATE_SYMBOL: dict[str, str] = {
    "unknown": "?",
    "ok": "✔",
    "degraded": "▲",
    "flapping": "↕",
    "down": "✖",
}


def worst(states: list[str]) -> HealthState:
    """The worst of some states (``unknown`` only when there is nothing else)."""
    known = [s for s in states if s != "unknown"]
    if not known:
        return "unknown"
    return max(known, key=STATE_ORDER.__getitem__)  # type: ignore[return-value]


@dataclass(frozen=True)
class Target:
    """One thing the monitor checks. ``host_key`` groups targets for the per-host limit."""

    id: str  # region/service/endpoint
    region: str
    service: str
    endpoint: str
    kind: Literal["http", "tcp", "ssh", "prometheus"]
    host_key: str
    timeout: float
    latency_threshold_ms: float
    critical: bool = True
    spec: Endpoint | None = None


@dataclass(frozen=True, slots=True)
class Outcome:
    """The result of one probe. ``slow``: it succeeded above the latency threshold."""

    ok: bool
    latency_ms: float | None
    error: str | None = None
    status_code: int | None = None
    slow: bool = False
    phases: dict[str, float | None] | None = None
    timed_out: bool = False  # the probe gave up after its timeout (latency_ms is None)


@dataclass(frozen=True, slots=True)
class Sample:
    """One stored probe result of a target (the drill-down's rows)."""

    at: datetime
    ok: bool
    slow: bool
    latency_ms: float | None
    error: str | None = None
    timed_out: bool = False
    status_code: int | None = None


@dataclass(frozen=True)
class TargetHistory:
    """A target's samples (oldest first) and their latency spread.

    Percentiles count a timed-out probe as taking its timeout (``timeout_s``): the real
    latency is at least that, and leaving timeouts out would make p95 look best exactly
    when the endpoint is slowest. Other failures (refused, DNS, HTTP 5xx) have no latency
    that says anything about the endpoint's speed; they count in ``failures`` only.
    """

    target: str
    samples: tuple[Sample, ...]
    timeout_s: float
    min_ms: float | None
    p50: float | None
    p95: float | None
    p99: float | None
    max_ms: float | None
    failures: int
    timeouts: int

    @property
    def availability(self) -> float | None:
        n = len(self.samples)
        return round(100 * (n - self.failures) / n, 2) if n else None


def _host_key(ep: Endpoint) -> str:
    if ep.url is not None:
        parts = urlsplit(str(ep.url))
        return parts.netloc.rsplit("@", 1)[-1]
    if ep.tcp is not None:
        return ep.tcp
    assert ep.ssh is not None
    return f"ssh:{ep.ssh.host}"


def targets_from_config(
    config: Config, *, region: str | None = None, service: str | None = None
) -> list[Target]:
    """Every endpoint of the inventory (optionally one region / service) as a Target."""
    default_timeout = config.settings.probe.timeout_seconds
    out: list[Target] = []
    for rid, reg in config.inventory.regions.items():
        if region is not None and rid != region:
            continue
        for sid, svc in reg.services.items():
            if service is not None and sid != service:
                continue
            for i, ep in enumerate(svc.endpoints):
                name = ep.name if ep.name != "default" or len(svc.endpoints) == 1 else f"e{i}"
                out.append(
                    Target(
                        id=f"{rid}/{sid}/{name}",
                        region=rid,
                        service=sid,
                        endpoint=name,
                        kind=ep.kind,
                        host_key=_host_key(ep),
                        timeout=ep.timeout_seconds or default_timeout,
                        latency_threshold_ms=ep.latency_threshold_ms or svc.objectives.latency_ms,
                        critical=svc.critical,
                        spec=ep,
                    )
                )
    return out


@dataclass(frozen=True)
class TargetStatus:
    id: str
    region: str
    service: str
    endpoint: str
    kind: str
    state: HealthState
    since: datetime | None
    samples: int
    p50: float | None
    p95: float | None
    p99: float | None
    availability: float | None  # percent of samples that succeeded
    error_rate: float | None  # percent of samples that failed
    last_error: str | None
    last_latency_ms: float | None
    last_checked: datetime | None
    phases: dict[str, float | None] | None = None
    history: tuple[float | None, ...] = ()  # recent latencies, None = failed
    timeouts: int = 0  # timed-out probes in the window (counted in p50/p95/p99, see TargetHistory)
    min_ms: float | None = None
    max_ms: float | None = None
    flapping: bool = False  # state is "flapping" (the underlying state is in ``settled``)
    settled: HealthState | None = None  # the hysteresis state beneath "flapping"


@dataclass(frozen=True)
class ServiceStatus:
    region: str
    service: str
    critical: bool
    state: HealthState
    since: datetime | None
    targets: tuple[TargetStatus, ...]
    p50: float | None
    p95: float | None
    availability: float | None
    last_error: str | None
    history: tuple[float | None, ...] = ()


@dataclass(frozen=True)
class RegionStatus:
    region: str
    name: str
    state: HealthState
    since: datetime | None
    services: dict[str, ServiceStatus]


@dataclass(frozen=True)
class Snapshot:
    """The current state of everything the monitor watches, after a sweep."""

    at: datetime
    regions: dict[str, RegionStatus]
    sweep_seconds: float | None = None
    sweeps: int = 0

    @property
    def state(self) -> HealthState:
        return worst([s.state for r in self.regions.values() for s in r.services.values()])

    @property
    def exit_code(self) -> int:
        """0 all ok, 1 something degraded or flapping, 2 something down (``status``'s
        contract)."""
        return {"down": 2, "degraded": 1, "flapping": 1}.get(self.state, 0)

    def services(self) -> list[ServiceStatus]:
        return [s for r in self.regions.values() for s in r.services.values()]

    def targets(self) -> list[TargetStatus]:
        return [t for s in self.services() for t in s.targets]

    def service(self, region: str, service: str) -> ServiceStatus:
        return self.regions[region].services[service]

    def to_dict(self) -> dict[str, Any]:
        from dataclasses import asdict

        def conv(obj: Any) -> Any:
            if isinstance(obj, datetime):
                return obj.isoformat()
            if isinstance(obj, dict):
                return {k: conv(v) for k, v in obj.items()}
            if isinstance(obj, list | tuple):
                return [conv(v) for v in obj]
            return obj

        return {
            "at": self.at.isoformat(),
            "state": self.state,
            "exit_code": self.exit_code,
            "sweep_seconds": self.sweep_seconds,
            "regions": {k: conv(asdict(v)) for k, v in self.regions.items()},
        }


# --- events ---------------------------------------------------------------------------


@dataclass(frozen=True, kw_only=True)
class ProbeResult(Event):
    target: str
    region: str
    service: str
    endpoint: str
    ok: bool
    slow: bool
    latency_ms: float | None
    error: str | None
    status_code: int | None = None
    phases: dict[str, float | None] | None = None
    timed_out: bool = False


@dataclass(frozen=True, kw_only=True)
class StateChanged(Event):
    """A target, service or region changed state. Service and region changes are
    audited (``health.state_changed``) and posted to webhooks."""

    level: Literal["target", "service", "region"]
    key: str  # region, region/service or region/service/endpoint
    region: str
    service: str | None
    old: str
    new: str
    reason: str | None = None


@dataclass(frozen=True, kw_only=True)
class SweepCompleted(Event):
    snapshot: Snapshot = field(repr=False)
