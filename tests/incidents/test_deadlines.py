"""Deadline arithmetic: hours, calendar days, working days (weekends, holidays), zones, overdue."""

from __future__ import annotations

import datetime as dt

import pytest

from opsconsole.incidents import IncidentService
from opsconsole.incidents.deadlines import (
    add_calendar_days,
    add_working_days,
    due_at,
    evaluate,
    human_duration,
)
from opsconsole.incidents.playbook import Calendar, Deadline
from tests.incidents.conftest import Clock

UTC = dt.UTC
BR = Calendar(
    timezone="America/Sao_Paulo",
    holidays=[dt.date(2026, 11, 20), dt.date(2026, 12, 25), dt.date(2027, 1, 1)],
)
SG = Calendar(timezone="Asia/Singapore")
DE = Calendar(timezone="Europe/Berlin")


def _utc(*args: int) -> dt.datetime:
    return dt.datetime(*args, tzinfo=UTC)


def _deadline(**unit: float) -> Deadline:
    return Deadline(
        id="d",
        title="t",
        jurisdiction="X",
        citation="cite",
        verified_on=dt.date(2026, 1, 1),
        **unit,
    )


def test_hours_are_elapsed_time_whatever_the_zone() -> None:
    anchor = _utc(2026, 11, 27, 21, 30)
    assert due_at(_deadline(hours=72), anchor, DE) == _utc(2026, 11, 30, 21, 30)
    assert due_at(_deadline(hours=6), anchor, SG) == _utc(2026, 11, 28, 3, 30)
    assert due_at(_deadline(hours=0.5), anchor, SG) == _utc(2026, 11, 27, 22, 0)


def test_calendar_days_end_at_local_midnight_of_the_nth_day_after() -> None:
    # 02:00 UTC on the 27th is 10:00 in Singapore: day 0 is the 27th, due end of the 30th SGT.
    assert add_calendar_days(_utc(2026, 11, 27, 2, 0), 3, SG) == _utc(2026, 11, 30, 16, 0)


def test_calendar_days_count_from_the_local_day_not_the_utc_day() -> None:
    # 20:00 UTC on the 27th is already 04:00 on the 28th in Singapore.
    assert add_calendar_days(_utc(2026, 11, 27, 20, 0), 3, SG) == _utc(2026, 12, 1, 16, 0)


def test_calendar_days_across_a_daylight_saving_change() -> None:
    # Berlin leaves summer time on 25 Oct 2026: the end of the 27th is 23:00 UTC, not 22:00.
    assert add_calendar_days(_utc(2026, 10, 24, 12, 0), 3, DE) == _utc(2026, 10, 27, 23, 0)


def test_working_days_skip_the_weekend() -> None:
    # Friday 27 Nov 10:00 BRT: Mon 30 (1), Tue 1 Dec (2), Wed 2 Dec (3) -> end of Wed in BRT.
    anchor = _utc(2026, 11, 27, 13, 0)
    assert add_working_days(anchor, 3, BR) == _utc(2026, 12, 3, 3, 0)


def test_working_days_skip_listed_holidays() -> None:
    # Wed 18 Nov: Thu 19 (1), Fri 20 is Black Consciousness Day, Mon 23 (2), Tue 24 (3).
    anchor = _utc(2026, 11, 18, 15, 0)
    assert add_working_days(anchor, 3, BR) == _utc(2026, 11, 25, 3, 0)
    no_holidays = Calendar(timezone="America/Sao_Paulo")
    assert add_working_days(anchor, 3, no_holidays) == _utc(2026, 11, 24, 3, 0)


def test_working_days_from_a_weekend_anchor_start_on_monday() -> None:
    # Saturday 28 Nov: Mon 30 (1), Tue (2), Wed (3).
    assert add_working_days(_utc(2026, 11, 28, 12, 0), 3, BR) == _utc(2026, 12, 3, 3, 0)


def test_working_days_over_christmas_and_new_year() -> None:
    # Wed 23 Dec: Thu 24 (1), Fri 25 holiday, Mon 28 (2), Tue 29 (3).
    assert add_working_days(_utc(2026, 12, 23, 15, 0), 3, BR) == _utc(2026, 12, 30, 3, 0)
    # Tue 29 Dec: Wed 30 (1), Thu 31 (2), Fri 1 Jan holiday, Mon 4 Jan (3).
    assert add_working_days(_utc(2026, 12, 29, 15, 0), 3, BR) == _utc(2027, 1, 5, 3, 0)


def test_the_local_day_decides_for_working_days_too() -> None:
    # 01:00 UTC Saturday is still Friday 22:00 in Sao Paulo: day 0 is Friday.
    assert add_working_days(_utc(2026, 11, 28, 1, 0), 1, BR) == _utc(2026, 12, 1, 3, 0)


def test_custom_weekend() -> None:
    fri_sat = Calendar(timezone="Asia/Dubai", weekend=["fri", "sat"])
    # Thursday 26 Nov 12:00 local: Fri, Sat skipped, Sun 29 counts (1).
    assert add_working_days(_utc(2026, 11, 26, 8, 0), 1, fri_sat) == _utc(2026, 11, 29, 20, 0)


def test_countdown_and_overdue_text() -> None:
    d = _deadline(hours=6)
    anchor = _utc(2026, 11, 27, 9, 0)
    kw = {"detected": anchor, "declared": anchor, "decisions": {}}
    running = evaluate(d, SG, now=_utc(2026, 11, 27, 11, 30), **kw)  # type: ignore[arg-type]
    assert (running.state, running.text) == ("running", "due in 3h 30m")
    overdue = evaluate(d, SG, now=_utc(2026, 11, 28, 17, 5), **kw)  # type: ignore[arg-type]
    assert (overdue.state, overdue.text) == ("overdue", "overdue by 1d 2h")
    met = evaluate(d, SG, now=_utc(2026, 11, 29), outcome=("met", _utc(2026, 11, 27, 13, 0)), **kw)  # type: ignore[arg-type]
    assert (met.state, met.text) == ("met", "met, 2h before due")


