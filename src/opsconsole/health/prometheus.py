"""A second health source: blackbox_exporter metrics read from a Prometheus HTTP API.

For fleets too large to probe from one machine: each region runs blackbox_exporter,
Prometheus scrapes it, and the console reads ``probe_success`` and
``probe_duration_seconds`` for the region (``Region.prometheus_url``). Each series becomes
a target ``region/<service>/<instance>``: service from the ``service`` label (else
``job``); series with a ``region`` label other than this region are ignored. If the
Prometheus API itself fails, the pseudo-target ``region/prometheus/api`` fails, so a dead
source is visible rather than silent.
"""

from __future__ import annotations

import re
from typing import Any

import httpx

from opsconsole.health.model import Outcome, Target

__all__ = ["PrometheusSource"]


def _slug(text: str) -> str:
    return re.sub(r"[^a-z0-9_.-]+", "-", text.lower()).strip("-") or "x"


class PrometheusSource:
    def __init__(
        self,
        region: str,
        url: str,
        *,
        timeout: float,
        latency_threshold_ms: float = 500,
        critical_services: set[str] | None = None,
        client: httpx.AsyncClient | None = None,
    ) -> None:
        self.region = region
        self.url = url.rstrip("/")
        self.timeout = timeout
        self.threshold = latency_threshold_ms
        self.critical = critical_services or set()
        self._client = client or httpx.AsyncClient(trust_env=False)

    def _target(self, service: str, endpoint: str) -> Target:
        return Target(
            id=f"{self.region}/{service}/{endpoint}",
            region=self.region,
            service=service,
            endpoint=endpoint,
            kind="prometheus",
            host_key=self.url,
            timeout=self.timeout,
            latency_threshold_ms=self.threshold,
            critical=service in self.critical,
        )

    async def _query(self, expr: str) -> list[dict[str, Any]]:
        resp = await self._client.get(
            f"{self.url}/api/v1/query", params={"query": expr}, timeout=self.timeout
        )
        resp.raise_for_status()
        data = resp.json()
        if data.get("status") != "success":
            raise ValueError(f"Prometheus error: {data.get('error', data)}")
        return list(data["data"]["result"])

    async def collect(self) -> list[tuple[Target, Outcome]]:
        from opsconsole.health.probes import describe_error

        try:
            success = await self._query("probe_success")
            duration = await self._query("probe_duration_seconds")
        except Exception as exc:
            return [
                (
                    self._target("prometheus", "api"),
                    Outcome(ok=False, latency_ms=None, error=describe_error(exc, self.timeout)),
                )
            ]

        def key(series: dict[str, Any]) -> tuple[str, str] | None:
            labels = series.get("metric", {})
            if labels.get("region", self.region) != self.region:
                return None
            service = labels.get("service") or labels.get("job") or "blackbox"
            return _slug(service), _slug(labels.get("instance", "target"))

        durations = {}
        for s in duration:
            k = key(s)
            if k is not None:
                durations[k] = float(s["value"][1]) * 1000
        out: list[tuple[Target, Outcome]] = []
        for s in success:
            k = key(s)
            if k is None:
                continue
            ok = float(s["value"][1]) >= 1
            lat = durations.get(k)
            out.append(
                (
                    self._target(*k),
                    Outcome(
                        ok=ok,
                        latency_ms=lat if ok else None,
                        error=None if ok else "blackbox probe_success = 0",
                        slow=ok and lat is not None and lat > self.threshold,
                    ),
                )
            )
        return out

    async def aclose(self) -> None:
        await self._client.aclose()
