"""``health`` (check once) and ``wait_until`` (poll until true or timeout): gate on the
live health of a region or one of its services.

``view: direct`` runs the health monitor itself (:class:`opsconsole.health.Monitor`): the
same probes (HTTP, TCP, SSH, Prometheus sources; TLS with ``ca_file``), the same
hysteresis, continued from the samples ``status`` and the console stored, and the same
roll-up — so "down" means exactly what ``status`` and the dashboard say: a region is down
when any of its critical services is down. ``expect: up`` holds when the state is ``ok``,
``expect: down`` when it is ``down`` (degraded or flapping is neither). ``health`` sweeps
until no target is between states (failures short of ``down_after``, a recovery short of
``recover_after``), so one check gives the settled verdict; ``wait_until`` sweeps every
``interval``. The samples are stored like any other monitor's (not in a dry run).

``view: customer`` asks the traffic router how a customer of the region is served now
(``GET {router}/serve/{region}/{service}/healthz``, 2xx = up) through the monitor's HTTP
prober.
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, Any

from opsconsole.runbooks.schema import HealthAction
from opsconsole.runbooks.steps import Outcome, StepContext
from opsconsole.templating import render as render_text

if TYPE_CHECKING:
    from opsconsole.health.model import Snapshot

__all__ = ["WaitUntil", "execute", "render"]

PROBE_TIMEOUT = 5.0
DEFAULT_WAIT = 300.0


def render(spec: HealthAction, tctx: dict[str, Any]) -> dict[str, Any]:
    router = spec.router_url
    if router is None and spec.view == "customer":
        router = "{{ inventory.vars.router_url }}"
    return {
        "region": render_text(spec.region, tctx),
        "service": render_text(spec.service, tctx) if spec.service else None,
        "expect": spec.expect,
        "view": spec.view,
        "router_url": render_text(router, tctx).rstrip("/") if router else None,
        "interval": spec.interval,
        "consecutive": spec.consecutive,
    }


Services = dict[str, dict[str, Any]]


class _Direct:
    """The health monitor for one region (or service), kept across polls."""

    def __init__(self, rendered: dict[str, Any], ctx: StepContext) -> None:
        from opsconsole.health.monitor import Monitor

        env = ctx.env
        self.region, self.service = rendered["region"], rendered["service"]
        self.interval = rendered["interval"]
        self.mon = Monitor(
            env.config,
            db=env.db,
            audit=None if ctx.dry_run else env.audit,
            region=self.region,
            service=self.service,
            notify=not ctx.dry_run,
            persist=not ctx.dry_run,
        )
        self.restored = False

    async def poll(self, settle: bool) -> tuple[str, Services]:
        mon = self.mon
        if not self.restored:
            self.restored = True
            await mon.restore()
        snap = await mon.sweep()
        h = mon.settings.hysteresis
        extra = h.down_after + h.recover_after
        while settle and extra > 0 and mon.transitional():
            extra -= 1
            await asyncio.sleep(self.interval)
            snap = await mon.sweep()
        return self._verdict(snap)

    def _verdict(self, snap: Snapshot) -> tuple[str, Services]:
        region = snap.regions[self.region]
        services: Services = {}
        for sid, svc in region.services.items():
            detail = svc.last_error if svc.state != "ok" and svc.last_error else None
            if detail is None and svc.p50 is not None:
                detail = f"p50 {svc.p50:.0f} ms"
            services[sid] = {"up": svc.state == "ok", "state": svc.state, "detail": detail or ""}
        if self.service is not None:
            return region.services[self.service].state, services
        return region.state, services

    async def aclose(self) -> None:
        await self.mon.aclose()


class _Customer:
    """The router's customer view, through the monitor's HTTP prober."""

    def __init__(self, rendered: dict[str, Any], ctx: StepContext) -> None:
        from opsconsole.config import Endpoint
        from opsconsole.health.model import Target
        from opsconsole.health.probes import HttpProbe

        if not rendered["router_url"]:
            raise ValueError("view: customer needs router_url (or inventory.vars.router_url)")
        region_id = rendered["region"]
        region = ctx.env.config.inventory.regions[region_id]
        sids = [rendered["service"]] if rendered["service"] else list(region.services)
        self.targets = []
        for sid in sids:
            url = f"{rendered['router_url']}/serve/{region_id}/{sid}/healthz"
            ep = Endpoint.model_validate({"url": url, "expect": {"status": "200-299"}})
            self.targets.append(
                Target(
                    id=f"{region_id}/{sid}/customer",
                    region=region_id,
                    service=sid,
                    endpoint="customer",
                    kind="http",
                    host_key=url,
                    timeout=PROBE_TIMEOUT,
                    latency_threshold_ms=float("inf"),
                    spec=ep,
                )
            )
        self.probe = HttpProbe(ctx.env.config, max_connections=len(self.targets))

    async def poll(self, settle: bool) -> tuple[str, Services]:
        outcomes = await asyncio.gather(*(self.probe.check(t) for t in self.targets))
        services: Services = {}
        for t, o in zip(self.targets, outcomes, strict=True):
            detail = str(o.status_code) if o.status_code is not None else (o.error or "")
            services[t.service] = {"up": o.ok, "state": "ok" if o.ok else "down", "detail": detail}
        ups = {s["up"] for s in services.values()}
        state = "ok" if ups == {True} else "down" if ups == {False} else "degraded"
        return state, services

    async def aclose(self) -> None:
        await self.probe.aclose()


def _check(rendered: dict[str, Any], ctx: StepContext) -> _Direct | _Customer:
    inv = ctx.env.config.inventory
    region_id = rendered["region"]
    if region_id not in inv.regions:
        raise ValueError(f"unknown region {region_id!r}")
    sid = rendered["service"]
    if sid is not None and sid not in inv.regions[region_id].services:
        raise ValueError(f"region {region_id} has no service {sid!r}")
    if rendered["view"] == "customer":
        return _Customer(rendered, ctx)
    return _Direct(rendered, ctx)


def _describe(state: str, services: Services) -> str:
    parts = [
        f"{s} {r['state']}" + (f" ({r['detail']})" if r["detail"] else "")
        for s, r in services.items()
    ]
    return f"{state}: " + ", ".join(parts)


async def execute(rendered: dict[str, Any], ctx: StepContext, *, wait: bool = False) -> Outcome:
    target = rendered["region"] + (f"/{rendered['service']}" if rendered["service"] else "")
    want = "ok" if rendered["expect"] == "up" else "down"
    try:
        check = _check(rendered, ctx)
    except ValueError as exc:
        return Outcome("failed", {}, "", str(exc))
    streak = 0
    polls = 0
    try:
        while True:
            state, services = await check.poll(settle=not wait and polls == 0)
            polls += 1
            streak = streak + 1 if state == want else 0
            line = f"{target}: {_describe(state, services)}"
            if rendered["consecutive"] > 1 and streak:
                line += f" (check {streak} of {rendered['consecutive']} in a row)"
            ctx.emit(line, "stdout", None)
            value = {"state": state, "services": services, "up": state == "ok", "polls": polls}
            if streak >= rendered["consecutive"]:
                return Outcome("succeeded", value, line)
            if not wait or ctx.dry_run:
                if streak > 0:  # needs more agreeing checks in a row
                    await asyncio.sleep(rendered["interval"])
                    continue
                return Outcome(
                    "failed",
                    value,
                    line,
                    f"{target} is not {rendered['expect']}: {_describe(state, services)}",
                )
            await asyncio.sleep(rendered["interval"])
    finally:
        await check.aclose()


class WaitUntil:
    """``wait_until``: poll until the state holds; the step timeout (default 300 s) bounds it."""

    render = staticmethod(render)
    default_timeout = DEFAULT_WAIT

    @staticmethod
    async def execute(rendered: dict[str, Any], ctx: StepContext) -> Outcome:
        return await execute(rendered, ctx, wait=True)
