"""Against the demo deployment: a data-breach incident runs its playbook's shipped runbooks."""

from __future__ import annotations

import json
import time
from typing import Any

import httpx
import pytest

from tests.demo_fixture import demo, demo_thread  # noqa: F401
from tests.helpers import cli

pytest.importorskip("opsconsole.runbooks.engine", reason="runbook engine not built yet")


@pytest.mark.slow
def test_breach_tasks_run_shipped_runbooks_against_the_demo(demo: Any) -> None:  # noqa: F811
    # Customer traffic to Frankfurt payments, so there are access logs to preserve.
    logs = demo.state_dir / "logs"
    deadline = time.monotonic() + 60
    while not list(logs.glob("eu-central-1-payments*.log*")):
        assert time.monotonic() < deadline, "the demo wrote no access log"
        httpx.get(demo.service_url("eu-central-1", "payments"), timeout=10)
        time.sleep(0.2)
    base = ("--config", str(demo.config_dir), "--as", "alice")
    declared = cli(
        *base,
        "incident",
        "declare",
        "--severity",
        "SEV1",
        "--category",
        "data-breach",
        "--title",
        "card data exposure",
        "--region",
        "eu-central-1",
        "--service",
        "payments",
    )
    assert declared.exit_code == 0, declared.output
    iid = declared.stdout.split()[1]

    evidence = cli(*base, "incident", "task", iid, "preserve-evidence", "start", "--run", "--yes")
    assert evidence.exit_code == 0, evidence.output
    assert ": succeeded" in evidence.stdout
    done = cli(*base, "incident", "task", iid, "preserve-evidence", "done")
    assert done.exit_code == 0, done.output
    quarantine = cli(
        *base, "incident", "task", iid, "quarantine-service", "start", "--run", "--yes"
    )
    assert quarantine.exit_code == 0, quarantine.output

    routes = httpx.get(f"{demo.router_url}/routes", timeout=10).json()
    assert ["eu-central-1", "payments"] in routes["quarantined"]

    shown = json.loads(cli(*base, "incident", "show", iid, "--json", "--timeline").stdout)
    tasks = {t["id"]: t for t in shown["tasks"]}
    assert tasks["preserve-evidence"]["run_status"] == "succeeded"
    assert tasks["quarantine-service"]["run_status"] == "succeeded"
    evidence_dirs = list((demo.state_dir).rglob(f"{iid}/SHA256SUMS"))
    assert evidence_dirs, "no evidence folder named after the incident"
    runs = [e["text"] for e in shown["timeline"] if e["kind"] == "run"]
    assert len(runs) == 2 and all(": succeeded for task" in r for r in runs)
    report = cli(*base, "incident", "report", iid).stdout
    assert "| breach-evidence | preserve-evidence | succeeded |" in report
    assert "| quarantine | quarantine-service | succeeded |" in report
