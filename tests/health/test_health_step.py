"""The runbook ``health`` / ``wait_until`` steps run the monitor: they and ``status`` agree
on every region's state (one definition of "down")."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from tests.health.servers import svc, write_config
from tests.helpers import cli


@pytest.fixture(autouse=True)
def _on_both_engines(store_engine: str) -> str:
    """Every test here keeps state in the store: run each on SQLite and on PostgreSQL."""
    return store_engine


# r1 healthy; r2 one critical service down (the failover plan used to call this "not
# down": it wanted every service down); r3 only a non-critical service down; r4 all
# down; r5 one of two endpoints of a critical service down.
EXPECTED = {"r1": "ok", "r2": "down", "r3": "degraded", "r4": "down", "r5": "degraded"}


def _deployment(tmp_path: Path, servers: Callable[..., Any]) -> Path:
    good, bad = servers(), servers()
    bad.mode = "fail"

    def region(services: dict[str, Any]) -> dict[str, Any]:
        return {"name": "R", "environment": "test", "services": services}

    two = svc(good.url)
    two["endpoints"] = [{"name": "a", "url": good.url}, {"name": "b", "url": bad.url}]
    write_config(
        tmp_path / "cfg",
        {"api": svc(good.url), "web": svc(good.url + "json")},
        extra_regions={
            "r2": region({"payments": svc(bad.url), "gateway": svc(good.url)}),
            "r3": region({"api": svc(good.url), "batch": svc(bad.url, critical=False)}),
            "r4": region({"api": svc(bad.url), "web": svc(bad.url)}),
            "r5": region({"api": two}),
        },
        probe={"hysteresis": {"down_after": 2, "recover_after": 1}},
    )
    return tmp_path / "cfg"


def _gate(tmp_path: Path, cfg: Path, region: str, expect: str) -> tuple[int, str]:
    path = tmp_path / f"gate-{region}-{expect}.yaml"
    path.write_text(
        f"name: gate-{region}-{expect}\nsteps:\n"
        f"  - id: gate\n    health: {{region: {region}, expect: {expect}, interval: 0.1}}\n"
    )
    res = cli("--config", str(cfg), "runbook", "run", str(path), "--yes")
    return res.exit_code, res.output


def _status(cfg: Path) -> dict[str, str]:
    res = cli("--config", str(cfg), "status", "--json")
    return {r: v["state"] for r, v in json.loads(res.stdout)["regions"].items()}


@pytest.mark.parametrize("first", ["status", "step"])
def test_health_step_and_status_agree_on_every_region(
    tmp_path: Path, servers: Callable[..., Any], first: str
) -> None:
    cfg = _deployment(tmp_path, servers)
    if first == "status":
        _status(cfg)  # one failure seen: degraded
        assert _status(cfg) == EXPECTED  # settled (down_after 2)
    for region, state in EXPECTED.items():
        code, out = _gate(tmp_path, cfg, region, "down")
        assert (code == 0) == (state == "down"), f"{region} ({state}): {out}"
        assert f"{region}: {state}:" in out, out
        if state != "down":
            assert f"{region} is not down" in out, out
        code, out = _gate(tmp_path, cfg, region, "up")
        assert (code == 0) == (state == "ok"), f"{region} ({state}): {out}"
    # The step's samples are the status's history: one more status run says the same.
    assert _status(cfg) == EXPECTED


def test_wait_until_sees_a_region_go_down_and_come_back(
    tmp_path: Path, servers: Callable[..., Any]
) -> None:
    srv = servers()
    write_config(
        tmp_path / "cfg",
        {"payments": svc(srv.url)},
        probe={"hysteresis": {"down_after": 2, "recover_after": 2}},
    )
    path = tmp_path / "wait.yaml"
    path.write_text(
        "name: wait\nsteps:\n"
        "  - id: down\n    timeout: 20\n"
        "    wait_until: {region: r1, expect: down, interval: 0.1}\n"
    )
    srv.mode = "fail"
    res = cli("--config", str(tmp_path / "cfg"), "runbook", "run", str(path), "--yes")
    assert res.exit_code == 0, res.output
    assert "r1: degraded:" in res.output and "r1: down:" in res.output  # through hysteresis
    assert _status(tmp_path / "cfg") == {"r1": "down"}
    srv.mode = "ok"
    path.write_text(path.read_text().replace("expect: down", "expect: up"))
    res = cli("--config", str(tmp_path / "cfg"), "runbook", "run", str(path), "--yes")
    assert res.exit_code == 0, res.output
    assert _status(tmp_path / "cfg") == {"r1": "ok"}


def test_health_step_probes_tcp_and_trusts_ca_file(
    tmp_path: Path, servers: Callable[..., Any]
) -> None:
    import ssl

    from tests.health.servers import self_signed

    cert, key = self_signed(tmp_path)
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ctx.load_cert_chain(cert, key)
    tls = servers(ssl_context=ctx)
    write_config(
        tmp_path / "cfg",
        {
            "api": svc(tls.url, ca_file=str(cert)),
            "db": svc(tcp=f"127.0.0.1:{tls.port}"),
        },
    )
    code, out = _gate(tmp_path, tmp_path / "cfg", "r1", "up")
    assert code == 0, out
