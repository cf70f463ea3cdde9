"""Probe kinds: one protocol, small implementations (HTTP(S), TCP, SSH).

HTTP phase timings (endpoints with ``phases: true``): httpx's ``trace`` extension has no
DNS event, and a pooled connection that is reused reports no connect or TLS phase. So a
phase-timed probe resolves the name itself (timed ``getaddrinfo``), connects to the
resolved address (``Host`` header and TLS ``sni_hostname`` keep the name for virtual
hosting and certificate checks), and uses a client without keep-alive: every sample then
measures DNS, connect, TLS, time to first byte and transfer, the way ``curl -w`` does.
Probes without ``phases`` reuse pooled connections (cheaper, and closer to what a
long-lived client sees); their latency is the whole request.
"""

from __future__ import annotations

import asyncio
import socket
import ssl
import time
from typing import TYPE_CHECKING, Any, Protocol
from urllib.parse import urlsplit, urlunsplit

import httpx

from opsconsole.health.model import Outcome, Target

if TYPE_CHECKING:
    from opsconsole.config import Config, Expect

__all__ = ["HttpProbe", "Probe", "SshProbe", "TcpProbe", "describe_error", "json_path"]


class Probe(Protocol):
    """Checks one kind of target. ``check`` never raises for target problems."""

    async def check(self, target: Target) -> Outcome: ...

    async def aclose(self) -> None: ...


def describe_error(exc: BaseException, timeout: float) -> str:
    """One line that says what went wrong, without a traceback."""
    if isinstance(exc, httpx.TimeoutException | TimeoutError | asyncio.TimeoutError):
        phase = {
            httpx.ConnectTimeout: "connecting",
            httpx.ReadTimeout: "waiting for the response",
            httpx.WriteTimeout: "sending the request",
            httpx.PoolTimeout: "waiting for a free connection",
        }.get(type(exc))
        return f"timeout after {timeout:g}s" + (f" {phase}" if phase else "")
    chain: list[BaseException] = []
    todo: list[BaseException] = [exc]
    while todo and len(chain) < 20:
        cur = todo.pop(0)
        chain.append(cur)
        if isinstance(cur, BaseExceptionGroup):
            todo.extend(cur.exceptions)
        nxt = cur.__cause__ or cur.__context__
        if nxt is not None:
            todo.append(nxt)
    for e in chain:
        if isinstance(e, ConnectionResetError):
            return "connection reset by peer"
        if isinstance(e, ConnectionRefusedError):
            return "connection refused"
        if isinstance(e, socket.gaierror):
            exc = e
            break
    if isinstance(exc, socket.gaierror):
        return f"name does not resolve ({exc.strerror or exc})"
    text = str(exc) or type(exc).__name__
    low = text.lower()
    if "certificate verify failed" in low or isinstance(exc, ssl.SSLCertVerificationError):
        return f"TLS certificate not trusted ({text})"
    if "name or service not known" in low or "nodename nor servname" in low:
        return f"name does not resolve ({text})"
    if isinstance(exc, httpx.ReadError) and not str(exc):
        return "connection reset or closed while reading the response"
    if isinstance(exc, httpx.RemoteProtocolError):
        return f"connection closed by peer ({text})"
    if isinstance(exc, ConnectionResetError) or "reset by peer" in low:
        return f"connection reset ({text})"
    if isinstance(exc, ConnectionRefusedError) or "refused" in low:
        return f"connection refused ({text})"
    return f"{type(exc).__name__}: {text}"


def json_path(data: Any, path: str) -> Any:
    """``a.b.0.c`` into nested dicts/lists; raises KeyError when missing."""
    cur = data
    for part in path.split("."):
        if isinstance(cur, dict) and part in cur:
            cur = cur[part]
        elif isinstance(cur, list) and part.isdigit() and int(part) < len(cur):
            cur = cur[int(part)]
        else:
            raise KeyError(path)
    return cur


def check_response(expect: Expect, status: int, body: bytes) -> str | None:
    """Why a response does not meet ``expect``, or None."""
    if not expect.status_ok(status):
        return f"HTTP {status}"
    if expect.body_contains is not None and expect.body_contains.encode() not in body:
        return f"body does not contain {expect.body_contains!r}"
    if expect.json_equals:
        import json

        try:
            data = json.loads(body)
        except ValueError:
            return "body is not JSON"
        for path, want in expect.json_equals.items():
            try:
                got = json_path(data, path)
            except KeyError:
                return f"JSON {path} missing"
            if got != want:
                return f"JSON {path} = {got!r}, expected {want!r}"
    return None


