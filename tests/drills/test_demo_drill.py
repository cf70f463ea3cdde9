"""End to end: an unattended live drill of the shipped failover runbook against the demo."""

from __future__ import annotations

import json
from datetime import timedelta
from pathlib import Path

import pytest

from opsconsole.demo import DemoClient, DemoInfo
from opsconsole.drills import store
from opsconsole.store import open_db
from opsconsole.timeutil import isoformat, utcnow
from tests.drills.conftest import wait_for
from tests.helpers import cli, cli_subprocess

pytestmark = pytest.mark.timeout(600)


def test_scheduled_live_failover_drill_against_the_demo_records_rto_and_verdict(
    demo: DemoInfo, db_path: Path
) -> None:
    c = ["--config", str(demo.config_dir)]
    due = utcnow() + timedelta(seconds=2)
    res = cli(
        *c,
        "drill",
        "add",
        "sa-failover",
        "--plan",
        "payments-bcp",
        "--kind",
        "live",
        "--runbook",
        "regional-failover",
        "--param",
        "region=sa-east-1",
        "--target",
        "sa-east-1",
        "--at",
        isoformat(due),
        "--rto",
        "120",
        "--rpo",
        "10",
        "--owner",
        "sre-latam",
    )
    assert res.exit_code == 0, res.output
    # The disaster the drill rehearses: Sao Paulo goes down.
    DemoClient(demo.router_url, demo.api_key_file).fault("sa-east-1", None, "down")
    wait_for(lambda: utcnow() > due, what="the drill to fall due")

    once = cli_subprocess(*c, "scheduler", "--once", timeout=400)
    assert once.returncode == 0, once.stdout + once.stderr
    events = [
        json.loads(line)["event"] for line in once.stdout.splitlines() if line.startswith("{")
    ]
    assert "drill.run.started" in events and "drill.run.finished" in events

    [run] = store.history(open_db(db_path), "sa-failover")
    assert run.status == "passed", (run.reason, run.findings)
    assert run.interface == "scheduler" and run.run_status == "succeeded"
    assert run.rto_seconds is not None and 0 < run.rto_seconds <= 120 and run.rto_met is True
    assert run.rpo_seconds is not None and run.rpo_met is True
    routes = DemoClient(demo.router_url, demo.api_key_file).request("GET", "/routes")
    assert routes["routes"]["sa-east-1"]["payments"] == "eu-central-1"

    # One live drill is not the whole programme: two a year and a recent plan review.
    report = cli(*c, "drill", "report", "--plan", "payments-bcp", "--format", "md").stdout
    assert "programme NOT KEPT" in report
    assert f"| {run.when:%Y-%m-%d} | sa-failover | passed |" in report
    assert (
        cli(
            *c,
            "drill",
            "record",
            "payments-walkthrough",
            "--plan",
            "payments-bcp",
            "--participants",
            "ana,bo",
            "--notes",
            "tabletop",
        ).exit_code
        == 0
    )
    assert cli(*c, "drill", "review", "payments-bcp", "--notes", "yearly").exit_code == 0
    report = cli(*c, "drill", "report", "--plan", "payments-bcp", "--format", "md", "--check")
    assert report.exit_code == 0 and "programme KEPT" in report.stdout


def test_unattended_drill_against_a_healthy_region_fails_at_the_gate(
    demo: DemoInfo, db_path: Path
) -> None:
    # No disaster injected: the runbook's gate refuses to fail over a healthy region,
    # and the drill records that as a failure with the reason.
    (demo.config_dir / "drills.yaml").write_text(
        "drills:\n  sg:\n    plan: p\n    kind: live\n    owner: o\n"
        "    runbook: regional-failover\n    params: {region: ap-southeast-1}\n"
        "    target: ap-southeast-1\n    objectives: {rto_seconds: 120}\n"
    )
    res = cli("--config", str(demo.config_dir), "drill", "run", "sg", "--unattended")
    assert res.exit_code == 1
    [run] = store.history(open_db(db_path), "sg")
    assert run.status == "failed" and "primary-down" in (run.reason or ""), run.reason
    assert run.rto_seconds is None


def test_planned_drill_with_fail_back_returns_the_region_to_normal(
    demo: DemoInfo, db_path: Path
) -> None:
    # A planned live drill: no real disaster (force skips the "really down" gate), and the
    # fail-back runs the runbook's rollback so the region ends where it started.
    (demo.config_dir / "drills.yaml").write_text(
        "drills:\n  sg:\n    plan: p\n    kind: live\n    owner: o\n    fail_back: true\n"
        "    runbook: regional-failover\n    params: {region: ap-southeast-1, force: 'true'}\n"
        "    target: ap-southeast-1\n    objectives: {rto_seconds: 120}\n"
    )
    res = cli("--config", str(demo.config_dir), "drill", "run", "sg", "--unattended")
    assert res.exit_code == 0, res.output
    [run] = store.history(open_db(db_path), "sg")
    assert run.status == "passed", (run.reason, run.findings)
    assert run.rto_seconds is not None and run.rto_met is True
    routes = DemoClient(demo.router_url, demo.api_key_file).request("GET", "/routes")
    assert routes["routes"]["ap-southeast-1"]["payments"] == "ap-southeast-1"
    assert routes["ledger_primary"]["ap-southeast-1"] == "ap-southeast-1"
