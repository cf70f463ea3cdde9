"""The demo's HTTP servers (aiohttp): one app for every service port, one for the router.

Every service listens on its own port; the service app finds out which region/service
it is from the local port of the connection, so twelve ports share one app and one
event loop.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import IO, Any

from aiohttp import web

from opsconsole.demo.ledger import LedgerWriter
from opsconsole.demo.sim import REGIONS, Reply, Simulation

__all__ = ["AccessLogs", "router_app", "service_app"]

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


class AccessLogs:
    """``logs/<region>-<service>.log``: one line per request, kept open, line-buffered."""

    def __init__(self, log_dir: Path) -> None:
        self.dir = log_dir
        self._files: dict[tuple[str, str], IO[str]] = {}

    def write(
        self, region: str, service: str, request: web.Request, status: int, ms: float
    ) -> None:
        fh = self._files.get((region, service))
        if fh is None:
            fh = (self.dir / f"{region}-{service}.log").open("a", encoding="utf-8", buffering=1)
            self._files[(region, service)] = fh
        ts = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime())
        ua = request.headers.get("User-Agent", "-").replace('"', "'")
        fh.write(
            f'{ts}Z {request.remote} "{request.method} {request.path_qs}" {status} '
            f'{ms:.1f}ms ua="{ua}"\n'
        )

    def close(self) -> None:
        for fh in self._files.values():
            fh.close()
        self._files.clear()


async def _answer(rep: Reply) -> web.Response:
    if rep.delay_s > 0:
        await asyncio.sleep(rep.delay_s)
    return web.json_response(rep.body, status=rep.status)


def service_app(
    sim: Simulation, by_port: dict[int, tuple[str, str]], logs: AccessLogs
) -> web.Application:
    """The app behind every service port."""

    async def healthz(request: web.Request) -> web.StreamResponse:
        sockname = request.transport.get_extra_info("sockname") if request.transport else None
        key = by_port.get(sockname[1]) if sockname else None
        if key is None:
            return web.json_response({"error": "unknown port"}, status=404)
        t0 = time.perf_counter()
        resp = await _answer(sim.reply(*key))
        logs.write(*key, request, resp.status, (time.perf_counter() - t0) * 1000)
        return resp

    app = web.Application()
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/", healthz)
    return app


def _error(status: int, message: str) -> web.Response:
    return web.json_response({"error": message}, status=status)


async def _json_body(request: web.Request) -> dict[str, Any]:
    if not request.can_read_body:
        return {}
    try:
        data = await request.json()
    except (json.JSONDecodeError, UnicodeDecodeError):
        raise web.HTTPBadRequest(
            text=json.dumps({"error": "body is not JSON"}), content_type="application/json"
        ) from None
    if not isinstance(data, dict):
        raise web.HTTPBadRequest(
            text=json.dumps({"error": "body must be a JSON object"}),
            content_type="application/json",
        )
    return data


def router_app(
    sim: Simulation,
    ledger: LedgerWriter,
    logs: AccessLogs,
    *,
    on_key_rotated: Callable[[str], None],
) -> web.Application:
    """The traffic router's admin API."""

    @web.middleware
    async def auth_and_errors(request: web.Request, handler: Handler) -> web.StreamResponse:
        # Mutating calls need the API key, except the webhook sink (notifiers post there
        # without credentials).
        needs_key = request.method not in ("GET", "HEAD") and request.path != "/webhook"
        if needs_key and request.headers.get("Authorization", "") != f"Bearer {sim.api_key}":
            return _error(401, "missing or wrong API key (Authorization: Bearer <key>)")
        try:
            return await handler(request)
        except KeyError as exc:
            return _error(404, str(exc.args[0]) if exc.args else "not found")
        except ValueError as exc:
            return _error(400, str(exc))

    async def get_routes(request: web.Request) -> web.Response:
        return web.json_response(sim.routes_view())

    async def post_route(request: web.Request) -> web.Response:
        body = await _json_body(request)
        serve_from = body.get("serve_from")
        if not isinstance(serve_from, str):
            raise ValueError('body needs {"serve_from": REGION}')
        sim.route(request.match_info["region"], serve_from, request.match_info.get("service"))
        return web.json_response(sim.routes_view())

    async def promote(request: web.Request) -> web.Response:
        region = request.match_info["region"]
        sim.check_region(region)
        standby = REGIONS[region].standby

        def switch() -> None:
            sim.ledger_primary[region] = standby

        lag = await asyncio.to_thread(ledger.promote, region, switch)
        return web.json_response({"region": region, "primary": standby, "lag_seconds": lag})

    async def demote(request: web.Request) -> web.Response:
        region = request.match_info["region"]
        sim.check_region(region)

        def switch() -> None:
            sim.ledger_primary[region] = region

        await asyncio.to_thread(ledger.demote, region, switch)
        return web.json_response({"region": region, "primary": region, "lag_seconds": 0.0})

    async def quarantine(request: web.Request) -> web.Response:
        sim.quarantine(
            request.match_info["region"], request.match_info["service"], request.method == "POST"
        )
        return web.json_response(sim.routes_view())

    async def rotate(request: web.Request) -> web.Response:
        key = sim.rotate_key()
        on_key_rotated(key)
        return web.json_response({"api_key": key})

    async def post_fault(request: web.Request) -> web.Response:
        body = await _json_body(request)
        region, mode = body.get("region"), body.get("mode")
        if not isinstance(region, str) or not isinstance(mode, str):
            raise ValueError('body needs {"region": R, "mode": down|slow|errors|flap|clear}')
        service = body.get("service") or None
        value = body.get("value")
        if value is not None and not isinstance(value, int | float):
            raise ValueError("value must be a number")
        sim.set_fault(region, service, mode, None if value is None else float(value))
        return web.json_response(sim.faults_view())

    async def get_faults(request: web.Request) -> web.Response:
        return web.json_response(sim.faults_view())

    async def post_webhook(request: web.Request) -> web.Response:
        try:
            body: Any = await request.json()
        except (json.JSONDecodeError, UnicodeDecodeError):
            body = {"raw": await request.text()}
        sim.webhooks.append({"received_at": time.time(), "body": body})
        del sim.webhooks[:-1000]
        return web.json_response({"ok": True, "count": len(sim.webhooks)})

    async def get_webhook(request: web.Request) -> web.Response:
        return web.json_response({"received": sim.webhooks})

    async def serve(request: web.Request) -> web.Response:
        region, service = request.match_info["region"], request.match_info["service"]
        t0 = time.perf_counter()
        rep = sim.serve(region, service)
        resp = await _answer(rep)
        logs.write(
            rep.body.get("served_by", region),
            service,
            request,
            resp.status,
            (time.perf_counter() - t0) * 1000,
        )
        return resp

    app = web.Application(middlewares=[auth_and_errors])
    app.router.add_get("/routes", get_routes)
    app.router.add_post("/routes/{region}", post_route)
    app.router.add_post("/routes/{region}/{service}", post_route)
    app.router.add_post("/ledger/{region}/promote", promote)
    app.router.add_post("/ledger/{region}/demote", demote)
    app.router.add_post("/quarantine/{region}/{service}", quarantine)
    app.router.add_delete("/quarantine/{region}/{service}", quarantine)
    app.router.add_post("/api-key/rotate", rotate)
    app.router.add_post("/faults", post_fault)
    app.router.add_get("/faults", get_faults)
    app.router.add_post("/webhook", post_webhook)
    app.router.add_get("/webhook", get_webhook)
    app.router.add_get("/serve/{region}/{service}/healthz", serve)
    return app
