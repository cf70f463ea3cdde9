"""Deadline arithmetic and countdowns.

Rules (the README states them too):

* ``hours``: the anchor instant plus that many hours (elapsed time; zones do not matter).
* ``calendar_days`` / ``working_days``: days are counted in the jurisdiction's time zone.
  The anchor's own day is day 0; the deadline is the **end** of day N (the next local
  midnight), as in "no later than 3 calendar days after the day of the assessment".
  Working days skip the calendar's weekend days and listed holidays.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Literal

from opsconsole.incidents.playbook import Calendar, Deadline

__all__ = [
    "DeadlineState",
    "add_calendar_days",
    "add_working_days",
    "due_at",
    "evaluate",
    "human_duration",
]

UTC = dt.UTC


def _end_of_local_day(day: dt.date, cal: Calendar) -> dt.datetime:
    """The instant the local day ends (the next local midnight), in UTC."""
    midnight = dt.datetime.combine(day + dt.timedelta(days=1), dt.time(0), tzinfo=cal.tz)
    return midnight.astimezone(UTC)


def add_calendar_days(anchor: dt.datetime, days: int, cal: Calendar) -> dt.datetime:
    local_day = anchor.astimezone(cal.tz).date()
    return _end_of_local_day(local_day + dt.timedelta(days=days), cal)


def add_working_days(anchor: dt.datetime, days: int, cal: Calendar) -> dt.datetime:
    day = anchor.astimezone(cal.tz).date()
    counted = 0
    while counted < days:
        day += dt.timedelta(days=1)
        if cal.is_working_day(day):
            counted += 1
    return _end_of_local_day(day, cal)


def due_at(deadline: Deadline, anchor: dt.datetime, cal: Calendar) -> dt.datetime:
    if deadline.hours:
        return anchor + dt.timedelta(hours=deadline.hours)
    if deadline.calendar_days:
        return add_calendar_days(anchor, deadline.calendar_days, cal)
    assert deadline.working_days
    return add_working_days(anchor, deadline.working_days, cal)


def human_duration(delta: dt.timedelta) -> str:
    """``2d 3h``, ``5h 12m``, ``14m``, ``40s``: two units at most, always positive."""
    seconds = int(abs(delta).total_seconds())
    days, rest = divmod(seconds, 86400)
    hours, rest = divmod(rest, 3600)
    minutes, secs = divmod(rest, 60)
    if days:
        return f"{days}d {hours}h" if hours else f"{days}d"
    if hours:
        return f"{hours}h {minutes}m" if minutes else f"{hours}h"
    if minutes:
        return f"{minutes}m"
    return f"{secs}s"


State = Literal["waiting", "running", "overdue", "met", "missed", "waived"]


@dataclass
class DeadlineState:
    """Where one clock stands at ``now``."""

    deadline: Deadline
    state: State
    anchor_at: dt.datetime | None
    due: dt.datetime | None
    closed_at: dt.datetime | None
    now: dt.datetime
    timezone: str

    @property
    def remaining(self) -> dt.timedelta | None:
        return None if self.due is None else self.due - self.now

    @property
    def text(self) -> str:
        """Countdown or outcome, e.g. ``due in 2d 3h`` or ``overdue by 5h 12m``."""
        if self.state == "waiting":
            return f"starts when decided: {self.deadline.decision}"
        if self.due is None:
            return f"{self.state} (its clock had not started)"
        if self.state == "running":
            return f"due in {human_duration(self.due - self.now)}"
        if self.state == "overdue":
            return f"overdue by {human_duration(self.now - self.due)}"
        if self.closed_at is None:
            return self.state
        if self.state == "met":
            return f"met, {human_duration(self.due - self.closed_at)} before due"
        if self.state == "missed":
            late = self.closed_at - self.due
            return f"missed by {human_duration(late)}" if late.total_seconds() > 0 else "missed"
        return "waived"


def anchor_time(
    deadline: Deadline,
    detected: dt.datetime,
    declared: dt.datetime,
    decisions: dict[str, dt.datetime],
) -> dt.datetime | None:
    if deadline.anchor == "detected":
        return detected
    if deadline.anchor == "declared":
        return declared
    return decisions.get(deadline.decision or "")


def evaluate(
    deadline: Deadline,
    cal: Calendar,
    *,
    detected: dt.datetime,
    declared: dt.datetime,
    decisions: dict[str, dt.datetime],
    now: dt.datetime,
    outcome: tuple[str, dt.datetime] | None = None,
) -> DeadlineState:
    """The state of one deadline. ``outcome``: a recorded (met|missed|waived, at)."""
    anchor = anchor_time(deadline, detected, declared, decisions)
    due = due_at(deadline, anchor, cal) if anchor is not None else None
    if outcome is not None:
        kind, at = outcome
        state: State = kind if kind in ("met", "missed", "waived") else "missed"  # type: ignore[assignment]
        return DeadlineState(deadline, state, anchor, due, at, now, cal.timezone)
    if anchor is None or due is None:
        return DeadlineState(deadline, "waiting", None, None, None, now, cal.timezone)
    state = "running" if now < due else "overdue"
    return DeadlineState(deadline, state, anchor, due, None, now, cal.timezone)