def test_decision_anchored_clock_waits_for_the_decision() -> None:
    d = Deadline(
        id="d",
        title="t",
        jurisdiction="SG",
        anchor="decision:notifiable",
        calendar_days=3,
        citation="cite",
        verified_on=dt.date(2026, 1, 1),
    )
    now = _utc(2026, 11, 27, 9, 0)
    waiting = evaluate(d, SG, detected=now, declared=now, decisions={}, now=now)
    assert (waiting.state, waiting.due) == ("waiting", None)
    assert waiting.text == "starts when decided: notifiable"
    started = evaluate(d, SG, detected=now, declared=now, decisions={"notifiable": now}, now=now)
    assert started.state == "running" and started.due == _utc(2026, 11, 30, 16, 0)


@pytest.mark.parametrize(
    ("seconds", "text"),
    [
        (40, "40s"),
        (14 * 60, "14m"),
        (5 * 3600 + 12 * 60, "5h 12m"),
        (3600, "1h"),
        (2 * 86400 + 3 * 3600 + 59, "2d 3h"),
        (-(3 * 86400), "3d"),
    ],
)
def test_human_duration(seconds: int, text: str) -> None:
    assert human_duration(dt.timedelta(seconds=seconds)) == text


def test_missed_deadline_is_recorded_once_at_its_due_time(
    svc: IncidentService, clock: Clock
) -> None:
    inc = svc.declare(
        "exposed bucket",
        severity="SEV1",
        category="data-breach",
        regions=["ap-south-1"],
        detected_at=clock.now,
    )
    clock.advance(hours=7)
    read_only = svc.view(inc.id, record=False)
    assert {s.deadline.id: s.state for s in read_only.deadlines}["cert-in-6h"] == "overdue"
    assert not [e for e in svc.timeline(inc.id) if e.kind == "deadline.missed"]
    view = svc.view(inc.id)
    cert_in = next(s for s in view.deadlines if s.deadline.id == "cert-in-6h")
    assert cert_in.state == "missed"
    svc.view(inc.id)
    svc.note(inc.id, "still here")
    missed = [e for e in svc.timeline(inc.id) if e.kind == "deadline.missed"]
    assert len(missed) == 1
    assert missed[0].ts == inc.detected_at + dt.timedelta(hours=6)
    assert missed[0].actor == "clock"
    assert missed[0].local is not None and missed[0].local.utcoffset() == dt.timedelta(
        hours=5, minutes=30
    )
    # Done late: the outcome stays "missed", and the timeline says how late.
    svc.task(inc.id, "notify-cert-in", "done")
    late = [e.text for e in svc.timeline(inc.id) if e.kind == "deadline.late"]
    assert late == ["Report the cyber incident to CERT-In: done 1h after the deadline"]


def test_task_done_in_time_meets_its_deadline(svc: IncidentService, clock: Clock) -> None:
    inc = svc.declare(
        "exposed bucket",
        severity="SEV1",
        category="data-breach",
        regions=["eu-central-1"],
        detected_at=clock.now,
    )
    clock.advance(hours=10)
    svc.task(inc.id, "notify-card-brands", "waive", note="no card data involved")
    clock.advance(hours=20)
    svc.task(inc.id, "notify-eu-dpa", "done", note="reference DPA-123")
    states = {s.deadline.id: s for s in svc.view(inc.id).deadlines}
    assert (states["gdpr-art33"].state, states["gdpr-art33"].text) == (
        "met",
        "met, 1d 18h before due",
    )
    assert states["pci-dss-12-10"].state == "waived"
    # A deadline whose task was left undone past its due is missed, whatever happens later.
    assert states["cert-in-6h"].state == "missed"


def test_status_update_cadence(svc: IncidentService, clock: Clock) -> None:
    inc = svc.declare("outage", severity="SEV1", category="system-failure", regions=["sa-east-1"])
    view = svc.view(inc.id)
    assert view.update_every == dt.timedelta(minutes=30)
    assert view.update_due == clock.now + dt.timedelta(minutes=30)
    clock.advance(minutes=45)
    assert svc.view(inc.id).update_due < clock.now  # type: ignore[operator]
    svc.update(inc.id, "failing over to Frankfurt")
    view = svc.view(inc.id)
    assert view.since_update == dt.timedelta(0)
    assert view.update_due == clock.now + dt.timedelta(minutes=30)


def test_calendar_override_from_config(config_dir, make_service, clock: Clock) -> None:  # type: ignore[no-untyped-def]
    # A holiday added in <config>/incidents.yaml moves the Brazilian clock by a day.
    (config_dir / "incidents.yaml").write_text(
        "calendars:\n  BR: {timezone: America/Sao_Paulo, holidays: [2026-11-30]}\n"
    )
    from opsconsole.config import load_config

    svc = make_service(cfg=load_config(config_dir))
    inc = svc.declare("leak", severity="SEV1", category="data-breach", detected_at=clock.now)
    anpd = next(s for s in svc.view(inc.id).deadlines if s.deadline.id == "anpd-res15")
    assert anpd.due == _utc(2026, 12, 4, 3, 0)  # Tue 1 (1), Wed 2 (2), Thu 3 (3)
