"""``opsconsole status`` / ``watch`` / ``host``, and demo faults seen through ``status``."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from opsconsole.demo import DemoInfo
from tests.health.servers import svc, write_config
from tests.helpers import cli


@pytest.fixture(autouse=True)
def _on_both_engines(store_engine: str) -> str:
    """Every test here keeps state in the store: run each on SQLite and on PostgreSQL."""
    return store_engine


def test_status_exit_0_when_all_ok(tmp_path: Path, servers: Callable[..., Any]) -> None:
    srv = servers()
    # Latency objectives far above anything a loaded machine produces: this test is about
    # availability, not speed (a first request took over 1 s on a busy CI machine).
    api, web = svc(srv.url), svc(srv.url + "json")
    for s in (api, web):
        s["objectives"]["latency_ms"] = 60_000
    write_config(tmp_path / "cfg", {"api": api, "web": web})
    res = cli("--config", str(tmp_path / "cfg"), "status")
    assert res.exit_code == 0, res.output
    assert "✔ ok" in res.stdout and "api" in res.stdout and "2 ok" in res.stdout
    res = cli("--config", str(tmp_path / "cfg"), "status", "--json")
    data = json.loads(res.stdout)
    assert data["state"] == "ok" and data["exit_code"] == 0
    assert data["regions"]["r1"]["services"]["api"]["state"] == "ok"


def test_status_exit_1_degraded_then_2_down(tmp_path: Path, servers: Callable[..., Any]) -> None:
    srv = servers()
    srv.mode = "fail"
    write_config(
        tmp_path / "cfg",
        {"api": svc(srv.url)},
        probe={"hysteresis": {"down_after": 2, "recover_after": 1}},
    )
    res = cli("--config", str(tmp_path / "cfg"), "status")
    assert res.exit_code == 1, res.output
    assert "▲ degraded" in res.stdout and "HTTP 500" in res.stdout
    res = cli("--config", str(tmp_path / "cfg"), "status")  # continues the stored hysteresis
    assert res.exit_code == 2, res.output
    assert "✖ down" in res.stdout
    srv.mode = "ok"
    assert cli("--config", str(tmp_path / "cfg"), "status").exit_code == 0


def test_status_shows_a_flapping_service(tmp_path: Path, servers: Callable[..., Any]) -> None:
    srv = servers()
    srv.mode = "flap"
    write_config(
        tmp_path / "cfg",
        {"api": svc(srv.url)},
        probe={"flapping": {"window": 4, "threshold": 3}},
    )
    codes = [cli("--config", str(tmp_path / "cfg"), "status") for _ in range(4)]
    res = codes[-1]  # ok, fail, ok, fail: 3 changes in 4 probes
    assert res.exit_code == 1, res.output
    assert "↕ flapping" in res.stdout and "1 flapping" in res.stdout, res.stdout
    data = json.loads(cli("--config", str(tmp_path / "cfg"), "status", "--json").stdout)
    target = data["regions"]["r1"]["services"]["api"]["targets"][0]
    assert target["flapping"] is True and data["regions"]["r1"]["state"] == "flapping"


def test_status_filters_by_region_and_service(tmp_path: Path, servers: Callable[..., Any]) -> None:
    good, bad = servers(), servers()
    bad.mode = "fail"
    write_config(tmp_path / "cfg", {"api": svc(good.url), "broken": svc(bad.url)})
    assert cli("--config", str(tmp_path / "cfg"), "status", "--service", "api").exit_code == 0
    assert cli("--config", str(tmp_path / "cfg"), "status", "--region", "r1").exit_code == 1


def test_status_exit_3_on_configuration_errors(tmp_path: Path) -> None:
    bad = tmp_path / "bad"
    bad.mkdir()
    (bad / "inventory.yaml").write_text("regions:\n  r1:\n    name: X\n    services: 5\n")
    res = cli("--config", str(bad), "status")
    assert res.exit_code == 3 and "inventory.yaml:4" in res.output
    good = tmp_path / "good"
    write_config(good, {"api": svc("http://127.0.0.1:9/")})
    res = cli("--config", str(good), "status", "--region", "mars")
    assert res.exit_code == 3 and "no region 'mars'" in res.output
    assert cli("status").exit_code == 3  # no config directory at all


def _status_until(demo: DemoInfo, want: int, timeout: float = 120) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while True:
        res = cli("--config", str(demo.config_dir), "status", "--json")
        data: dict[str, Any] = json.loads(res.stdout)
        assert data["exit_code"] == res.exit_code
        if res.exit_code == want:
            return data
        assert time.monotonic() < deadline, f"status never exited {want}: {res.output}"
        time.sleep(0.2)


def test_demo_fault_turns_status_down_and_clear_recovers(demo: DemoInfo) -> None:
    res = cli("--config", str(demo.config_dir), "status")
    assert res.exit_code in (0, 1), res.output  # 1 only if this machine is very slow
    assert len([ln for ln in res.stdout.splitlines() if "gateway" in ln]) == 4
    fault = cli(
        "demo", "fault", "--state-dir", str(demo.state_dir), "sa-east-1", "payments", "--down"
    )
    assert fault.exit_code == 0, fault.output
    data = _status_until(demo, 2)  # demo hysteresis: down after 2 failed sweeps
    sa = data["regions"]["sa-east-1"]
    assert sa["state"] == "down" and sa["services"]["payments"]["state"] == "down"
    assert data["regions"]["eu-central-1"]["services"]["payments"]["state"] != "down"
    cli("demo", "fault", "--state-dir", str(demo.state_dir), "sa-east-1", "--clear")
    deadline = time.monotonic() + 120
    while True:
        res = cli("--config", str(demo.config_dir), "status", "--json")
        state = json.loads(res.stdout)["regions"]["sa-east-1"]["services"]["payments"]["state"]
        if state == "ok":
            break
        assert time.monotonic() < deadline, res.stdout
    assert res.exit_code in (0, 1)


def test_watch_draws_the_table_with_history(tmp_path: Path, servers: Callable[..., Any]) -> None:
    srv = servers()
    write_config(tmp_path / "cfg", {"api": svc(srv.url)})
    res = cli("--config", str(tmp_path / "cfg"), "watch", "--sweeps", "2")
    assert res.exit_code == 0, res.output
    assert "history" in res.stdout and "✔ ok" in res.stdout


def test_sparkline_marks_failures() -> None:
    from opsconsole.cli.health_cmd import sparkline

    assert sparkline([1.0, 8.0, None, 4.0]) == "▁█×▄"
    assert sparkline([None, None]) == "××"


def test_host_metrics_json() -> None:
    res = cli("host", "--json", "--interval", "0.1")
    assert res.exit_code in (0, 1)
    data = json.loads(res.stdout)
    assert {"cpu_percent", "load", "memory_percent", "disks", "net_sent_bytes_per_s"} <= set(data)
    assert data["state"] == ("ok" if res.exit_code == 0 else "degraded")


def test_help_lists_the_health_and_demo_commands() -> None:
    res = cli("--help")
    for word in ("status", "watch", "host", "demo"):
        assert word in res.stdout
