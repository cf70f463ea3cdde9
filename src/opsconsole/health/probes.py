"""Probe kinds: one protocol, small implementations (HTTP(S), TCP, SSH).

**HTTP goes through aiohttp**, one ``ClientSession`` for pooled probes and one for
phase-timed probes. ``httpx.AsyncClient`` costs ~30x the CPU per request with a couple of
hundred connections open (its pool bookkeeping grows with the number of connections,
encode/httpx#3215) and races into spurious ``ReadError`` failures (encode/httpcore#1110); the
monitor must be limited by the network, not by the client (bench/probes.py). Runbook
``http`` steps keep httpx: they send a few requests at a time.

**The latency clock starts when the probe has its slot**: the monitor acquires the global
and per-host limits first, then calls :meth:`HttpProbe.check`, whose clock starts there;
the connector's own limit equals the monitor's, so it never queues. Time spent waiting
for a slot is never reported as the endpoint's latency.

**Phase timings** (``phases: true``) use a session that opens a fresh connection for every
probe (no keep-alive, no DNS cache), so every sample has the connection phases:

* ``dns_ms``: aiohttp's ``on_dns_resolvehost_start/end`` trace events; ``None`` for an IP
  literal (aiohttp resolves nothing);
* ``connect_ms``: from the end of DNS (or the start of connection creation) until the TCP
  connection is established — marked by the connector subclass below, when asyncio asks
  for the protocol, which it does right after the socket connected and before the TLS
  handshake;
* ``tls_ms``: from there until ``create_connection`` returned (the handshake, including
  certificate verification); ``None`` for plain HTTP;
* ``ttfb_ms``: ``on_request_headers_sent`` until the response headers arrived
  (``on_request_end``);
* ``transfer_ms``: reading the body (up to ``MAX_BODY`` bytes).

Probes without ``phases`` reuse pooled connections (cheaper, and what a long-lived
client sees); their latency is the whole request and body read.
"""

from __future__ import annotations

import asyncio
import contextvars
import errno
import socket
import ssl
import sys
import time
from typing import TYPE_CHECKING, Any, Protocol

from opsconsole.health.model import Outcome, Target

if TYPE_CHECKING:
    import aiohttp

    from opsconsole.config import Config, Expect
    from opsconsole.ssh.client import CommandResult

__all__ = [
    "MAX_BODY",
    "HttpProbe",
    "Probe",
    "SshProbe",
    "TcpProbe",
    "describe_error",
    "json_path",
]

MAX_BODY = 1 << 20  # body conditions look at the first MiB
MAX_REDIRECTS = 10


class Probe(Protocol):
    """Checks one kind of target. ``check`` never raises for target problems."""

    async def check(self, target: Target) -> Outcome: ...

    async def aclose(self) -> None: ...


def _chain(exc: BaseException) -> list[BaseException]:
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
        os_error = getattr(cur, "os_error", None)  # aiohttp's ClientConnectorError
        if isinstance(os_error, BaseException) and os_error is not nxt:
            todo.append(os_error)
    return chain


def describe_error(exc: BaseException, timeout: float) -> str:
    """One line that says what went wrong, without a traceback."""
    if isinstance(exc, TimeoutError | asyncio.TimeoutError):
        return f"timeout after {timeout:g}s"
    httpx = sys.modules.get("httpx")  # the Prometheus source still talks httpx
    if httpx is not None and isinstance(exc, httpx.TimeoutException):
        return f"timeout after {timeout:g}s"
    chain = _chain(exc)
    for e in chain:
        if isinstance(e, ssl.SSLCertVerificationError) or "certificate verify failed" in str(e):
            return f"TLS certificate not trusted ({getattr(e, 'verify_message', None) or e})"
        if isinstance(e, socket.gaierror):
            return f"name does not resolve ({e.strerror or e})"
        if isinstance(e, ConnectionRefusedError) or getattr(e, "errno", None) == errno.ECONNREFUSED:
            return "connection refused"
        if isinstance(e, ConnectionResetError) or getattr(e, "errno", None) == errno.ECONNRESET:
            return "connection reset by peer"
    text = str(exc) or type(exc).__name__
    low = text.lower()
    if "name or service not known" in low or "nodename nor servname" in low:
        return f"name does not resolve ({text})"
    if type(exc).__name__ in ("ServerDisconnectedError", "RemoteProtocolError"):
        return f"connection closed by peer ({text})"
    if httpx is not None and isinstance(exc, httpx.ReadError) and not str(exc):
        return "connection reset or closed while reading the response"
    if "reset by peer" in low:
        return f"connection reset ({text})"
    if "refused" in low:
        return f"connection refused ({text})"
    if type(exc).__name__ == "TooManyRedirects":
        return f"more than {MAX_REDIRECTS} redirects"
    if isinstance(exc, ssl.SSLError) or type(exc).__name__.startswith("ClientConnectorSSL"):
        return f"TLS error ({text})"
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


