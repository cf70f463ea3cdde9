"""``opsconsole serve``: the long-running service on aiohttp.

Why aiohttp: it is already a dependency (the demo deployment runs on it), it is a
complete asyncio HTTP server (TLS, request size limits, graceful shutdown) that needs no
separate ASGI server process, and everything else serve runs - the monitor, the drill
scheduler, the outbox worker, the rules - is asyncio code that shares its event loop.

Endpoints: ``POST /v1/alertmanager`` (Alertmanager webhook, payload version 4),
``GET /metrics`` (Prometheus text format), ``GET /healthz`` (the process answers; no
token), ``GET /readyz`` (store reachable, components running). Every endpoint but
``/healthz`` needs ``Authorization: Bearer <token>``, compared in constant time. Refusals
(401, 413) are audited as ``serve.refused`` with method, path, peer and reason - never the
presented token or the body.
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import json
import logging
import signal
import sqlite3
import ssl
import sys
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from aiohttp import web

from opsconsole.access import AccessDenied
from opsconsole.audit import AuditLog
from opsconsole.capabilities import register_all
from opsconsole.errors import AuditWriteError, OpsError, StoreError
from opsconsole.store import Location, open_db
from opsconsole.timeutil import isoformat, utcnow

if TYPE_CHECKING:

    from opsconsole.config import Config
    from opsconsole.rules.engine import Firing, RuleEngine
    from opsconsole.serve.metrics import Metrics

__all__ = ["ServeOptions", "Server"]

REFUSAL_AUDITS_PER_MINUTE = 60


@dataclass
class ServeOptions:
    token: str
    host: str = "127.0.0.1"
    port: int = 9464
    tls_cert: Path | None = None
    tls_key: Path | None = None
    max_body: int = 1024 * 1024
    monitor: bool = False
    scheduler: bool = False
    rules: Path | None = None
    tick_seconds: float = 1.0
    deadline_sweep_seconds: float = 30.0
    verify_every_seconds: float = 600.0
    actor: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)


class _MaskSecrets(logging.Filter):
    """aiohttp logs a malformed request with a traceback quoting its raw bytes - an
    ``Authorization: Bearer <token>`` line included: one line instead, secrets masked."""

    def filter(self, record: logging.LogRecord) -> bool:
        from opsconsole.redact import redact

        text = record.getMessage()
        if record.exc_info and record.exc_info[1] is not None:
            text += f": {record.exc_info[1]}"
        record.msg, record.args = str(redact(text)), None
        record.exc_info = record.exc_text = None
        return True


def _quiet_aiohttp_errors() -> None:
    log = logging.getLogger("aiohttp.server")
    if not any(isinstance(f, _MaskSecrets) for f in log.filters):
        log.addFilter(_MaskSecrets())


def _log(event: str, **fields: Any) -> None:
    """One JSON line per event on stdout (journald keeps it)."""
    line = json.dumps({"ts": isoformat(utcnow()), "event": event, **fields}, default=str)
    sys.stdout.write(line + "\n")
    sys.stdout.flush()


class Server:
    """Owns the HTTP app and the background components; :meth:`run` until stopped."""

    def __init__(
        self,
        config: Config,
        db_path: Location,
        options: ServeOptions,
        *,
        audit_key: bytes | None = None,
        load_config: Callable[[], Config] | None = None,
    ) -> None:
        from opsconsole.rules.engine import RuleEngine
        from opsconsole.rules.model import load_rules
        from opsconsole.serve.metrics import Metrics

        self.config = config
        self.db_path = db_path
        self.opts = options
        self.key = audit_key
        self._load_config = load_config
        self.rules_file = load_rules(config, options.rules)
        # One connection per component: they run side by side on the loop and in threads.
        register_all()
        self.db = open_db(db_path)
        self.audit = AuditLog(self.db, actor=options.actor, interface="api", key=audit_key)
        self._store_lock = asyncio.Lock()
        self.metrics: Metrics = Metrics(open_db(db_path), config)
        self.engine: RuleEngine = RuleEngine(
            self.db, self.audit, config, self.rules_file, db_path=db_path
        )
        self.stop = asyncio.Event()
        self.tasks: dict[str, asyncio.Task[Any]] = {}
        self.runs: set[asyncio.Task[Any]] = set()
        self.monitor: Any = None
        self.url = ""
        self._refusals: list[float] = []
        self._seeded = False

    # -- helpers -----------------------------------------------------------------------

    async def _store(self, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        """Run a blocking store operation on serve's own connection, one at a time."""
        async with self._store_lock:
            return await asyncio.to_thread(fn, *args, **kwargs)

    def _refuse(self, request: web.Request, status: int, reason: str, **extra: Any) -> None:
        self.metrics.refusals.labels(reason).inc()
        now = time.monotonic()
        self._refusals = [t for t in self._refusals if now - t < 60]
        if len(self._refusals) >= REFUSAL_AUDITS_PER_MINUTE:
            return  # counted, not audited: a flood must not fill the audit log
        self._refusals.append(now)
        details = {
            "method": request.method,
            "path": request.path,
            "peer": request.remote,
            "status": status,
            "reason": reason,
            "user_agent": request.headers.get("User-Agent", "")[:200],
            **extra,
        }
        with contextlib.suppress(OpsError):
            self.audit.record("serve.refused", request.path, details, "refused")

    # -- HTTP --------------------------------------------------------------------------

    def build_app(self) -> web.Application:
        app = web.Application(client_max_size=self.opts.max_body, middlewares=[self._guard])
        app.router.add_get("/healthz", self.healthz)
        app.router.add_get("/readyz", self.readyz)
        app.router.add_get("/metrics", self.metrics_view)
        app.router.add_post("/v1/alertmanager", self.alertmanager)
        return app

    @web.middleware
    async def _guard(
        self, request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
    ) -> web.StreamResponse:
        if request.path == "/healthz":
            return await handler(request)
        header = request.headers.get("Authorization", "")
        scheme, _, given = header.partition(" ")
        reason = None
        if scheme.lower() != "bearer" or not given.strip():
            reason = "missing token"
        elif not hmac.compare_digest(
            # A header that is not UTF-8 arrives with surrogates: refuse it as a wrong
            # token (401, audited), never a 500 with a traceback.
            given.strip().encode("utf-8", "surrogateescape"),
            self.opts.token.encode(),
        ):
            reason = "wrong token"
        if reason is not None:
            await self._store(self._refuse, request, 401, reason)
            return web.json_response(
                {"error": "unauthorized"},
                status=401,
                headers={"WWW-Authenticate": 'Bearer realm="opsconsole"'},
            )
        length = request.content_length
        if length is not None and length > self.opts.max_body:
            await self._store(self._refuse, request, 413, "body too large", size=length)
            return web.json_response(
                {"error": f"body larger than {self.opts.max_body} bytes"}, status=413
            )
        try:
            return await handler(request)
        except web.HTTPRequestEntityTooLarge:
            await self._store(self._refuse, request, 413, "body too large")
            return web.json_response(
                {"error": f"body larger than {self.opts.max_body} bytes"}, status=413
            )

    async def healthz(self, request: web.Request) -> web.Response:
        return web.Response(text="ok\n")

    async def readyz(self, request: web.Request) -> web.Response:
        checks: dict[str, str] = {}
        try:
            await self._store(lambda: self.db.execute("SELECT 1").fetchone())
            checks["store"] = "ok"
        except Exception as exc:
            checks["store"] = f"failed: {exc}"
        for name, task in self.tasks.items():
            checks[name] = "ok" if not task.done() else f"stopped: {_task_error(task)}"
        if self.monitor is not None and self.monitor.sweep_count == 0:
            checks["monitor"] = "no sweep finished yet"
        ready = all(v == "ok" for v in checks.values())
        return web.json_response({"ready": ready, "checks": checks}, status=200 if ready else 503)

    async def metrics_view(self, request: web.Request) -> web.Response:
        from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

        body = await asyncio.to_thread(generate_latest, self.metrics.registry)
        return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE_LATEST})

    async def alertmanager(self, request: web.Request) -> web.Response:
        try:
            data = await request.json(loads=json.loads)
        except web.HTTPRequestEntityTooLarge:
            raise
        except (ValueError, UnicodeDecodeError):
            self.metrics.webhooks.labels("invalid").inc()
            return web.json_response({"error": "the body is not JSON"}, status=400)
        try:
            result, firings = await self._store(self._ingest, data)
        except (AuditWriteError, StoreError, sqlite3.Error) as exc:
            # Nothing was recorded: a 5xx makes Alertmanager send the group again later.
            self.metrics.webhooks.labels("store_unavailable").inc()
            _log("alertmanager.unavailable", error=str(exc))
            return web.json_response({"error": str(exc)}, status=503)
        except AccessDenied as exc:  # the policy does not let serve's account declare
            self.metrics.webhooks.labels("denied").inc()
            return web.json_response({"error": str(exc)}, status=403)
        except OpsError as exc:
            self.metrics.webhooks.labels("invalid").inc()
            return web.json_response({"error": str(exc)}, status=400)
        self.metrics.webhooks.labels(result.action).inc()
        self._start_runs(firings)
        _log("alertmanager", action=result.action, incident=result.incident_id)
        return web.json_response(
            {
                "action": result.action,
                "incident": result.incident_id,
                "message": result.message,
                "rules": [f.rule for f in firings],
            }
        )

    def _ingest(self, data: Any) -> tuple[Any, list[Firing]]:
        from opsconsole.incidents import IncidentService
        from opsconsole.incidents.intake import ingest, parse_payload

        svc = IncidentService(self.db, self.audit, self.config)
        result = ingest(svc, data)
        firings = self.engine.on_alerts(parse_payload(data), result)
        return result, firings

    def reload_rules(self) -> None:
        """SIGHUP: read rules.yaml again; a broken file keeps the rules in force."""
        from opsconsole.rules.model import load_rules

        try:
            rules = load_rules(self.config, self.opts.rules)
        except OpsError as exc:
            _log("rules.reload_failed", error=str(exc))
            return
        self.engine.rules = [r for r in rules.rules if r.enabled]
        names = {r.name for r in self.engine.rules}
        self.engine.pending = {k: v for k, v in self.engine.pending.items() if k[0] in names}
        _log("rules.reloaded", rules=len(self.engine.rules))

    # -- rules: health changes and missed deadlines from the audit log --------------------

    def _watch_once(self, sweep_deadlines: bool) -> list[Firing]:
        from opsconsole.incidents import IncidentService
        from opsconsole.rules import state
        from opsconsole.rules.engine import deadline_event, health_event
        from opsconsole.store import immediate

        firings: list[Firing] = []
        if sweep_deadlines:
            from datetime import timedelta

            from opsconsole.serve.reminders import remind

            svc = IncidentService(self.db, self.audit, self.config)
            warn = self.config.settings.notifications.deadline_warning_minutes
            remind(svc, utcnow(), timedelta(minutes=warn))
        cursor = state.get_cursor(self.db, "serve")
        if not self._seeded:
            # Re-arm "for N seconds" waits from the latest state of each region/service,
            # so a restart in the middle of a wait does not lose it.
            self._seeded = True
            for ts, target, details in self.db.execute(
                "SELECT ts, target, details FROM audit_events WHERE seq IN (SELECT MAX(seq) "
                "FROM audit_events WHERE action = 'health.state_changed' AND seq <= ? "
                "GROUP BY target)",
                (cursor if cursor is not None else 2**62,),
            ).fetchall():
                row = {"ts": ts, "target": target, "details": json.loads(details)}
                self.engine.on_health(health_event(row), seed=True)
        if cursor is None:
            head = self.db.execute("SELECT COALESCE(MAX(seq), 0) FROM audit_events").fetchone()
            with immediate(self.db):
                state.set_cursor(self.db, "serve", head[0])
            return firings
        rows = self.db.execute(
            "SELECT seq, ts, action, target, details FROM audit_events WHERE seq > ? AND "
            "action IN ('health.state_changed', 'incident.deadline.missed') ORDER BY seq "
            "LIMIT 500",
            (cursor,),
        ).fetchall()
        last = cursor
        for seq, ts, action, target, details in rows:
            row = {"ts": ts, "target": target, "details": json.loads(details)}
            if action == "health.state_changed":
                firings.extend(self.engine.on_health(health_event(row)))
            else:
                from opsconsole.incidents.store import load_incident

                try:
                    inc = load_incident(self.db, target)
                except OpsError:
                    inc = None
                firings.extend(self.engine.on_deadline(deadline_event(row, inc)))
            last = seq
        if not rows:
            head = self.db.execute("SELECT COALESCE(MAX(seq), 0) FROM audit_events").fetchone()
            last = max(last, head[0])
        if last != cursor:
            with immediate(self.db):
                state.set_cursor(self.db, "serve", last)
        firings.extend(self.engine.due())
        return firings

    def _start_runs(self, firings: list[Firing]) -> None:
        for f in firings:
            self.metrics.rule_firings.labels(f.rule).inc()
            _log("rule.fired", rule=f.rule, key=f.key, incident=f.incident_id, runbook=f.runbook)
            if f.runbook is not None:
                task = asyncio.create_task(self._run(f))
                self.runs.add(task)
                task.add_done_callback(self.runs.discard)

    async def _run(self, firing: Firing) -> None:
        result = await self.engine.start_runbook(firing)
        _log(
            "rule.runbook",
            rule=firing.rule,
            runbook=firing.runbook,
            run=result.run_id if result else None,
            status=result.status if result else "not started",
            error=firing.error,
        )

    async def _watch(self) -> None:
        last_sweep = 0.0
        loop = asyncio.get_running_loop()
        while not self.stop.is_set():
            sweep = loop.time() - last_sweep >= self.opts.deadline_sweep_seconds
            if sweep:
                last_sweep = loop.time()
            try:
                firings = await self._store(self._watch_once, sweep)
            except OpsError as exc:
                _log("rules.error", error=str(exc))
                firings = []
            self._start_runs(firings)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.stop.wait(), self.opts.tick_seconds)

    # -- other components --------------------------------------------------------------

    async def _verify(self) -> None:
        from opsconsole.audit import verify

        def once() -> bool:
            db = open_db(self.db_path)
            try:
                return verify(db, key=self.key).ok
            finally:
                db.close()

        while not self.stop.is_set():
            try:
                ok = await asyncio.to_thread(once)
            except OpsError as exc:
                _log("audit.verify", ok=False, error=str(exc))
                ok = False
            self.metrics.verified(ok)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.stop.wait(), self.opts.verify_every_seconds)

    async def _deliver(self) -> None:
        from opsconsole.delivery import Deliverer

        db = open_db(self.db_path)
        audit = AuditLog(db, actor=self.opts.actor, interface="api", key=self.key)
        await Deliverer(db, audit, self.config).run(self.stop)

    async def _monitor(self) -> None:
        from opsconsole.events import EventBus
        from opsconsole.health.monitor import Monitor

        db = open_db(self.db_path)
        bus = EventBus()
        bus.subscribe(self.metrics.on_event)
        audit = AuditLog(db, actor=self.opts.actor, interface="api", key=self.key)
        async with Monitor(self.config, db=db, audit=audit, bus=bus) as mon:
            self.monitor = mon
            await mon.restore()
            await mon.run(stop=self.stop)

    async def _scheduler(self) -> None:
        from opsconsole.drills.service import DrillScheduler

        db = open_db(self.db_path)
        audit = AuditLog(db, actor="scheduler", interface="scheduler", key=self.key)
        sched = DrillScheduler(
            db=db, audit=audit, load_config=self._load_config or (lambda: self.config)
        )

        async def stopper() -> None:
            await self.stop.wait()
            sched.stop()

        watcher = asyncio.create_task(stopper())
        try:
            await sched.serve(signals=False)
        finally:
            watcher.cancel()

    # -- lifecycle ---------------------------------------------------------------------

    def _ssl(self) -> ssl.SSLContext | None:
        if self.opts.tls_cert is None:
            return None
        ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        ctx.minimum_version = ssl.TLSVersion.TLSv1_2
        try:
            ctx.load_cert_chain(str(self.opts.tls_cert), str(self.opts.tls_key))
        except (OSError, ssl.SSLError) as exc:
            raise OpsError(
                f"cannot load TLS certificate {self.opts.tls_cert} / key {self.opts.tls_key}: "
                f"{exc}",
                exit_code=3,
            ) from None
        return ctx

    async def run(self, *, signals: bool = True) -> int:
        _quiet_aiohttp_errors()
        runner = web.AppRunner(self.build_app(), access_log=None, handle_signals=False)
        await runner.setup()
        ssl_ctx = self._ssl()
        site = web.TCPSite(runner, self.opts.host, self.opts.port, ssl_context=ssl_ctx)
        try:
            await site.start()
        except OSError as exc:
            await runner.cleanup()
            raise OpsError(f"cannot listen on {self.opts.host}:{self.opts.port}: {exc}") from None
        host, port = runner.addresses[0][:2]
        scheme = "https" if ssl_ctx else "http"
        self.url = f"{scheme}://[{host}]:{port}" if ":" in host else f"{scheme}://{host}:{port}"
        if ssl_ctx is None and not _loopback(host):
            _log(
                "serve.warning",
                message=f"listening on {host} without TLS: the bearer token and alert "
                "payloads cross the network in clear; use --tls-cert/--tls-key or a proxy",
            )
        if signals:
            loop = asyncio.get_running_loop()
            for sig in (signal.SIGTERM, signal.SIGINT):
                loop.add_signal_handler(sig, self.stop.set)
            loop.add_signal_handler(signal.SIGHUP, self.reload_rules)
        self.tasks["outbox"] = asyncio.create_task(self._deliver())
        self.tasks["rules"] = asyncio.create_task(self._watch())
        self.tasks["audit-verify"] = asyncio.create_task(self._verify())
        if self.opts.monitor:
            self.tasks["monitor"] = asyncio.create_task(self._monitor())
        if self.opts.scheduler:
            self.tasks["scheduler"] = asyncio.create_task(self._scheduler())
        self.audit.record(
            "serve.start",
            self.url,
            {
                "monitor": self.opts.monitor,
                "scheduler": self.opts.scheduler,
                "rules": len(self.engine.rules),
            },
        )
        _log(
            "serve.listening",
            url=self.url,
            rules=len(self.engine.rules),
            monitor=self.opts.monitor,
            scheduler=self.opts.scheduler,
        )
        try:
            await self.stop.wait()
        finally:
            _log("serve.stopping")
            await runner.cleanup()
            await asyncio.wait(list(self.tasks.values()), timeout=30)
            for task in [*self.tasks.values(), *self.runs]:
                task.cancel()
            await asyncio.gather(*self.tasks.values(), *self.runs, return_exceptions=True)
            with contextlib.suppress(OpsError):
                self.audit.record("serve.stop", self.url, {})
            _log("serve.stopped")
        return 0


def _task_error(task: asyncio.Task[Any]) -> str:
    if task.cancelled():
        return "cancelled"
    exc = task.exception()
    return f"{type(exc).__name__}: {exc}" if exc else "finished"


def _loopback(host: str) -> bool:
    import ipaddress

    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return host == "localhost"
