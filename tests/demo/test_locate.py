"""Finding the running demo from a second terminal: ``demo env``, ``demo info``, ``demo fault``."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

from opsconsole.demo import DemoInfo, DemoThread
from opsconsole.demo.locate import pointer_file
from tests.helpers import cli


def test_demo_env_points_a_shell_at_a_demo_with_its_own_state_dir(demo: DemoInfo) -> None:
    res = cli("demo", "env")
    assert res.exit_code == 0, res.output
    assert res.stdout.splitlines()[0] == f"export OPSCONSOLE_CONFIG={demo.config_dir}"
    shell = subprocess.run(
        ["bash", "-c", 'eval "$1"; printf %s "$OPSCONSOLE_CONFIG"', "-", res.stdout],
        capture_output=True,
        text=True,
        check=True,
    )
    assert shell.stdout == str(demo.config_dir)
    checked = cli("config", "check", "--json", env={"OPSCONSOLE_CONFIG": shell.stdout})
    assert checked.exit_code == 0, checked.output
    assert json.loads(checked.stdout)["config"] == str(demo.config_dir)


def test_demo_env_quotes_paths_for_the_shell(tmp_path: Path) -> None:
    with DemoThread(tmp_path / "it's a demo dir") as info:
        res = cli("demo", "env")
        assert res.exit_code == 0, res.output
        shell = subprocess.run(
            ["bash", "-c", 'eval "$1"; printf %s "$OPSCONSOLE_CONFIG"', "-", res.stdout],
            capture_output=True,
            text=True,
            check=True,
        )
        assert shell.stdout == str(info.config_dir)


def test_demo_info_names_router_config_and_database(demo: DemoInfo) -> None:
    res = cli("demo", "info", "--json")
    assert res.exit_code == 0, res.output
    data = json.loads(res.stdout)
    assert data["router_url"] == demo.router_url
    assert data["config_dir"] == str(demo.config_dir)
    assert data["database"] == str(demo.db_path)
    text = cli("demo", "info")
    assert str(demo.config_dir) in text.stdout
    assert 'eval "$(opsconsole demo env)"' in text.stdout


def test_demo_fault_finds_the_demo_without_state_dir_or_config(demo: DemoInfo) -> None:
    res = cli("demo", "fault", "sa-east-1", "payments", "--down")
    assert res.exit_code == 0, res.output
    assert "sa-east-1/payments: down" in res.stdout
    assert cli("demo", "fault", "sa-east-1", "--clear").exit_code == 0


def test_no_running_demo_is_a_clean_error() -> None:
    for args in (["demo", "env"], ["demo", "info"]):
        res = cli(*args)
        assert res.exit_code == 4, res.output
        assert "no running demo found" in res.stderr
        assert "Traceback" not in res.output


def test_a_dead_demo_is_not_found(tmp_path: Path) -> None:
    """demo.json and the pointer left behind by a demo killed with -9 lead nowhere."""
    dead = tmp_path / "dead"
    (dead / "config").mkdir(parents=True)
    child = subprocess.Popen(["true"])
    child.wait()  # a pid that existed and is gone
    (dead / "demo.json").write_text(
        json.dumps(
            {
                "pid": child.pid,
                "router_url": "http://127.0.0.1:9",
                "state_dir": str(dead),
                "config_dir": str(dead / "config"),
                "database": str(dead / "opsconsole.db"),
            }
        )
    )
    pointer_file().parent.mkdir(parents=True, exist_ok=True)
    pointer_file().write_text(json.dumps({"state_dir": str(dead)}))
    res = cli("demo", "env")
    assert res.exit_code == 4, res.output
    res = cli("demo", "env", "--state-dir", str(dead))
    assert res.exit_code == 4, res.output
    assert f"no running demo in {dead}" in res.stderr


def test_the_pointer_goes_when_the_demo_stops(tmp_path: Path) -> None:
    with DemoThread(tmp_path / "d"):
        assert json.loads(pointer_file().read_text())["state_dir"] == str(tmp_path / "d")
    assert not pointer_file().exists()
    assert cli("demo", "env").exit_code == 4
