"""``/metrics`` series read from the store: every family, with data in each table."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest
from prometheus_client import generate_latest

from opsconsole.audit import AuditLog
from opsconsole.config import load_config
from opsconsole.drills import store as drill_store
from opsconsole.health import storage
from opsconsole.health.model import Outcome, Target
from opsconsole.incidents import IncidentService
from opsconsole.serve.metrics import Metrics
from opsconsole.store import open_db
from opsconsole.timeutil import utcnow
from tests.helpers import cli
from tests.serve.helpers import write_config


@pytest.fixture(autouse=True)
def _on_both_engines(store_engine: str) -> str:
    """Every test here runs on SQLite and on PostgreSQL (see ``store_engine``)."""
    return store_engine


def _target(endpoint: str) -> Target:
    return Target(
        id=f"sa-east-1/payments/{endpoint}",
        region="sa-east-1",
        service="payments",
        endpoint=endpoint,
        kind="http",
        host_key="127.0.0.1",
        timeout=1.0,
        latency_threshold_ms=500,
    )


def test_store_series_count_what_the_store_holds(tmp_path: Path, db_path: Path) -> None:
    cfg_dir = write_config(tmp_path / "config")
    config = load_config(cfg_dir)
    book = tmp_path / "hello.yaml"
    book.write_text("name: hello\nsteps:\n  - id: one\n    shell: ['true']\n")
    assert cli("--config", str(cfg_dir), "runbook", "run", str(book), "--yes").exit_code == 0

    db = open_db(db_path)
    audit = AuditLog(db, actor="alice")
    IncidentService(db, audit, config).declare(
        "Payments down", severity="SEV1", category="system-failure"
    )
    now = utcnow()
    run = drill_store.DrillRun(
        id=drill_store.new_run_id(now),
        drill="sa-east-1-failover",
        plan="payments-bcp",
        kind="live",
        status="passed",
        trigger="manual",
        actor="alice",
        interface="cli",
        started_at=now - timedelta(minutes=5),
        finished_at=now,
        rto_seconds=120.5,
        rto_met=True,
    )
    with drill_store.audited(db, audit, "drill.run", run.drill):
        drill_store.insert_run(db, run)
    a, b = _target("a"), _target("b")
    storage.write(db, [(a, Outcome(ok=True, latency_ms=12.0), now - timedelta(seconds=30))])
    storage.write(
        db,
        [
            (a, Outcome(ok=False, latency_ms=None, error="HTTP 500"), now),
            (b, Outcome(ok=True, latency_ms=8.0), now),
        ],
    )

    text = generate_latest(Metrics(open_db(db_path), config).registry).decode()
    lines = set(text.splitlines())
    assert 'opsconsole_runbook_runs{runbook="hello",status="succeeded"} 1.0' in lines
    assert 'opsconsole_runbook_steps{status="succeeded"} 1.0' in lines
    assert "opsconsole_approvals_waiting 0.0" in lines
    assert 'opsconsole_incidents_open{category="system-failure",severity="SEV1"} 1.0' in lines
    assert any(line.startswith("opsconsole_deadline_seconds_remaining{") for line in lines)
    assert 'opsconsole_drill_runs{drill="sa-east-1-failover",status="passed"} 1.0' in lines
    assert any(
        line.startswith('opsconsole_drill_programme_kept{plan="payments-bcp"}') for line in lines
    )
    head = db.execute("SELECT MAX(seq) FROM audit_events").fetchone()[0]
    assert f"opsconsole_audit_head_seq {float(head)}" in lines
    assert any(line.startswith('opsconsole_outbox_messages{status="pending"}') for line in lines)
    up = 'opsconsole_probe_up{endpoint="%s",region="sa-east-1",service="payments"}'
    assert f"{up % 'a'} 0.0" in lines  # the latest sample decides
    assert f"{up % 'b'} 1.0" in lines
