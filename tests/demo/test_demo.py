"""The demo deployment: files it writes, the router's admin API, ledgers, the CLI."""

from __future__ import annotations

import json
import signal
import sqlite3
import time
from collections.abc import Callable

import httpx
import pytest

from opsconsole.config import load_config
from opsconsole.demo import DemoInfo
from tests.helpers import cli

REGIONS = ["ap-southeast-1", "ap-south-1", "sa-east-1", "eu-central-1"]


def wait_for(cond: Callable[[], object], timeout: float = 20) -> object:
    deadline = time.monotonic() + timeout
    while True:
        value = cond()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError("condition not met in time")
        time.sleep(0.05)


def auth(info: DemoInfo) -> dict[str, str]:
    return {"Authorization": f"Bearer {info.api_key}"}


def test_demo_writes_a_valid_inventory_with_four_regions(demo: DemoInfo) -> None:
    cfg = load_config(demo.config_dir)
    inv = cfg.inventory
    assert list(inv.regions) == REGIONS
    assert inv.regions["ap-southeast-1"].standby == "ap-south-1"
    assert inv.regions["sa-east-1"].standby == "eu-central-1"
    assert {r.environment for r in inv.regions.values()} == {"demo"}
    for region in inv.regions.values():
        assert set(region.services) == {"gateway", "payments", "lending"}
    for key in (
        "router_url",
        "state_dir",
        "ledger_dir",
        "log_dir",
        "evidence_dir",
        "api_key_file",
        "webhook_url",
    ):
        assert key in inv.vars
    assert inv.vars["router_url"] == demo.router_url
    assert [str(w.url).rstrip("/") for w in cfg.settings.webhooks] == [demo.router_url + "/webhook"]
    assert cfg.database == demo.db_path and demo.db_path.is_file()
    meta = json.loads((demo.state_dir / "demo.json").read_text())
    assert meta["router_url"] == demo.router_url


def test_every_service_answers_healthz(demo: DemoInfo) -> None:
    for key in demo.service_ports:
        region, service = key.split("/")
        resp = httpx.get(demo.service_url(region, service))
        assert resp.status_code == 200
        assert resp.json()["status"] == "ok"
        assert resp.json()["region"] == region


def test_mutating_admin_calls_need_the_api_key(demo: DemoInfo) -> None:
    body = {"region": "sa-east-1", "mode": "down"}
    assert httpx.post(demo.router_url + "/faults", json=body).status_code == 401
    bad = {"Authorization": "Bearer nope"}
    assert httpx.post(demo.router_url + "/faults", json=body, headers=bad).status_code == 401
    assert httpx.get(demo.router_url + "/routes").status_code == 200


def test_fault_down_then_clear(demo: DemoInfo) -> None:
    url = demo.service_url("sa-east-1", "payments")
    r = httpx.post(
        demo.router_url + "/faults",
        headers=auth(demo),
        json={"region": "sa-east-1", "service": "payments", "mode": "down"},
    )
    assert r.status_code == 200
    assert r.json()["faults"] == [
        {"region": "sa-east-1", "service": "payments", "mode": "down", "value": None}
    ]
    assert httpx.get(url).status_code == 503
    assert httpx.get(demo.service_url("sa-east-1", "gateway")).status_code == 200
    httpx.post(
        demo.router_url + "/faults",
        headers=auth(demo),
        json={"region": "sa-east-1", "mode": "clear"},
    )
    assert httpx.get(url).status_code == 200
    assert httpx.get(demo.router_url + "/faults").json() == {"faults": []}


def test_fault_slow_adds_latency(demo: DemoInfo) -> None:
    httpx.post(
        demo.router_url + "/faults",
        headers=auth(demo),
        json={"region": "eu-central-1", "service": "gateway", "mode": "slow", "value": 300},
    )
    t0 = time.perf_counter()
    assert httpx.get(demo.service_url("eu-central-1", "gateway")).status_code == 200
    assert time.perf_counter() - t0 >= 0.3


def test_bad_fault_requests_are_rejected(demo: DemoInfo) -> None:
    h = auth(demo)
    assert (
        httpx.post(
            demo.router_url + "/faults", headers=h, json={"region": "mars-1", "mode": "down"}
        ).status_code
        == 404
    )
    assert (
        httpx.post(
            demo.router_url + "/faults", headers=h, json={"region": "sa-east-1", "mode": "melt"}
        ).status_code
        == 404
    )
    assert (
        httpx.post(
            demo.router_url + "/faults",
            headers=h,
            json={"region": "sa-east-1", "mode": "errors", "value": 400},
        ).status_code
        == 400
    )


def test_routes_serve_and_quarantine(demo: DemoInfo) -> None:
    h = auth(demo)
    serve = demo.router_url + "/serve/sa-east-1/payments/healthz"
    assert httpx.get(serve).json()["served_by"] == "sa-east-1"
    httpx.post(demo.router_url + "/faults", headers=h, json={"region": "sa-east-1", "mode": "down"})
    assert httpx.get(serve).status_code == 503
    r = httpx.post(
        demo.router_url + "/routes/sa-east-1", headers=h, json={"serve_from": "eu-central-1"}
    )
    assert r.json()["routes"]["sa-east-1"] == {
        s: "eu-central-1" for s in ("gateway", "payments", "lending")
    }
    resp = httpx.get(serve)
    assert resp.status_code == 200 and resp.json()["served_by"] == "eu-central-1"
    httpx.post(
        demo.router_url + "/routes/sa-east-1/payments", headers=h, json={"serve_from": "sa-east-1"}
    )
    assert (
        httpx.get(demo.router_url + "/routes").json()["routes"]["sa-east-1"]["payments"]
        == "sa-east-1"
    )
    httpx.post(demo.router_url + "/quarantine/ap-south-1/lending", headers=h)
    assert httpx.get(demo.router_url + "/routes").json()["quarantined"] == [
        ["ap-south-1", "lending"]
    ]
    assert httpx.get(demo.router_url + "/serve/ap-south-1/lending/healthz").status_code == 503
    httpx.delete(demo.router_url + "/quarantine/ap-south-1/lending", headers=h)
    assert httpx.get(demo.router_url + "/serve/ap-south-1/lending/healthz").status_code == 200


