"""Probe kinds on their own: TLS trust, TCP, SSH against the real sshd, Prometheus source."""

from __future__ import annotations

import json
import ssl
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web

from opsconsole.health.monitor import Monitor
from opsconsole.health.probes import json_path
from opsconsole.health.prometheus import PrometheusSource
from tests.health.servers import LoopThread, self_signed, svc, write_config


@pytest.fixture
def tls_server(tmp_path: Path, servers: Callable[..., Any]) -> tuple[Any, Path]:
    cert, key = self_signed(tmp_path)
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ctx.load_cert_chain(cert, key)
    return servers(ssl_context=ctx), cert


async def test_untrusted_tls_certificate_is_refused_by_default(
    tmp_path: Path, tls_server: tuple[Any, Path]
) -> None:
    srv, cert = tls_server
    cfg = write_config(
        tmp_path / "cfg",
        {
            "default": svc(srv.url),
            "pinned": svc(srv.url, ca_file=str(cert)),
            "unverified": svc(srv.url, verify_tls=False),
        },
    )
    async with Monitor(cfg) as mon:
        snap = await mon.sweep()
    err = snap.service("r1", "default").targets[0].last_error
    assert err is not None and "certificate" in err.lower(), err
    assert snap.service("r1", "pinned").state == "ok"
    assert snap.service("r1", "unverified").state == "ok"


async def test_tls_phase_with_a_trusted_ca(tmp_path: Path, tls_server: tuple[Any, Path]) -> None:
    srv, cert = tls_server
    url = srv.url.replace("127.0.0.1", "localhost")  # name resolved by us, checked via SNI
    cfg = write_config(tmp_path / "cfg", {"api": svc(url, ca_file=str(cert), phases=True)})
    async with Monitor(cfg) as mon:
        t = (await mon.sweep()).targets()[0]
    assert t.state == "ok", t.last_error
    assert (
        t.phases is not None and t.phases["tls_ms"] is not None and t.phases["dns_ms"] is not None
    )


async def test_tcp_probe(tmp_path: Path, servers: Callable[..., Any]) -> None:
    srv = servers()
    cfg = write_config(tmp_path, {"db": svc(tcp=f"127.0.0.1:{srv.port}")})
    async with Monitor(cfg) as mon:
        t = (await mon.sweep()).targets()[0]
    assert t.state == "ok" and t.kind == "tcp" and t.last_latency_ms is not None


def test_json_path() -> None:
    assert json_path({"a": {"b": [1, {"c": 2}]}}, "a.b.1.c") == 2
    with pytest.raises(KeyError):
        json_path({"a": 1}, "a.b")


# --- SSH against the real sshd (tests/sshd.py) -------------------------------------------


def _ssh_config(tmp_path: Path, sshd: Any, checks: dict[str, dict[str, Any]]) -> Any:
    host = sshd.host()
    hosts = {
        "box": {
            "address": host.address,
            "port": host.port,
            "user": host.user,
            "key_file": str(host.key_file),
            "known_hosts": str(host.known_hosts),
        }
    }
    stranger = dict(hosts["box"], known_hosts=str(tmp_path / "empty_known_hosts"))
    (tmp_path / "empty_known_hosts").write_text("")
    hosts["stranger"] = stranger
    services = {
        name: {
            "critical": True,
            "objectives": {"latency_ms": 10000},
            "endpoints": [
                {
                    "ssh": {"host": c.pop("host", "box"), "command": c.pop("command")},
                    "timeout_seconds": 60,
                    **c,
                }
            ],
        }
        for name, c in checks.items()
    }
    return write_config(tmp_path / "cfg", services, region_extra={"hosts": hosts})