# The phase-timed probe running in this task, if any: where the connector marks the end of
# the TCP connect and of the TLS handshake (aiohttp has no trace event between the two).
_MARKS: contextvars.ContextVar[dict[str, float] | None] = contextvars.ContextVar(
    "opsconsole_probe_marks", default=None
)


def _timed_connector(**kw: Any) -> aiohttp.TCPConnector:
    import aiohttp

    class TimedConnector(aiohttp.TCPConnector):
        async def _wrap_create_connection(self, *args: Any, **kwargs: Any) -> Any:
            marks = _MARKS.get()
            if marks is None or not args:
                return await super()._wrap_create_connection(*args, **kwargs)
            factory = args[0]

            def protocol() -> Any:
                # asyncio calls this once the socket is connected, before any TLS handshake.
                marks["tcp_done"] = time.perf_counter()
                return factory()

            result = await super()._wrap_create_connection(protocol, *args[1:], **kwargs)
            marks["conn_done"] = time.perf_counter()
            return result

    return TimedConnector(**kw)


def _trace_config() -> aiohttp.TraceConfig:
    import aiohttp

    def mark(name: str) -> Any:
        async def on(session: Any, ctx: Any, params: Any) -> None:
            marks = ctx.trace_request_ctx
            if marks is not None:
                marks[name] = time.perf_counter()

        return on

    tc = aiohttp.TraceConfig()
    tc.on_connection_create_start.append(mark("create_start"))
    tc.on_dns_resolvehost_start.append(mark("dns_start"))
    tc.on_dns_resolvehost_end.append(mark("dns_end"))
    tc.on_request_headers_sent.append(mark("headers_sent"))
    tc.on_request_end.append(mark("headers_received"))
    return tc


def _span(marks: dict[str, float], a: str, b: str) -> float | None:
    if a in marks and b in marks:
        return round((marks[b] - marks[a]) * 1000, 3)
    return None


def _phases(marks: dict[str, float], https: bool) -> dict[str, float | None]:
    start = "dns_end" if "dns_end" in marks else "create_start"
    return {
        "dns_ms": _span(marks, "dns_start", "dns_end"),
        "connect_ms": _span(marks, start, "tcp_done"),
        "tls_ms": _span(marks, "tcp_done", "conn_done") if https else None,
        "ttfb_ms": _span(marks, "headers_sent", "headers_received"),
        "transfer_ms": _span(marks, "headers_received", "body_done"),
    }


