"""Incident lifecycle: ids, statuses and illegal moves, roles, tasks, fail-closed writes."""

from __future__ import annotations

import sqlite3

import pytest

from opsconsole.audit import verify
from opsconsole.errors import AuditWriteError, NotFoundError, OpsError
from opsconsole.events import EventBus
from opsconsole.incidents import IncidentError, IncidentEvent, IncidentService
from tests.helpers import refuse_inserts
from tests.incidents.conftest import Clock


def _declare(svc: IncidentService, **kw: object) -> str:
    args = {"severity": "SEV2", "category": "system-failure", "regions": ["sa-east-1"]}
    args.update(kw)
    return svc.declare("payments down in Sao Paulo", **args).id  # type: ignore[arg-type]


def _settle_all(svc: IncidentService, incident_id: str) -> None:
    for t in svc.get(incident_id).tasks:
        if t.open:
            svc.task(incident_id, t.id, "waive", note="not needed for this test")


def test_ids_are_numbered_per_year(svc: IncidentService) -> None:
    assert _declare(svc) == "INC-2026-0001"
    assert _declare(svc) == "INC-2026-0002"
    assert [i.id for i in svc.list_incidents()] == ["INC-2026-0001", "INC-2026-0002"]


def test_declare_attaches_playbook_and_makes_declarer_commander(svc: IncidentService) -> None:
    inc = svc.get(_declare(svc))
    assert inc.status == "declared"
    assert inc.commander == "alice"
    assert inc.playbook["category"] == "system-failure"
    assert [t.id for t in inc.tasks][:2] == ["assign-roles", "assess-impact"]
    assert inc.region_tz == {"sa-east-1": "America/Sao_Paulo"}


def test_detected_and_declared_are_kept_apart(svc: IncidentService, clock: Clock) -> None:
    detected = clock.now.replace(hour=8, minute=15)
    inc = svc.get(_declare(svc, detected_at=detected))
    assert inc.detected_at == detected
    assert inc.declared_at == clock.now
    kinds = [e.kind for e in svc.timeline(inc.id)]
    assert kinds[:2] == ["detected", "declare"]


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"severity": "SEV0"}, "unknown severity 'SEV0'"),
        ({"category": "alien-invasion"}, "no playbook for category 'alien-invasion'"),
        ({"regions": ["mars-1"]}, "unknown region mars-1"),
        ({"services": ["teleport"]}, "unknown service teleport"),
    ],
)
def test_declare_refuses_bad_input(svc: IncidentService, kwargs: dict, message: str) -> None:
    with pytest.raises(OpsError, match=message):
        _declare(svc, **kwargs)
    assert svc.list_incidents() == []


def test_status_moves_forward_and_records_times(svc: IncidentService, clock: Clock) -> None:
    iid = _declare(svc)
    svc.set_status(iid, "investigating")
    clock.advance(minutes=40)
    svc.set_status(iid, "mitigated")
    clock.advance(hours=2)
    inc = svc.set_status(iid, "resolved")
    assert inc.mitigated_at is not None and inc.resolved_at == clock.now
    _settle_all(svc, iid)
    assert svc.set_status(iid, "closed").status == "closed"


@pytest.mark.parametrize(
    ("path", "illegal", "message"),
    [
        (
            [],
            "resolved",
            "cannot go from declared to resolved; from declared it can go to "
            "investigating, mitigated",
        ),
        ([], "closed", "cannot go from declared to closed"),
        (["investigating"], "declared", "cannot go from investigating to declared"),
        (["mitigated", "resolved"], "mitigated", "cannot go from resolved to mitigated"),
        ([], "bogus", "unknown status 'bogus'"),
    ],
)
def test_illegal_transitions_are_refused_with_a_clear_message(
    svc: IncidentService, path: list[str], illegal: str, message: str
) -> None:
    iid = _declare(svc)
    for status in path:
        svc.set_status(iid, status)
    before = svc.get(iid).status
    with pytest.raises(OpsError, match=message):
        svc.set_status(iid, illegal)
    assert svc.get(iid).status == before


def test_mitigation_that_does_not_hold_goes_back_to_investigating(svc: IncidentService) -> None:
    iid = _declare(svc)
    svc.set_status(iid, "mitigated")
    assert svc.set_status(iid, "investigating", note="errors are back").status == "investigating"