def _count(path: object) -> int:
    conn = sqlite3.connect(str(path))
    try:
        return int(conn.execute("SELECT count(*) FROM entries").fetchone()[0])
    finally:
        conn.close()


def test_ledger_keeps_receiving_writes_and_promotes_the_standby(demo: DemoInfo) -> None:
    primary = demo.state_dir / "ledger" / "sa-east-1.db"
    first = _count(primary)
    wait_for(lambda: _count(primary) > first + 2)
    r = httpx.post(demo.router_url + "/ledger/sa-east-1/promote", headers=auth(demo))
    assert r.status_code == 200
    body = r.json()
    assert body["region"] == "sa-east-1" and body["primary"] == "eu-central-1"
    assert body["lag_seconds"] >= 0
    assert (
        httpx.get(demo.router_url + "/routes").json()["ledger_primary"]["sa-east-1"]
        == "eu-central-1"
    )
    standby = demo.state_dir / "ledger" / "standby" / "sa-east-1.db"
    before = _count(standby)
    wait_for(lambda: _count(standby) > before + 2)
    r = httpx.post(demo.router_url + "/ledger/sa-east-1/demote", headers=auth(demo))
    assert r.json()["primary"] == "sa-east-1"
    assert _count(primary) >= _count(standby) - 1


def test_api_key_rotation_rewrites_the_key_file(demo: DemoInfo) -> None:
    old = demo.api_key
    r = httpx.post(demo.router_url + "/api-key/rotate", headers={"Authorization": f"Bearer {old}"})
    new = r.json()["api_key"]
    assert new != old and demo.api_key == new
    assert (
        httpx.post(
            demo.router_url + "/api-key/rotate", headers={"Authorization": f"Bearer {old}"}
        ).status_code
        == 401
    )


def test_webhook_sink_stores_posts_without_a_key(demo: DemoInfo) -> None:
    assert httpx.post(demo.router_url + "/webhook", json={"text": "hello"}).status_code == 200
    received = httpx.get(demo.router_url + "/webhook").json()["received"]
    assert received[-1]["body"] == {"text": "hello"}


def test_access_logs_record_requests(demo: DemoInfo) -> None:
    httpx.get(demo.service_url("ap-south-1", "payments"), headers={"User-Agent": "probe-test"})
    log = demo.state_dir / "logs" / "ap-south-1-payments.log"
    assert 'ua="probe-test"' in log.read_text()


def test_demo_fault_cli_injects_and_clears(demo: DemoInfo) -> None:
    url = demo.service_url("sa-east-1", "payments")
    res = cli(
        "demo", "fault", "--state-dir", str(demo.state_dir), "sa-east-1", "payments", "--down"
    )
    assert res.exit_code == 0, res.output
    assert "sa-east-1/payments: down" in res.stdout
    assert httpx.get(url).status_code == 503
    res = cli("--config", str(demo.config_dir), "demo", "fault", "sa-east-1", "--errors", "100")
    assert res.exit_code == 0, res.output
    assert httpx.get(demo.service_url("sa-east-1", "lending")).status_code == 503
    res = cli("demo", "fault", "--state-dir", str(demo.state_dir), "sa-east-1", "--clear")
    assert res.exit_code == 0, res.output
    assert httpx.get(url).status_code == 200
    audit = cli("audit", "list", "--action", "demo.fault", "--json")
    assert [e["target"] for e in json.loads(audit.stdout)] == [
        "sa-east-1/payments",
        "sa-east-1/*",
        "sa-east-1/*",
    ]


def test_demo_fault_cli_needs_exactly_one_mode(demo: DemoInfo) -> None:
    res = cli("demo", "fault", "--state-dir", str(demo.state_dir), "sa-east-1", "--down", "--flap")
    assert res.exit_code == 2


def test_demo_fault_cli_checks_values_and_names(demo: DemoInfo) -> None:
    base = ("demo", "fault", "--state-dir", str(demo.state_dir))
    for bad in (("--errors", "150"), ("--slow", "-5")):
        res = cli(*base, "sa-east-1", *bad)
        assert res.exit_code == 2, res.output
    res = cli(*base, "mars-north-1", "--down")
    assert res.exit_code == 4, res.output
    assert "refused: 404" in res.stderr


def test_demo_fault_without_a_running_demo_is_a_clean_error(tmp_path: object) -> None:
    res = cli("demo", "fault", "--state-dir", str(tmp_path), "sa-east-1", "--down")
    assert res.exit_code == 4
    assert "no running demo" in res.output


def test_headless_demo_stops_cleanly_on_sigterm(demo_process: DemoInfo) -> None:
    assert httpx.get(demo_process.router_url + "/routes").status_code == 200
    meta = json.loads((demo_process.state_dir / "demo.json").read_text())
    import os

    os.kill(meta["pid"], signal.SIGTERM)
    wait_for(lambda: not (demo_process.state_dir / "demo.json").exists())
    with pytest.raises(httpx.ConnectError):
        httpx.get(demo_process.router_url + "/routes", timeout=5)


def test_second_demo_in_the_same_state_dir_is_refused(demo_process: DemoInfo) -> None:
    res = cli("demo", "--no-ui", "--state-dir", str(demo_process.state_dir))
    assert res.exit_code == 7
    assert "already running" in res.output