async def test_ssh_probe_against_real_sshd(tmp_path: Path, sshd: Any) -> None:
    cfg = _ssh_config(
        tmp_path,
        sshd,
        {
            "good": {"command": "echo healthy", "expect": {"output_contains": "healthy"}},
            "exit1": {"command": "echo oops >&2; exit 3"},
            "output": {"command": "echo sick", "expect": {"output_contains": "healthy"}},
            "unknownkey": {"command": "true", "host": "stranger"},
        },
    )
    async with Monitor(cfg) as mon:
        snap = await mon.sweep()
    assert snap.service("r1", "good").state == "ok", snap.service("r1", "good").last_error
    assert snap.service("r1", "exit1").last_error == "exit status 3: oops"
    assert snap.service("r1", "output").last_error == "output does not contain 'healthy'"
    err = snap.service("r1", "unknownkey").last_error
    assert err is not None and snap.service("r1", "unknownkey").state == "degraded"
    assert "known" in err.lower() or "host key" in err.lower(), err


async def test_ssh_probe_is_bounded_by_its_timeout(tmp_path: Path, sshd: Any) -> None:
    cfg = _ssh_config(tmp_path, sshd, {"slow": {"command": "sleep 30", "timeout_seconds": 2}})
    import time

    async with Monitor(cfg) as mon:
        t0 = time.monotonic()
        snap = await mon.sweep()
        elapsed = time.monotonic() - t0
    assert snap.service("r1", "slow").last_error == "timeout after 2s"
    assert elapsed < 2 + 5


# --- Prometheus (blackbox_exporter metrics through the HTTP API) ------------------------


def _prometheus(lt: LoopThread, results: dict[str, list[dict[str, Any]]]) -> tuple[str, Any]:
    async def query(request: web.Request) -> web.Response:
        q = request.query["query"]
        return web.json_response(
            {"status": "success", "data": {"resultType": "vector", "result": results.get(q, [])}}
        )

    async def start() -> Any:
        app = web.Application()
        app.router.add_get("/api/v1/query", query)
        runner = web.AppRunner(app, access_log=None, shutdown_timeout=1)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        return f"http://127.0.0.1:{port}", runner

    return lt.run(start())  # type: ignore[no-any-return]


async def test_prometheus_source_reads_blackbox_metrics(
    tmp_path: Path, loop_thread: LoopThread
) -> None:
    def series(instance: str, service: str, value: float, region: str = "r1") -> dict[str, Any]:
        return {
            "metric": {
                "instance": instance,
                "service": service,
                "region": region,
                "job": "blackbox",
            },
            "value": [0, str(value)],
        }

    url, runner = _prometheus(
        loop_thread,
        {
            "probe_success": [
                series("https://pay.example/healthz", "payments", 1),
                series("https://gw.example/healthz", "gateway", 0),
                series("https://other.example/", "gateway", 1, region="r2"),
            ],
            "probe_duration_seconds": [series("https://pay.example/healthz", "payments", 0.042)],
        },
    )
    try:
        src = PrometheusSource("r1", url, timeout=5)
        results = await src.collect()
        await src.aclose()
        by_id = {t.id: o for t, o in results}
        assert set(by_id) == {
            "r1/payments/https-pay.example-healthz",
            "r1/gateway/https-gw.example-healthz",
        }
        assert by_id["r1/payments/https-pay.example-healthz"].latency_ms == pytest.approx(42)
        assert not by_id["r1/gateway/https-gw.example-healthz"].ok

        cfg = write_config(tmp_path, {}, region_extra={"prometheus_url": url})
        async with Monitor(cfg) as mon:
            snap = await mon.sweep()
        assert snap.service("r1", "payments").state == "ok"
        assert snap.service("r1", "gateway").state == "degraded"
    finally:
        loop_thread.run(runner.cleanup())


async def test_unreachable_prometheus_is_a_failed_target(tmp_path: Path) -> None:
    src = PrometheusSource("r1", "http://127.0.0.1:9/", timeout=2)
    results = await src.collect()
    await src.aclose()
    assert [(t.id, o.ok) for t, o in results] == [("r1/prometheus/api", False)]
    assert json.dumps(results[0][1].error)
