"""The shipped runbooks, end to end against the demo deployment (a real router, real
services and real SQLite ledgers on 127.0.0.1)."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path
from typing import Any

import pytest

from tests.demo_fixture import demo, demo_thread  # noqa: F401
from tests.helpers import cli, dump, opened

pytestmark = pytest.mark.slow


def _client(info: Any) -> Any:
    from opsconsole.demo import DemoClient

    return DemoClient.from_state_dir(info.state_dir)


def _last_run(db_path: Path) -> dict[str, Any]:
    with opened(db_path) as db:
        return next(
            iter(
                db.query(
                    "SELECT * FROM runs WHERE parent_run IS NULL ORDER BY started_at DESC LIMIT 1"
                )
            )
        )


def test_regional_failover_and_fail_back(demo: Any, db_path: Path) -> None:  # noqa: F811
    client = _client(demo)
    cfg = ("--config", str(demo.config_dir))
    # Nothing is down: the gate refuses to fail over, and nothing changed.
    refused = cli(*cfg, "runbook", "run", "regional-failover", "--var", "region=sa-east-1", "--yes")
    assert refused.exit_code == 10, refused.output
    assert "is not down" in refused.stderr
    assert client.request("GET", "/routes")["routes"]["sa-east-1"]["payments"] == "sa-east-1"

    client.fault("sa-east-1", None, "down")
    result = cli(*cfg, "runbook", "run", "regional-failover", "--var", "region=sa-east-1", "--yes")
    assert result.exit_code == 0, result.output
    routes = client.request("GET", "/routes")
    assert set(routes["routes"]["sa-east-1"].values()) == {"eu-central-1"}
    assert routes["ledger_primary"]["sa-east-1"] == "eu-central-1"
    run = _last_run(db_path)
    measured = json.loads(run["measured"])
    assert measured["rto_seconds"] > 0 and "rpo_seconds" in measured
    hooks = client.request("GET", "/webhook")["received"]
    assert any("failed over to eu-central-1" in h["body"]["text"] for h in hooks)
    assert demo.api_key not in result.output

    # The region recovers; fail back through the rollback.
    client.fault("sa-east-1", None, "clear")
    back = cli(*cfg, "runbook", "rollback", run["id"], "--yes")
    assert back.exit_code == 12, back.output
    routes = client.request("GET", "/routes")
    assert set(routes["routes"]["sa-east-1"].values()) == {"sa-east-1"}
    assert routes["ledger_primary"]["sa-east-1"] == "sa-east-1"


def test_regional_failover_plan_changes_nothing(demo: Any) -> None:  # noqa: F811
    client = _client(demo)
    client.fault("ap-south-1", None, "down")
    plan = cli(
        "--config",
        str(demo.config_dir),
        "runbook",
        "plan",
        "regional-failover",
        "--var",
        "region=ap-south-1",
    )
    assert plan.exit_code == 0, plan.output
    assert "ran: succeeded" in plan.stdout  # the health gate really ran
    assert "<unknown: promote.json.lag_seconds>" in plan.stdout
    routes = client.request("GET", "/routes")
    assert routes["routes"]["ap-south-1"]["payments"] == "ap-south-1"
    assert routes["ledger_primary"]["ap-south-1"] == "ap-south-1"


def _wait_for_ledger_rows(ledger: Path, timeout: float = 60.0) -> None:
    """The demo's writer starts with the demo; on a loaded machine its first row can lag."""
    import time

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if ledger.exists():
            with sqlite3.connect(f"file:{ledger}?mode=ro", uri=True) as conn:
                try:
                    if conn.execute("SELECT count(*) FROM entries").fetchone()[0] > 0:
                        return
                except sqlite3.OperationalError:
                    pass
        time.sleep(0.1)
    raise AssertionError(f"the demo ledger {ledger} received no writes")


def test_backup_restore_reports_rpo(demo: Any, db_path: Path) -> None:  # noqa: F811
    _wait_for_ledger_rows(demo.state_dir / "ledger" / "ap-south-1.db")
    result = cli(
        "--config",
        str(demo.config_dir),
        "runbook",
        "run",
        "backup-restore",
        "--var",
        "region=ap-south-1",
        "--yes",
    )
    assert result.exit_code == 0, result.output
    run = _last_run(db_path)
    measured = json.loads(run["measured"])
    assert 0 <= measured["rpo_seconds"] < 600
    assert measured["rows_restored"] > 0
    backup = demo.state_dir / "backups" / "ap-south-1" / run["id"]
    digest = (backup / "ledger.db.sha256").read_text().split()[0]
    import hashlib

    assert hashlib.sha256((backup / "ledger.db").read_bytes()).hexdigest() == digest
    with sqlite3.connect(backup / "restored.db") as conn:
        assert (
            conn.execute("SELECT count(*) FROM entries").fetchone()[0] == measured["rows_restored"]
        )