def test_cannot_close_with_open_tasks_unless_waived(svc: IncidentService) -> None:
    iid = _declare(svc)
    svc.set_status(iid, "mitigated")
    svc.set_status(iid, "resolved")
    with pytest.raises(IncidentError, match="has open tasks: assign-roles, assess-impact"):
        svc.set_status(iid, "closed")
    with pytest.raises(IncidentError, match="waiving a task needs a reason"):
        svc.task(iid, "assign-roles", "waive")
    _settle_all(svc, iid)
    assert svc.set_status(iid, "closed").status == "closed"
    waived = [t for t in svc.get(iid).tasks if t.status == "waived"]
    assert waived and all(t.note == "not needed for this test" for t in waived)


def test_closed_incident_does_not_change(svc: IncidentService) -> None:
    iid = _declare(svc)
    svc.set_status(iid, "mitigated")
    svc.set_status(iid, "resolved")
    _settle_all(svc, iid)
    svc.set_status(iid, "closed")
    with pytest.raises(IncidentError, match="is closed"):
        svc.note(iid, "late thought")
    with pytest.raises(IncidentError, match="closed"):
        svc.set_status(iid, "investigating")


def test_task_transitions_and_requirements(svc: IncidentService) -> None:
    iid = _declare(svc)
    with pytest.raises(IncidentError, match="requires assess-impact first"):
        svc.task(iid, "failover", "start")
    t = svc.task(iid, "assess-impact", "start")
    assert t.status == "in_progress"
    assert svc.get(iid).status == "investigating"  # the first task started
    with pytest.raises(IncidentError, match="already in progress"):
        svc.task(iid, "assess-impact", "start")
    svc.task(iid, "assess-impact", "done", note="sa-east-1 payments only")
    with pytest.raises(IncidentError, match="already done"):
        svc.task(iid, "assess-impact", "skip")
    assert svc.task(iid, "failover", "start").status == "in_progress"
    with pytest.raises(IncidentError, match="has no task 'nope'"):
        svc.task(iid, "nope", "start")
    with pytest.raises(OpsError, match="unknown task action"):
        svc.task(iid, "failover", "finish")


def test_roles_assign_and_commander_handover(svc: IncidentService) -> None:
    iid = _declare(svc)
    svc.assign(iid, "legal", "lena")
    svc.assign(iid, "commander", "bob")
    inc = svc.get(iid)
    assert inc.roles == {"commander": "bob", "legal": "lena"}
    texts = [e.text for e in svc.timeline(iid)]
    assert "commander handed over from alice to bob" in texts
    assert "legal assigned to lena" in texts
    with pytest.raises(OpsError, match="unknown role 'boss'"):
        svc.assign(iid, "boss", "carol")
    with pytest.raises(IncidentError, match="bob already holds commander"):
        svc.assign(iid, "commander", "bob")


def test_unknown_incident_is_not_found(svc: IncidentService) -> None:
    with pytest.raises(NotFoundError, match="no incident INC-2026-0042"):
        svc.view("INC-2026-0042")


def test_every_change_is_audited_and_the_chain_verifies(svc: IncidentService) -> None:
    iid = _declare(svc)
    svc.assign(iid, "scribe", "sam")
    svc.note(iid, "looking at the router")
    svc.update(iid, "we are investigating")
    actions = [r[0] for r in svc.db.execute("SELECT action FROM audit_events ORDER BY seq")]
    assert actions == ["incident.declare", "incident.assign", "incident.note", "incident.update"]
    assert verify(svc.db).ok


def test_timeline_is_append_only(svc: IncidentService) -> None:
    iid = _declare(svc)
    with pytest.raises(sqlite3.IntegrityError, match="append-only"):
        svc.db.execute("UPDATE incident_events SET text = 'nothing happened'")
    with pytest.raises(sqlite3.IntegrityError, match="append-only"):
        svc.db.execute("DELETE FROM incident_events")
    assert len(svc.timeline(iid)) == 2


def test_change_fails_closed_when_the_audit_log_cannot_be_written(svc: IncidentService) -> None:
    iid = _declare(svc)
    refuse_inserts(svc.db, "audit_events")
    with pytest.raises(AuditWriteError):
        svc.set_status(iid, "investigating")
    with pytest.raises(AuditWriteError):
        svc.note(iid, "this note must not appear")
    inc = svc.get(iid)
    assert inc.status == "declared"
    assert [e.kind for e in svc.timeline(iid)] == ["detected", "declare"]


def test_events_are_published_after_commit(svc: IncidentService) -> None:
    bus = EventBus()
    seen: list[IncidentEvent] = []
    bus.subscribe(seen.append, IncidentEvent)  # type: ignore[arg-type]
    svc.bus = bus
    iid = _declare(svc)
    svc.note(iid, "hello")
    assert [(e.incident_id, e.change) for e in seen][-1] == (iid, "note")
    assert [e.change for e in seen][:2] == ["detected", "declare"]
