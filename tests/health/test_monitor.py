"""The monitor against real loopback servers: transitions, hysteresis, bad targets, limits."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from opsconsole.events import Event, EventBus
from opsconsole.health.model import ProbeResult, StateChanged, SweepCompleted
from opsconsole.health.monitor import Monitor
from tests.health.servers import svc, write_config


async def states(mon: Monitor, n: int, key: str = "r1/api") -> list[str]:
    out = []
    for _ in range(n):
        snap = await mon.sweep()
        region, service = key.split("/")
        out.append(snap.service(region, service).state)
    return out


async def until_state(mon: Monitor, want: str, key: str = "r1/api", timeout: float = 30) -> None:
    """Sweep until ``key`` is in state ``want`` (a loaded machine may be slow at first)."""
    deadline = time.monotonic() + timeout
    region, service = key.split("/")
    while (await mon.sweep()).service(region, service).state != want:
        assert time.monotonic() < deadline, f"{key} never became {want}"


async def test_ok_then_degraded_when_slow(tmp_path: Path, servers: Callable[..., Any]) -> None:
    srv = servers()
    cfg = write_config(
        tmp_path,
        {"api": svc(srv.url, latency_threshold_ms=1000, timeout_seconds=5)},
        probe={"hysteresis": {"down_after": 3, "recover_after": 1}},
    )
    async with Monitor(cfg) as mon:
        await until_state(mon, "ok")
        srv.mode, srv.delay_s = "slow", 1.5
        snap = await mon.sweep()
        svc_status = snap.service("r1", "api")
        assert svc_status.state == "degraded"
        assert svc_status.targets[0].last_latency_ms is not None
        assert svc_status.targets[0].last_latency_ms >= 1500


async def test_down_after_n_failures_and_recovery_after_m_successes(
    tmp_path: Path, servers: Callable[..., Any]
) -> None:
    srv = servers()
    cfg = write_config(
        tmp_path, {"api": svc(srv.url)}, probe={"hysteresis": {"down_after": 3, "recover_after": 2}}
    )
    async with Monitor(cfg) as mon:
        assert await states(mon, 1) == ["ok"]
        srv.mode = "fail"
        assert await states(mon, 3) == ["degraded", "degraded", "down"]
        srv.mode = "ok"
        assert await states(mon, 2) == ["down", "ok"]
        snap = mon.snapshot()
        t = snap.service("r1", "api").targets[0]
        assert t.last_error == "HTTP 500"
        assert t.availability == pytest.approx(100 * 3 / 6, abs=0.01)
        assert t.error_rate == pytest.approx(50.0)
        assert t.since is not None and t.p50 is not None and t.p99 is not None


async def test_one_blip_does_not_take_a_target_down(
    tmp_path: Path, servers: Callable[..., Any]
) -> None:
    srv = servers()
    srv.mode = "flap"
    cfg = write_config(
        tmp_path, {"api": svc(srv.url)}, probe={"hysteresis": {"down_after": 2, "recover_after": 2}}
    )
    async with Monitor(cfg) as mon:
        seen = await states(mon, 8)
    assert "down" not in seen and "degraded" in seen


async def test_5xx_is_a_failure_with_its_status(
    tmp_path: Path, servers: Callable[..., Any]
) -> None:
    srv = servers()
    srv.mode = "fail"
    cfg = write_config(tmp_path, {"api": svc(srv.url)})
    async with Monitor(cfg) as mon:
        t = (await mon.sweep()).targets()[0]
    assert t.state == "degraded" and t.last_error == "HTTP 500"


async def test_accepts_but_never_answers_times_out(
    tmp_path: Path, servers: Callable[..., Any]
) -> None:
    hang = servers("hang")
    cfg = write_config(tmp_path, {"api": svc(hang.url, timeout_seconds=1)})
    async with Monitor(cfg) as mon:
        t = (await mon.sweep()).targets()[0]
    assert not t.history[-1] and t.last_error is not None
    assert t.last_error.startswith("timeout after 1s")


async def test_connection_reset(tmp_path: Path, servers: Callable[..., Any]) -> None:
    rst = servers("reset")
    cfg = write_config(tmp_path, {"api": svc(rst.url)})
    async with Monitor(cfg) as mon:
        t = (await mon.sweep()).targets()[0]
    assert t.last_error is not None
    assert "reset" in t.last_error or "closed" in t.last_error, t.last_error


async def test_name_that_does_not_resolve(tmp_path: Path) -> None:
    cfg = write_config(
        tmp_path,
        {
            "plain": svc("http://no-such-host.invalid/"),
            "timed": svc("http://no-such-host.invalid/", phases=True),
        },
    )
    async with Monitor(cfg) as mon:
        snap = await mon.sweep()
    for t in snap.targets():
        assert t.last_error is not None and "does not resolve" in t.last_error, t.last_error


async def test_refused_connection(tmp_path: Path) -> None:
    import socket

    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    cfg = write_config(
        tmp_path, {"api": svc(f"http://127.0.0.1:{port}/"), "tcp": svc(tcp=f"127.0.0.1:{port}")}
    )
    async with Monitor(cfg) as mon:
        snap = await mon.sweep()
    for t in snap.targets():
        assert t.last_error is not None and "refused" in t.last_error, t.last_error


async def test_sweep_with_bad_targets_finishes_within_largest_timeout(
    tmp_path: Path, servers: Callable[..., Any]
) -> None:
    hang, rst, ok = servers("hang"), servers("reset"), servers()
    services = {
        "hang1": svc(hang.url, timeout_seconds=1.5),
        "hang2": svc(hang.url + "x", timeout_seconds=1),
        "hangtcp": svc(tcp=f"127.0.0.1:{hang.port}", timeout_seconds=1),
        "reset": svc(rst.url, timeout_seconds=1),
        "dns": svc("http://no-such-host.invalid/", timeout_seconds=1.5),
        "ok": svc(ok.url, timeout_seconds=1),
    }
    cfg = write_config(tmp_path, services, probe={"per_host_concurrency": 10})
    async with Monitor(cfg) as mon:
        t0 = time.monotonic()
        snap = await mon.sweep()
        elapsed = time.monotonic() - t0
    assert elapsed < 1.5 + 2.0, elapsed  # the largest timeout plus a generous margin
    assert snap.service("r1", "ok").state == "ok"
    assert snap.service("r1", "hang1").targets[0].last_error.startswith("timeout")  # type: ignore[union-attr]


async def test_per_host_and_global_concurrency_limits(
    tmp_path: Path, servers: Callable[..., Any]
) -> None:
    srv = servers()
    srv.hold_s = 0.2
    services = {f"s{i}": svc(srv.url + f"?i={i}") for i in range(8)}
    cfg = write_config(tmp_path, services, probe={"per_host_concurrency": 2, "concurrency": 50})
    async with Monitor(cfg) as mon:
        await mon.sweep()
    assert srv.max_in_flight == 2
    shared = {"now": 0, "max": 0}
    a, b = servers(shared=shared), servers(shared=shared)
    a.hold_s = b.hold_s = 0.2
    services = {f"a{i}": svc(a.url + f"?i={i}") for i in range(6)}
    services.update({f"b{i}": svc(b.url + f"?i={i}") for i in range(6)})
    cfg = write_config(tmp_path, services, probe={"per_host_concurrency": 8, "concurrency": 3})
    async with Monitor(cfg) as mon:
        await mon.sweep()
    assert shared["max"] == 3 and a.hits == b.hits == 6


async def test_conditions_on_json_and_body(tmp_path: Path, servers: Callable[..., Any]) -> None:
    srv = servers()
    url = srv.url + "json"
    cfg = write_config(
        tmp_path,
        {
            "json": svc(url, expect={"json_equals": {"status": "ok", "nested.v": 1}}),
            "body": svc(url, expect={"body_contains": "nested"}),
            "status": svc(url, expect={"status": "300-399"}),
        },
    )
    async with Monitor(cfg) as mon:
        snap = await mon.sweep()
        assert snap.service("r1", "json").state == "ok"
        assert snap.service("r1", "body").state == "ok"
        assert snap.service("r1", "status").targets[0].last_error == "HTTP 200"
        srv.json_status = "bad"
        snap = await mon.sweep()
    assert snap.service("r1", "json").targets[0].last_error == "JSON status = 'bad', expected 'ok'"


async def test_phase_timings(tmp_path: Path, servers: Callable[..., Any]) -> None:
    srv = servers()
    cfg = write_config(
        tmp_path, {"api": svc(srv.url.replace("127.0.0.1", "localhost"), phases=True)}
    )
    async with Monitor(cfg) as mon:
        await mon.sweep()
        t = (await mon.sweep()).targets()[0]
    assert t.state == "ok"
    assert t.phases is not None
    for phase in ("dns_ms", "connect_ms", "ttfb_ms", "transfer_ms"):
        assert t.phases[phase] is not None and t.phases[phase] >= 0, phase
    assert t.phases["tls_ms"] is None  # plain HTTP


async def test_roll_up_region_down_only_for_critical_services(
    tmp_path: Path, servers: Callable[..., Any]
) -> None:
    good, bad = servers(), servers()
    bad.mode = "fail"
    cfg = write_config(
        tmp_path,
        {"core": svc(good.url), "extra": svc(bad.url, critical=False)},
        probe={"hysteresis": {"down_after": 1, "recover_after": 1}},
    )
    async with Monitor(cfg) as mon:
        snap = await mon.sweep()
        assert snap.service("r1", "extra").state == "down"
        assert snap.regions["r1"].state == "degraded"
        assert snap.exit_code == 2
        good.mode = "fail"
        snap = await mon.sweep()
    assert snap.regions["r1"].state == "down"


async def test_events_on_the_bus(tmp_path: Path, servers: Callable[..., Any]) -> None:
    srv = servers()
    cfg = write_config(
        tmp_path, {"api": svc(srv.url)}, probe={"hysteresis": {"down_after": 1, "recover_after": 1}}
    )
    bus = EventBus()
    seen: list[Event] = []
    bus.subscribe(seen.append)
    async with Monitor(cfg, bus=bus) as mon:
        await mon.sweep()
        srv.mode = "fail"
        await mon.sweep()
    assert sum(isinstance(e, ProbeResult) for e in seen) == 2
    assert sum(isinstance(e, SweepCompleted) for e in seen) == 2
    changes = [(e.level, e.old, e.new) for e in seen if isinstance(e, StateChanged)]
    assert ("service", "ok", "down") in changes and ("region", "ok", "down") in changes


async def test_sweeps_iterator_and_listener(tmp_path: Path, servers: Callable[..., Any]) -> None:
    import asyncio

    srv = servers()
    cfg = write_config(tmp_path, {"api": svc(srv.url)})
    got: list[int] = []
    stop = asyncio.Event()
    async with Monitor(cfg) as mon:
        mon.on_sweep(lambda s: got.append(s.sweeps))
        async for snap in mon.sweeps(stop=stop):
            if snap.sweeps == 3:
                stop.set()
    assert got == [1, 2, 3]