def test_breach_response(demo: Any, db_path: Path) -> None:  # noqa: F811
    client = _client(demo)
    old_key = demo.api_key
    # Some traffic so the service has access logs.
    for _ in range(3):
        client.request("GET", "/serve/sa-east-1/payments/healthz")
    result = cli(
        "--config",
        str(demo.config_dir),
        "runbook",
        "run",
        "breach-response",
        "--var",
        "region=sa-east-1",
        "--var",
        "service=payments",
        "--yes",
    )
    assert result.exit_code == 0, result.output
    new_key = demo.api_key
    assert new_key != old_key
    assert new_key not in result.output
    run = _last_run(db_path)
    with opened(db_path) as db:
        assert new_key not in dump(db)
    assert ["sa-east-1", "payments"] in client.request("GET", "/routes")["quarantined"]
    evidence = demo.state_dir / "evidence" / run["id"]
    sums = (evidence / "SHA256SUMS").read_text()
    assert "sa-east-1-payments.log" in sums
    hooks = client.request("GET", "/webhook")["received"]
    assert any("Suspected breach of payments" in h["body"]["text"] for h in hooks)
    from opsconsole.runbooks.context import capabilities

    steps = json.loads(cli("runbook", "log", run["id"], "--json").stdout)["steps"]
    incident_step = next(s for s in steps if s["step_id"] == "open-incident")
    if capabilities()["incidents"]:
        assert incident_step["status"] == "succeeded", incident_step
        assert "data-breach" in incident_step["output"]
    else:
        assert incident_step["status"] == "skipped"


def test_small_runbooks_for_playbooks(demo: Any) -> None:  # noqa: F811
    cfg = ("--config", str(demo.config_dir))
    for args in (
        ["quarantine", "--var", "region=ap-south-1", "--var", "service=lending"],
        ["rotate-api-key"],
        ["breach-evidence", "--var", "region=sa-east-1", "--var", "incident=INC-TEST"],
    ):
        if args[0] == "breach-evidence":
            _client(demo).request("GET", "/serve/sa-east-1/gateway/healthz")
        result = cli(*cfg, "runbook", "run", *args, "--yes")
        assert result.exit_code == 0, (args, result.output)


async def test_regional_failover_runs_unattended_as_a_drill(demo: Any, db_path: Path) -> None:  # noqa: F811
    from opsconsole.audit import AuditLog
    from opsconsole.config import load_config
    from opsconsole.operator import UnattendedOperator
    from opsconsole.runbooks import RunEnv, find_runbook, load_runbook, rollback_run, start_run
    from opsconsole.store import open_db

    client = _client(demo)
    config = load_config(demo.config_dir)
    db = open_db(db_path)
    env = RunEnv(db=db, audit=AuditLog(db, actor="scheduler", interface="scheduler"), config=config)
    rb = load_runbook(find_runbook("regional-failover", config))
    client.fault("ap-southeast-1", None, "down")
    result = await start_run(
        rb, {"region": "ap-southeast-1"}, env=env, operator=UnattendedOperator(), mode="drill"
    )
    assert result.status == "succeeded", result.error
    assert result.measured["rto_seconds"] > 0
    assert "rpo_seconds" in result.measured
    client.fault("ap-southeast-1", None, "clear")
    back = await rollback_run(result.run_id, env=env, operator=UnattendedOperator())
    assert back.status == "rolled_back", back.error
    assert client.request("GET", "/routes")["ledger_primary"]["ap-southeast-1"] == "ap-southeast-1"


def test_backup_restore_verify_accepts_an_empty_ledger(tmp_path: Path) -> None:
    """A ledger with no entries yet (a fresh region) restores with an RPO of 0, not a crash."""
    import subprocess
    import sys

    import yaml

    from tests.helpers import SRC

    book = yaml.safe_load((SRC.parent / "runbooks" / "backup-restore.yaml").read_text())
    verify = next(s for s in book["steps"] if s["id"] == "verify")
    script = verify["shell"][2]
    for name in ("backup.db", "restored.db"):
        with sqlite3.connect(tmp_path / name) as conn:
            conn.execute(
                "CREATE TABLE entries (id INTEGER PRIMARY KEY, ts TEXT NOT NULL, "
                "account TEXT, amount_cents INTEGER)"
            )
    files = [str(tmp_path / "backup.db"), str(tmp_path / "restored.db")]
    proc = subprocess.run(
        [sys.executable, "-c", script, *files, "0"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["rpo_seconds"] == 0.0
