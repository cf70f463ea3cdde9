"""Roles, decisions and statuses come from lists; anything else is refused everywhere."""

from __future__ import annotations

import pytest

from opsconsole.errors import OpsError
from opsconsole.incidents import IncidentService


def _breach(svc: IncidentService) -> str:
    return svc.declare(
        "card data exposed", severity="SEV1", category="data-breach", regions=["ap-southeast-1"]
    ).id


def test_a_decision_typo_is_refused_and_nothing_is_recorded(svc: IncidentService) -> None:
    iid = _breach(svc)
    with pytest.raises(OpsError, match=r"unknown decision 'notifable'.*notifiable"):
        svc.decide(iid, "notifable")
    assert svc.get(iid).decisions == {}
    assert not [e for e in svc.timeline(iid) if "notifable" in e.summary]
    started = svc.decide(iid, "notifiable")
    assert any("PDPA" in s.deadline.title or "26D" in s.deadline.citation for s in started)


def test_a_playbook_without_decisions_accepts_none(svc: IncidentService) -> None:
    iid = svc.declare("api slow", severity="SEV3", category="system-failure", regions=[]).id
    with pytest.raises(OpsError, match="declares no decisions"):
        svc.decide(iid, "notifiable")


def test_choices_list_what_may_be_picked_now(svc: IncidentService) -> None:
    iid = _breach(svc)
    c = svc.choices(iid)
    assert "notifiable" in c.decisions and "significant harm" in c.decisions["notifiable"]
    assert "legal" in c.roles and "commander" in c.roles
    assert c.statuses == ("investigating", "mitigated")
    svc.decide(iid, "notifiable")
    assert svc.choices(iid).decided == ("notifiable",)


def test_unknown_role_and_status_are_refused(svc: IncidentService) -> None:
    iid = _breach(svc)
    with pytest.raises(OpsError, match="unknown role"):
        svc.assign(iid, "lawyer", "ana")
    with pytest.raises(OpsError, match="unknown status"):
        svc.set_status(iid, "fixed")
