"""Clock reminders: a deadline approaching and a status update due, each written once."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from opsconsole import outbox
from opsconsole.audit import AuditLog
from opsconsole.config import load_config
from opsconsole.incidents import IncidentService
from opsconsole.serve.reminders import remind
from opsconsole.store import open_db
from tests.incidents.conftest import Clock
from tests.serve.helpers import write_config


@pytest.fixture(autouse=True)
def _on_both_engines(store_engine: str) -> str:
    """Every test here runs on SQLite and on PostgreSQL (see ``store_engine``)."""
    return store_engine


def test_deadline_approaching_and_update_due_are_queued_once(tmp_path: Path, db_path: Path) -> None:
    clock = Clock(datetime(2026, 11, 27, 9, 0, tzinfo=UTC))
    db = open_db(db_path)
    config = load_config(write_config(tmp_path / "config"))
    svc = IncidentService(db, AuditLog(db, actor="alice"), config, clock=clock)
    inc = svc.declare("Payments down", severity="SEV1", category="system-failure")
    assert remind(svc, clock(), timedelta(minutes=10)) == []  # due in 30 min: not yet
    clock.advance(minutes=25)
    [approaching] = remind(svc, clock(), timedelta(minutes=10))
    msg = outbox.get(svc.db, approaching)
    assert msg.event == "incident.deadline_approaching"
    assert msg.title == f"{inc.id}: First customer-facing status update due in 5m"
    assert remind(svc, clock(), timedelta(minutes=10)) == []  # once
    clock.advance(minutes=10)  # SEV1: a status update every 30 minutes, none posted
    [due] = remind(svc, clock(), timedelta(minutes=10))
    assert outbox.get(svc.db, due).event == "incident.status_update_due"
    events = [m.event for m in outbox.list_messages(svc.db)]
    assert "incident.deadline_missed" in events  # the 30-minute clock passed unmet
    assert remind(svc, clock(), timedelta(minutes=10)) == []
    svc.update(inc.id, "Failing over to the standby region")
    clock.advance(minutes=31)
    assert len(remind(svc, clock(), timedelta(minutes=10))) == 1  # the next one falls due