class HttpProbe:
    """HTTP(S) through one ``httpx.AsyncClient`` per region (and TLS setting)."""

    def __init__(self, config: Config | None = None, *, max_connections: int = 100) -> None:
        self.config = config
        self.max_connections = max_connections
        self._clients: dict[tuple[str, bool, str | None, bool], httpx.AsyncClient] = {}

    def _client(self, target: Target) -> httpx.AsyncClient:
        ep = target.spec
        assert ep is not None
        ca = None
        if ep.ca_file is not None:
            ca = str(self.config.resolve(ep.ca_file) if self.config else ep.ca_file)
        key = (target.region, ep.verify_tls, ca, ep.phases)
        client = self._clients.get(key)
        if client is None:
            verify: bool | ssl.SSLContext = ep.verify_tls
            if ep.verify_tls and ca is not None:
                verify = ssl.create_default_context(cafile=ca)
            limits = httpx.Limits(
                max_connections=self.max_connections,
                max_keepalive_connections=0 if ep.phases else self.max_connections,
            )
            client = httpx.AsyncClient(
                verify=verify,
                limits=limits,
                follow_redirects=False,
                trust_env=False,
                headers={"User-Agent": "opsconsole-probe/1"},
            )
            self._clients[key] = client
        return client

    def prepare(self, targets: list[Target]) -> None:
        """Create the clients up front: building an SSL context takes tens of ms of CPU,
        which would otherwise land inside the timings of probes already in flight."""
        for t in targets:
            if t.kind == "http":
                self._client(t)

    async def check(self, target: Target) -> Outcome:
        ep = target.spec
        assert ep is not None and ep.url is not None
        url = str(ep.url)
        client = self._client(target)
        t0 = time.perf_counter()
        phases: dict[str, float | None] | None = None
        try:
            async with asyncio.timeout(target.timeout):
                if ep.phases:
                    resp, body, phases = await self._timed(client, url, target.timeout)
                else:
                    resp = await client.get(url, timeout=target.timeout)
                    body = resp.content
        except Exception as exc:
            return Outcome(
                ok=False, latency_ms=None, error=describe_error(exc, target.timeout), phases=phases
            )
        latency = (time.perf_counter() - t0) * 1000
        problem = check_response(ep.expect, resp.status_code, body)
        if problem is not None:
            return Outcome(
                ok=False,
                latency_ms=latency,
                error=problem,
                status_code=resp.status_code,
                phases=phases,
            )
        return Outcome(
            ok=True,
            latency_ms=latency,
            status_code=resp.status_code,
            phases=phases,
            slow=latency > target.latency_threshold_ms,
        )

    async def _timed(
        self, client: httpx.AsyncClient, url: str, timeout: float
    ) -> tuple[httpx.Response, bytes, dict[str, float | None]]:
        parts = urlsplit(url)
        host = parts.hostname or ""
        port = parts.port or (443 if parts.scheme == "https" else 80)
        loop = asyncio.get_running_loop()
        t_dns = time.perf_counter()
        infos = await loop.getaddrinfo(host, port, type=socket.SOCK_STREAM)
        dns_ms = (time.perf_counter() - t_dns) * 1000
        addr = infos[0][4][0]
        literal = f"[{addr}]" if ":" in addr else addr
        netloc = literal + (f":{parts.port}" if parts.port else "")
        ip_url = urlunsplit((parts.scheme, netloc, parts.path or "/", parts.query, ""))
        marks: dict[str, float] = {}

        async def trace(name: str, info: dict[str, Any]) -> None:
            marks[name] = time.perf_counter()

        ext: dict[str, Any] = {"trace": trace}
        if parts.scheme == "https":
            ext["sni_hostname"] = host
        headers = {"Host": parts.netloc.rsplit("@", 1)[-1]}
        resp = await client.get(ip_url, headers=headers, extensions=ext, timeout=timeout)
        body = resp.content

        def span(a: str, b: str) -> float | None:
            if a in marks and b in marks:
                return round((marks[b] - marks[a]) * 1000, 3)
            return None

        phases = {
            "dns_ms": round(dns_ms, 3),
            "connect_ms": span("connection.connect_tcp.started", "connection.connect_tcp.complete"),
            "tls_ms": span("connection.start_tls.started", "connection.start_tls.complete"),
            "ttfb_ms": span(
                "http11.send_request_headers.started", "http11.receive_response_headers.complete"
            ),
            "transfer_ms": span(
                "http11.receive_response_body.started", "http11.receive_response_body.complete"
            ),
        }
        return resp, body, phases

    async def aclose(self) -> None:
        for client in self._clients.values():
            await client.aclose()
        self._clients.clear()


class TcpProbe:
    """A TCP connect (and immediate close)."""

    async def check(self, target: Target) -> Outcome:
        assert target.spec is not None and target.spec.tcp is not None
        host, _, port = target.spec.tcp.rpartition(":")
        t0 = time.perf_counter()
        try:
            async with asyncio.timeout(target.timeout):
                _, writer = await asyncio.open_connection(host, int(port))
            latency = (time.perf_counter() - t0) * 1000
            writer.close()
        except Exception as exc:
            return Outcome(ok=False, latency_ms=None, error=describe_error(exc, target.timeout))
        return Outcome(ok=True, latency_ms=latency, slow=latency > target.latency_threshold_ms)

    async def aclose(self) -> None:
        return None


class SshProbe:
    """A check command on an inventory host through :mod:`opsconsole.ssh` (a thread,
    host key verified against known_hosts, bounded by the target's timeout)."""

    def __init__(self, config: Config) -> None:
        self.config = config

    async def check(self, target: Target) -> Outcome:
        from opsconsole.ssh import resolve_host, run_command_async

        ep = target.spec
        assert ep is not None and ep.ssh is not None
        try:
            host = resolve_host(self.config, ep.ssh.host)
        except Exception as exc:
            return Outcome(ok=False, latency_ms=None, error=str(exc))
        known = self.config.resolve(self.config.inventory.known_hosts)
        res = await run_command_async(
            host, ep.ssh.command, timeout=target.timeout, known_hosts=known, alias=ep.ssh.host
        )
        latency = res.duration * 1000
        if res.timed_out:
            return Outcome(ok=False, latency_ms=None, error=f"timeout after {target.timeout:g}s")
        if res.error:
            return Outcome(ok=False, latency_ms=None, error=res.error)
        if res.exit_status != 0:
            tail = (res.stderr or res.stdout).strip().splitlines()[-1:] or [""]
            return Outcome(
                ok=False,
                latency_ms=latency,
                error=f"exit status {res.exit_status}: {tail[0][:200]}",
            )
        want = ep.expect.output_contains
        if want is not None and want not in res.stdout:
            return Outcome(ok=False, latency_ms=latency, error=f"output does not contain {want!r}")
        return Outcome(ok=True, latency_ms=latency, slow=latency > target.latency_threshold_ms)

    async def aclose(self) -> None:
        return None
