"""The simulated deployment's state: regions, services, routes, faults, quarantine, keys.

Plain Python with no I/O, so the servers, the ledger writer and the tests share one
model. Every mutation happens on the demo's event loop thread except the ledger
primary map, which the ledger thread reads (a dict read is atomic enough for a demo).
"""

from __future__ import annotations

import random
import secrets
import time
from dataclasses import dataclass, field
from typing import Any, Literal

__all__ = [
    "FAULT_MODES",
    "REGIONS",
    "SERVICES",
    "Fault",
    "FaultMode",
    "RegionSpec",
    "Reply",
    "ServiceSpec",
    "Simulation",
]

FaultMode = Literal["down", "slow", "errors", "flap", "clear"]
FAULT_MODES: tuple[str, ...] = ("down", "slow", "errors", "flap", "clear")


@dataclass(frozen=True)
class RegionSpec:
    name: str
    timezone: str
    standby: str
    base_latency_ms: float


@dataclass(frozen=True)
class ServiceSpec:
    critical: bool
    latency_factor: float
    objective_latency_ms: float


REGIONS: dict[str, RegionSpec] = {
    "ap-southeast-1": RegionSpec("Singapore", "Asia/Singapore", "ap-south-1", 6.0),
    "ap-south-1": RegionSpec("Mumbai", "Asia/Kolkata", "ap-southeast-1", 12.0),
    "sa-east-1": RegionSpec("Sao Paulo", "America/Sao_Paulo", "eu-central-1", 18.0),
    "eu-central-1": RegionSpec("Frankfurt", "Europe/Berlin", "sa-east-1", 9.0),
}
SERVICES: dict[str, ServiceSpec] = {
    "gateway": ServiceSpec(critical=True, latency_factor=1.0, objective_latency_ms=500),
    "payments": ServiceSpec(critical=True, latency_factor=1.5, objective_latency_ms=600),
    "lending": ServiceSpec(critical=False, latency_factor=2.0, objective_latency_ms=800),
}


@dataclass
class Fault:
    region: str
    service: str
    mode: FaultMode
    value: float | None = None
    requests: int = 0

    def as_dict(self) -> dict[str, Any]:
        return {
            "region": self.region,
            "service": self.service,
            "mode": self.mode,
            "value": self.value,
        }


@dataclass(frozen=True)
class Reply:
    """What a service answers: after ``delay_s``, ``status`` with a JSON ``body``."""

    status: int
    body: dict[str, Any]
    delay_s: float


@dataclass
class Simulation:
    """Everything the router's admin API can read and change."""

    api_key: str = field(default_factory=lambda: secrets.token_urlsafe(24))
    routes: dict[str, dict[str, str]] = field(
        default_factory=lambda: {r: {s: r for s in SERVICES} for r in REGIONS}
    )
    quarantined: set[tuple[str, str]] = field(default_factory=set)
    ledger_primary: dict[str, str] = field(default_factory=lambda: {r: r for r in REGIONS})
    faults: dict[tuple[str, str], Fault] = field(default_factory=dict)
    webhooks: list[dict[str, Any]] = field(default_factory=list)
    rng: random.Random = field(default_factory=random.Random)

    # -- validation helpers ---------------------------------------------------------

    @staticmethod
    def check_region(region: str) -> None:
        if region not in REGIONS:
            raise KeyError(f"unknown region {region!r} (known: {', '.join(REGIONS)})")

    @staticmethod
    def check_service(service: str) -> None:
        if service not in SERVICES:
            raise KeyError(f"unknown service {service!r} (known: {', '.join(SERVICES)})")

    # -- routes, quarantine, keys ------------------------------------------------------

    def route(self, region: str, serve_from: str, service: str | None = None) -> None:
        self.check_region(region)
        self.check_region(serve_from)
        services = [service] if service else list(SERVICES)
        for s in services:
            self.check_service(s)
            self.routes[region][s] = serve_from

    def quarantine(self, region: str, service: str, on: bool) -> None:
        self.check_region(region)
        self.check_service(service)
        if on:
            self.quarantined.add((region, service))
        else:
            self.quarantined.discard((region, service))

    def rotate_key(self) -> str:
        self.api_key = secrets.token_urlsafe(24)
        return self.api_key

    def routes_view(self) -> dict[str, Any]:
        return {
            "routes": {r: dict(s) for r, s in self.routes.items()},
            "quarantined": [list(q) for q in sorted(self.quarantined)],
            "ledger_primary": dict(self.ledger_primary),
        }

    # -- faults -----------------------------------------------------------------------

    def set_fault(
        self, region: str, service: str | None, mode: str, value: float | None
    ) -> list[Fault]:
        """Apply a fault to one service, or to every service of the region."""
        self.check_region(region)
        if mode not in FAULT_MODES:
            raise KeyError(f"unknown fault mode {mode!r} (known: {', '.join(FAULT_MODES)})")
        services = [service] if service else list(SERVICES)
        for s in services:
            self.check_service(s)
        out = []
        for s in services:
            if mode == "clear":
                self.faults.pop((region, s), None)
                continue
            if mode == "slow" and (value is None or value < 0):
                raise ValueError("slow needs a value: milliseconds of added latency")
            if mode == "errors" and (value is None or not 0 <= value <= 100):
                raise ValueError("errors needs a value: percent of requests that fail (0-100)")
            fault = Fault(region, s, mode, value)  # type: ignore[arg-type]
            self.faults[(region, s)] = fault
            out.append(fault)
        return out

    def faults_view(self) -> dict[str, Any]:
        return {"faults": [f.as_dict() for _, f in sorted(self.faults.items())]}

    # -- answering --------------------------------------------------------------------

    def latency_s(self, region: str, service: str) -> float:
        spec = REGIONS[region]
        ms = spec.base_latency_ms * SERVICES[service].latency_factor
        ms *= self.rng.lognormvariate(0, 0.3)
        return min(ms, spec.base_latency_ms * 10) / 1000

    def reply(self, region: str, service: str) -> Reply:
        """How the ``service`` of ``region`` answers a health check right now."""
        delay = self.latency_s(region, service)
        body: dict[str, Any] = {
            "status": "ok",
            "region": region,
            "service": service,
            "time": time.time(),
        }
        fault = self.faults.get((region, service))
        if fault is None:
            return Reply(200, body, delay)
        fault.requests += 1
        failed = False
        if fault.mode == "down":
            failed = True
        elif fault.mode == "slow":
            delay += (fault.value or 0) / 1000
        elif fault.mode == "errors":
            failed = self.rng.random() * 100 < (fault.value or 0)
        elif fault.mode == "flap":
            # Every other request fails: hysteresis should keep this from going down.
            failed = fault.requests % 2 == 0
        if failed:
            return Reply(
                503,
                {
                    "status": "error",
                    "region": region,
                    "service": service,
                    "error": f"fault injected: {fault.mode}",
                },
                delay,
            )
        return Reply(200, body, delay)

    def serve(self, region: str, service: str) -> Reply:
        """Health as a customer of ``region`` sees it: follows the route, honours quarantine."""
        self.check_region(region)
        self.check_service(service)
        if (region, service) in self.quarantined:
            return Reply(503, {"status": "quarantined", "region": region, "service": service}, 0)
        serving = self.routes[region][service]
        rep = self.reply(serving, service)
        body = dict(rep.body, served_by=serving, region=region)
        return Reply(rep.status, body, rep.delay_s)
