"""Clock reminders: a deadline approaching and a status update due, each written once."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta

from opsconsole import outbox
from opsconsole.incidents import IncidentService
from opsconsole.serve.reminders import remind
from tests.incidents.conftest import Clock

pytest_plugins = ["tests.incidents.conftest"]


def test_deadline_approaching_and_update_due_are_queued_once(
    make_service: Callable[..., IncidentService], clock: Clock
) -> None:
    svc = make_service()
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
