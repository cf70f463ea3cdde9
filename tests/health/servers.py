"""Real loopback servers for the health tests: HTTP(S) with switchable behaviour, a server
that accepts and never answers, one that resets connections, and config helpers."""

from __future__ import annotations

import asyncio
import datetime as dt
import ipaddress
import socket
import ssl
import struct
import threading
from collections.abc import Coroutine
from pathlib import Path
from typing import Any

import yaml
from aiohttp import web

from opsconsole.config import Config, load_config


class LoopThread:
    """An event loop in a daemon thread, for servers the code under test talks to."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()

    def run(self, coro: Coroutine[Any, Any, Any], timeout: float = 30) -> Any:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)

    def stop(self) -> None:
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)


def _bind() -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    sock.listen(256)
    sock.setblocking(False)
    return sock


class HttpServer:
    """``/`` answers per ``mode``: ok | slow (``delay_s``) | fail (500) | flap (alternate).
    ``/json`` answers ``{"status": ..., "nested": {"v": 1}}``. Counts concurrency."""

    def __init__(
        self,
        lt: LoopThread,
        *,
        ssl_context: ssl.SSLContext | None = None,
        shared: dict[str, int] | None = None,
    ) -> None:
        self.lt = lt
        self.shared = shared if shared is not None else {"now": 0, "max": 0}
        self.mode = "ok"
        self.delay_s = 0.0
        self.json_status = "ok"
        self.hits = 0
        self.in_flight = 0
        self.max_in_flight = 0
        self.hold_s = 0.0
        self.received: list[Any] = []
        sock = _bind()
        self.port = sock.getsockname()[1]
        scheme = "https" if ssl_context else "http"
        self.url = f"{scheme}://127.0.0.1:{self.port}/"
        lt.run(self._start(sock, ssl_context))

    async def _start(self, sock: socket.socket, ctx: ssl.SSLContext | None) -> None:
        app = web.Application()
        app.router.add_get("/", self._root)
        app.router.add_get("/json", self._json)
        app.router.add_get("/moved", self._moved)
        app.router.add_post("/hook", self._hook)
        self.runner = web.AppRunner(app, access_log=None, shutdown_timeout=1)
        await self.runner.setup()
        await web.SockSite(self.runner, sock, ssl_context=ctx).start()

    async def _root(self, request: web.Request) -> web.Response:
        self.hits += 1
        self.in_flight += 1
        self.max_in_flight = max(self.max_in_flight, self.in_flight)
        self.shared["now"] += 1
        self.shared["max"] = max(self.shared["max"], self.shared["now"])
        try:
            if self.hold_s:
                await asyncio.sleep(self.hold_s)
            mode = self.mode
            if mode == "flap":
                mode = "fail" if self.hits % 2 == 0 else "ok"
            if mode == "slow":
                await asyncio.sleep(self.delay_s)
            if mode == "fail":
                return web.json_response({"status": "error"}, status=500)
            return web.json_response({"status": "ok"})
        finally:
            self.in_flight -= 1
            self.shared["now"] -= 1

    async def _moved(self, request: web.Request) -> web.Response:
        raise web.HTTPFound("/json")

    async def _json(self, request: web.Request) -> web.Response:
        return web.json_response({"status": self.json_status, "nested": {"v": 1}})

    async def _hook(self, request: web.Request) -> web.Response:
        self.received.append(await request.json())
        return web.json_response({"ok": True})

    def close(self) -> None:
        self.lt.run(self.runner.cleanup())


def _serve_delayed(socks: list[socket.socket], delay: float, ready: Any) -> None:
    async def handler(request: web.Request) -> web.Response:
        await asyncio.sleep(delay)
        return web.json_response({"status": "ok"})

    async def main() -> None:
        app = web.Application()
        app.router.add_get("/e/{n}", handler)
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        for s in socks:
            await web.SockSite(runner, s, backlog=2048).start()
        ready.set()
        await asyncio.Event().wait()

    asyncio.run(main())


class DelayServerProcess:
    """``/e/N`` answers after ``delay`` seconds, served by aiohttp in a separate process
    (so the client under test never shares a GIL or an event loop with it), on ``ports``
    listening sockets. ``urls(n)`` spreads n endpoints over them."""

    def __init__(self, delay: float, ports: int = 4) -> None:
        import multiprocessing as mp

        socks = []
        for _ in range(ports):
            s = socket.socket()
            s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            s.bind(("127.0.0.1", 0))
            s.listen(2048)
            socks.append(s)
        self.ports = [s.getsockname()[1] for s in socks]
        ctx = mp.get_context("fork")
        ready = ctx.Event()
        self.proc = ctx.Process(target=_serve_delayed, args=(socks, delay, ready), daemon=True)
        self.proc.start()
        for s in socks:
            s.close()
        if not ready.wait(30):
            self.close()
            raise RuntimeError("the delayed HTTP server did not start")

    def urls(self, n: int) -> list[str]:
        return [f"http://127.0.0.1:{self.ports[i % len(self.ports)]}/e/{i}" for i in range(n)]

    def close(self) -> None:
        self.proc.terminate()
        self.proc.join(10)


class RawServer:
    """A TCP server that either never answers (``hang``) or resets every connection."""

    def __init__(self, lt: LoopThread, behaviour: str) -> None:
        self.lt = lt
        self.behaviour = behaviour
        self.writers: list[asyncio.StreamWriter] = []
        sock = _bind()
        self.port = sock.getsockname()[1]
        self.url = f"http://127.0.0.1:{self.port}/"
        self.server = lt.run(asyncio.start_server(self._conn, sock=sock))

    async def _conn(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if self.behaviour == "reset":
            await reader.read(100)
            sock = writer.get_extra_info("socket")
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            writer.transport.abort()
            return
        self.writers.append(writer)  # keep it open, say nothing
        await reader.read()

    def close(self) -> None:
        async def shut() -> None:
            for w in self.writers:
                w.transport.abort()
            self.server.close()

        self.lt.run(shut())


def self_signed(directory: Path) -> tuple[Path, Path]:
    """A self-signed certificate for 127.0.0.1/localhost (cert path, key path)."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "opsconsole-test")])
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(days=1))
        .not_valid_after(now + dt.timedelta(days=2))
        .add_extension(
            x509.SubjectAlternativeName(
                [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
            ),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = directory / "cert.pem", directory / "key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return cert_path, key_path


def write_config(
    directory: Path,
    services: dict[str, dict[str, Any]],
    *,
    probe: dict[str, Any] | None = None,
    webhooks: list[dict[str, Any]] | None = None,
    extra_regions: dict[str, Any] | None = None,
    region_extra: dict[str, Any] | None = None,
) -> Config:
    """A one-region ("r1") config; ``services``: name -> Service mapping (endpoints ...)."""
    directory.mkdir(parents=True, exist_ok=True)
    region = {"name": "Test", "environment": "test", "services": services, **(region_extra or {})}
    inv = {"regions": {"r1": region, **(extra_regions or {})}}
    settings = {
        "probe": {
            "interval_seconds": 0.2,
            "timeout_seconds": 2,
            "hysteresis": {"down_after": 3, "recover_after": 2},
            **(probe or {}),
        },
        "webhooks": webhooks or [],
    }
    (directory / "inventory.yaml").write_text(yaml.safe_dump(inv))
    (directory / "settings.yaml").write_text(yaml.safe_dump(settings))
    return load_config(directory)


def svc(url: str | None = None, *, critical: bool = True, **endpoint: Any) -> dict[str, Any]:
    ep = {"url": url, **endpoint} if url is not None else dict(endpoint)
    return {"critical": critical, "objectives": {"latency_ms": 1000}, "endpoints": [ep]}