class HttpProbe:
    """HTTP(S) through aiohttp: one pooled session, one fresh-connection session for
    phase-timed probes (see the module docstring). TLS is verified unless an endpoint
    says ``verify_tls: false``; ``ca_file`` trusts a private CA."""

    def __init__(
        self,
        config: Config | None = None,
        *,
        max_connections: int = 100,
        per_host: int = 0,
    ) -> None:
        self.config = config
        self.max_connections = max_connections
        self.per_host = per_host
        self._sessions: dict[bool, aiohttp.ClientSession] = {}
        self._ssl: dict[tuple[bool, str | None], ssl.SSLContext | bool] = {}
        self._urls: dict[str, str] = {}

    def _ssl_for(self, target: Target) -> ssl.SSLContext | bool:
        ep = target.spec
        assert ep is not None
        ca = None
        if ep.ca_file is not None:
            ca = str(self.config.resolve(ep.ca_file) if self.config else ep.ca_file)
        key = (ep.verify_tls, ca)
        ctx = self._ssl.get(key)
        if ctx is None:
            ctx = ssl.create_default_context(cafile=ca) if ep.verify_tls else False
            self._ssl[key] = ctx
        return ctx

    def _session(self, phases: bool) -> aiohttp.ClientSession:
        session = self._sessions.get(phases)
        if session is None:
            import aiohttp

            kw: dict[str, Any] = {"limit": self.max_connections, "limit_per_host": self.per_host}
            if phases:
                connector = _timed_connector(force_close=True, use_dns_cache=False, **kw)
            else:
                connector = aiohttp.TCPConnector(**kw)
            session = aiohttp.ClientSession(
                connector=connector,
                # The probe bounds every request with its own timeout (asyncio.timeout).
                timeout=aiohttp.ClientTimeout(total=None),
                trust_env=False,
                headers={"User-Agent": "opsconsole-probe/1"},
                trace_configs=[_trace_config()] if phases else None,
                auto_decompress=True,
            )
            self._sessions[phases] = session
        return session

    def prepare(self, targets: list[Target]) -> None:
        """Build SSL contexts and URL strings up front: an SSL context takes milliseconds
        of CPU, which would otherwise land inside the timings of probes in flight."""
        for t in targets:
            if t.kind == "http" and t.spec is not None:
                self._ssl_for(t)
                self._urls[t.id] = str(t.spec.url)

    async def check(self, target: Target) -> Outcome:
        ep = target.spec
        assert ep is not None and ep.url is not None
        url = self._urls.get(target.id) or str(ep.url)
        sslctx = self._ssl_for(target)
        session = self._session(ep.phases)
        marks: dict[str, float] | None = {} if ep.phases else None
        token = _MARKS.set(marks) if marks is not None else None
        t0 = time.perf_counter()
        try:
            async with asyncio.timeout(target.timeout):
                async with session.get(
                    url,
                    ssl=sslctx,
                    allow_redirects=ep.follow_redirects,
                    max_redirects=MAX_REDIRECTS,
                    trace_request_ctx=marks,
                ) as resp:
                    status = resp.status
                    size = resp.content_length
                    if size is not None and size <= MAX_BODY:
                        body = await resp.read()
                    else:
                        body = await _read_capped(resp)
        except Exception as exc:
            timed_out = isinstance(exc, TimeoutError)
            error = describe_error(exc, target.timeout)
            if timed_out and marks is not None:
                error += " " + _where(marks)
            return Outcome(
                ok=False,
                latency_ms=None,
                error=error,
                phases=_phases(marks, url.startswith("https")) if marks is not None else None,
                timed_out=timed_out,
            )
        finally:
            if token is not None:
                _MARKS.reset(token)
        end = time.perf_counter()
        latency = (end - t0) * 1000
        phases = None
        if marks is not None:
            marks["body_done"] = end
            phases = _phases(marks, str(resp.url).startswith("https"))
        problem = check_response(ep.expect, status, body)
        if problem is not None:
            return Outcome(
                ok=False, latency_ms=latency, error=problem, status_code=status, phases=phases
            )
        return Outcome(
            ok=True,
            latency_ms=latency,
            status_code=status,
            phases=phases,
            slow=latency > target.latency_threshold_ms,
        )

    async def aclose(self) -> None:
        for session in self._sessions.values():
            await session.close()
        self._sessions.clear()


async def _read_capped(resp: aiohttp.ClientResponse) -> bytes:
    chunks: list[bytes] = []
    size = 0
    while size < MAX_BODY:
        chunk = await resp.content.read(MAX_BODY - size)
        if not chunk:
            break
        chunks.append(chunk)
        size += len(chunk)
    return b"".join(chunks)


def _where(marks: dict[str, float]) -> str:
    if "headers_received" in marks:
        return "reading the body"
    if "headers_sent" in marks:
        return "waiting for the response"
    if "dns_start" in marks and "dns_end" not in marks:
        return "resolving the name"
    return "connecting"


class _Connected(asyncio.Protocol):
    pass


