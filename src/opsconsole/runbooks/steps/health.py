"""``health`` (check once) and ``wait_until`` (poll until true or timeout): gate on the
live health of a region or one of its services.

``view: direct`` probes the inventory's endpoints of each service (HTTP: the endpoint's
expected status and body; TCP: a connect). ``view: customer`` asks the traffic router how
a customer of the region is served now: ``GET {router}/serve/{region}/{service}/healthz``.
"""

from __future__ import annotations

import asyncio
from typing import Any

from opsconsole.runbooks.schema import HealthAction
from opsconsole.runbooks.steps import Outcome, StepContext
from opsconsole.templating import render as render_text

__all__ = ["WaitUntil", "execute", "probe_once", "render"]

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


async def _http_ok(client: Any, url: str, endpoint: Any = None) -> tuple[bool, str]:
    import httpx

    try:
        resp = await client.get(url)
    except httpx.HTTPError as exc:
        return False, f"{type(exc).__name__}"
    if endpoint is not None:
        expect = endpoint.expect
        ok = expect.status_ok(resp.status_code)
        if ok and expect.body_contains and expect.body_contains not in resp.text:
            ok = False
        if ok and expect.json_equals:
            from opsconsole.runbooks.steps.http import json_path

            try:
                body = resp.json()
            except ValueError:
                body = None
            ok = all(json_path(body, k) == v for k, v in expect.json_equals.items())
    else:
        ok = 200 <= resp.status_code < 300
    return ok, str(resp.status_code)


async def _tcp_ok(target: str) -> tuple[bool, str]:
    host, _, port = target.rpartition(":")
    try:
        _, writer = await asyncio.wait_for(asyncio.open_connection(host, int(port)), PROBE_TIMEOUT)
    except (OSError, TimeoutError) as exc:
        return False, type(exc).__name__
    writer.close()
    return True, "connected"


async def probe_once(rendered: dict[str, Any], ctx: StepContext) -> dict[str, dict[str, Any]]:
    """{service: {"up": bool, "detail": str}} for the selected services."""
    import httpx

    inv = ctx.env.config.inventory
    region_id = rendered["region"]
    if region_id not in inv.regions:
        raise ValueError(f"unknown region {region_id!r}")
    region = inv.regions[region_id]
    services = [rendered["service"]] if rendered["service"] else list(region.services)
    for sid in services:
        if sid not in region.services:
            raise ValueError(f"region {region_id} has no service {sid!r}")
    results: dict[str, dict[str, Any]] = {}
    async with httpx.AsyncClient(timeout=PROBE_TIMEOUT) as client:
        for sid in services:
            if rendered["view"] == "customer":
                if not rendered["router_url"]:
                    raise ValueError(
                        "view: customer needs router_url (or inventory.vars.router_url)"
                    )
                ok, detail = await _http_ok(
                    client, f"{rendered['router_url']}/serve/{region_id}/{sid}/healthz"
                )
                results[sid] = {"up": ok, "detail": detail}
                continue
            checks = []
            for ep in region.services[sid].endpoints:
                if ep.url is not None:
                    checks.append(await _http_ok(client, str(ep.url), ep))
                elif ep.tcp is not None:
                    checks.append(await _tcp_ok(ep.tcp))
            up = all(ok for ok, _ in checks) if checks else False
            results[sid] = {"up": up, "detail": ", ".join(d for _, d in checks)}
    return results


def _matches(results: dict[str, dict[str, Any]], expect: str) -> bool:
    want_up = expect == "up"
    return all(r["up"] == want_up for r in results.values())


def _describe(results: dict[str, dict[str, Any]]) -> str:
    return ", ".join(
        f"{s} {'up' if r['up'] else 'down'} ({r['detail']})" for s, r in results.items()
    )


async def execute(rendered: dict[str, Any], ctx: StepContext, *, wait: bool = False) -> Outcome:
    target = rendered["region"] + (f"/{rendered['service']}" if rendered["service"] else "")
    streak = 0
    polls = 0
    while True:
        try:
            results = await probe_once(rendered, ctx)
        except ValueError as exc:
            return Outcome("failed", {}, "", str(exc))
        polls += 1
        streak = streak + 1 if _matches(results, rendered["expect"]) else 0
        line = f"{target}: {_describe(results)}"
        if rendered["consecutive"] > 1 and streak:
            line += f" (check {streak} of {rendered['consecutive']} in a row)"
        ctx.emit(line, "stdout", None)
        value = {"services": results, "up": all(r["up"] for r in results.values()), "polls": polls}
        if streak >= rendered["consecutive"]:
            return Outcome("succeeded", value, line)
        if not wait or ctx.dry_run:
            if streak > 0:  # needs more agreeing checks in a row
                await asyncio.sleep(rendered["interval"])
                continue
            return Outcome(
                "failed", value, line, f"{target} is not {rendered['expect']}: {_describe(results)}"
            )
        await asyncio.sleep(rendered["interval"])


class WaitUntil:
    """``wait_until``: poll until the state holds; the step timeout (default 300 s) bounds it."""

    render = staticmethod(render)
    default_timeout = DEFAULT_WAIT

    @staticmethod
    async def execute(rendered: dict[str, Any], ctx: StepContext) -> Outcome:
        return await execute(rendered, ctx, wait=True)