class TcpProbe:
    """A TCP connect (and immediate close): a bare protocol, no stream objects."""

    async def check(self, target: Target) -> Outcome:
        assert target.spec is not None and target.spec.tcp is not None
        host, _, port = target.spec.tcp.rpartition(":")
        loop = asyncio.get_running_loop()
        t0 = time.perf_counter()
        try:
            async with asyncio.timeout(target.timeout):
                transport, _ = await loop.create_connection(_Connected, host, int(port))
            latency = (time.perf_counter() - t0) * 1000
            transport.close()
        except Exception as exc:
            return Outcome(
                ok=False,
                latency_ms=None,
                error=describe_error(exc, target.timeout),
                timed_out=isinstance(exc, TimeoutError),
            )
        return Outcome(ok=True, latency_ms=latency, slow=latency > target.latency_threshold_ms)

    async def aclose(self) -> None:
        return None


class SshProbe:
    """A check command on an inventory host over a kept SSH connection.

    The first probe of a host connects (host key verified against known_hosts through
    :func:`opsconsole.ssh.connect`, unknown or changed keys refused); later probes open a
    new channel on the same connection instead of reconnecting — the handshake and
    authentication are most of an SSH check's cost. A connection that died is replaced
    once. paramiko blocks, so each probe runs in a thread, bounded by its timeout."""

    def __init__(self, config: Config) -> None:
        self.config = config
        self._clients: dict[str, Any] = {}  # alias -> paramiko.SSHClient
        self._locks: dict[str, asyncio.Lock] = {}
        self.connects = 0  # connections opened (tests and the bench read it)

    def _connect(self, alias: str, timeout: float) -> Any:
        from opsconsole.ssh import connect, resolve_host

        host = resolve_host(self.config, alias)
        known = self.config.resolve(self.config.inventory.known_hosts)
        client = connect(host, timeout=timeout, known_hosts=known, alias=alias)
        self.connects += 1
        return client

    async def _client(self, alias: str, timeout: float) -> Any:
        lock = self._locks.setdefault(alias, asyncio.Lock())
        async with lock:  # one connect per host, even with several checks in flight
            client = self._clients.get(alias)
            transport = client.get_transport() if client is not None else None
            if transport is None or not transport.is_active():
                if client is not None:
                    client.close()
                self._clients.pop(alias, None)
                client = await asyncio.to_thread(self._connect, alias, timeout)
                self._clients[alias] = client
            return client

    async def check(self, target: Target) -> Outcome:
        from opsconsole.ssh import SshError
        from opsconsole.ssh.client import run_on_client

        ep = target.spec
        assert ep is not None and ep.ssh is not None
        alias = ep.ssh.host
        t0 = time.perf_counter()
        res: CommandResult | None = None
        for attempt in (1, 2):
            remaining = target.timeout - (time.perf_counter() - t0)
            try:
                client = await self._client(alias, max(remaining, 0.1))
            except SshError as exc:
                return Outcome(ok=False, latency_ms=None, error=str(exc))
            except Exception as exc:
                return Outcome(ok=False, latency_ms=None, error=describe_error(exc, target.timeout))
            res = await asyncio.to_thread(
                run_on_client, client, ep.ssh.command, timeout=max(remaining, 0.1), alias=alias
            )
            transport = client.get_transport()
            broken = transport is None or not transport.is_active()
            if res.exit_status is None and not res.timed_out and broken and attempt == 1:
                # The kept connection broke (host restarted, idle timeout): reconnect once.
                # (A channel refused on a live connection, e.g. sshd's MaxSessions, is
                # reported as it is: other checks may be using that connection.)
                self._drop(alias, client)
                continue
            break
        assert res is not None
        latency = (time.perf_counter() - t0) * 1000
        if res.timed_out:
            return Outcome(
                ok=False,
                latency_ms=None,
                error=f"timeout after {target.timeout:g}s",
                timed_out=True,
            )
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

    def _drop(self, alias: str, client: Any) -> None:
        if self._clients.get(alias) is client:  # not one another check already replaced
            del self._clients[alias]
        client.close()

    async def aclose(self) -> None:
        clients = list(self._clients.values())
        self._clients.clear()
        for client in clients:
            await asyncio.to_thread(client.close)
