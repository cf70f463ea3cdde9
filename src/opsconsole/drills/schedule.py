"""When drills fall due: cron expressions (crontab semantics) and one-off times.

APScheduler 3.x's ``CronTrigger`` computes the fire times, but two of its habits are
wrong for a crontab user, so we translate before handing an expression over:

* its day-of-week numbers start at Monday (0 = mon), while crontab's start at Sunday
  (0 or 7 = sun) - we expand the weekday field to explicit day names;
* ``from_crontab`` accepts only five fields; we also accept six, the first being seconds
  (handy for tests and sub-minute demos).

Missed-drill detection does not rely on APScheduler's job store: :func:`occurrences`
iterates the trigger from the last accounted-for time up to now.
"""

from __future__ import annotations

import re
from datetime import datetime, timedelta
from typing import TYPE_CHECKING
from zoneinfo import ZoneInfo

if TYPE_CHECKING:
    from apscheduler.triggers.base import BaseTrigger

__all__ = ["crontab_weekdays", "make_trigger", "next_due", "occurrences", "validate_cron"]

_DAYS = ("sun", "mon", "tue", "wed", "thu", "fri", "sat")
_DAY_ITEM = re.compile(r"^(\*|[a-z0-9]+(?:-[a-z0-9]+)?)(?:/(\d+))?$")
_ONE_MICRO = timedelta(microseconds=1)


def _day_number(token: str) -> int:
    token = token.lower()
    if token.isdigit():
        n = int(token)
        if not 0 <= n <= 7:
            raise ValueError(f"day of week {token!r} out of range 0-7")
        return n % 7
    if token[:3] in _DAYS and len(token) == 3:
        return _DAYS.index(token)
    raise ValueError(f"unknown day of week {token!r}")


def crontab_weekdays(field: str) -> str:
    """Translate a crontab day-of-week field (0/7 = Sunday) into APScheduler day names."""
    if field == "*":
        return "*"
    days: set[int] = set()
    for item in field.lower().split(","):
        m = _DAY_ITEM.match(item)
        if not m:
            raise ValueError(f"invalid day-of-week item {item!r}")
        span, step = m[1], int(m[2]) if m[2] else 1
        if step < 1:
            raise ValueError("a step must be at least 1")
        if span == "*":
            lo, hi = 0, 6
        elif "-" in span:
            a, b = span.split("-")
            lo, hi = _day_number(a), _day_number(b)
            if b.lower() in ("7", "sun") and lo > 0:
                hi = 7
            if hi < lo:
                raise ValueError(f"day-of-week range {span!r} runs backwards")
        else:
            lo = hi = _day_number(span)
        days.update(d % 7 for d in range(lo, hi + 1, step))
    return ",".join(_DAYS[d] for d in sorted(days))


def make_trigger(cron: str | None, at: datetime | None, timezone: str) -> BaseTrigger:
    """An APScheduler trigger for a drill's schedule (``cron`` or one-off ``at``)."""
    tz = ZoneInfo(timezone)
    if at is not None:
        from apscheduler.triggers.date import DateTrigger

        return DateTrigger(run_date=at if at.tzinfo else at.replace(tzinfo=tz), timezone=tz)
    if cron is None:
        raise ValueError("a schedule needs cron or at")
    from apscheduler.triggers.cron import CronTrigger

    fields = cron.split()
    if len(fields) == 5:
        fields = ["0", *fields]
    if len(fields) != 6:
        raise ValueError(
            f"a cron expression has 5 fields (minute hour day month weekday), or 6 with "
            f"leading seconds; got {len(fields)}"
        )
    second, minute, hour, day, month, weekday = fields
    return CronTrigger(
        second=second,
        minute=minute,
        hour=hour,
        day=day,
        month=month,
        day_of_week=crontab_weekdays(weekday),
        timezone=tz,
    )


def validate_cron(cron: str, timezone: str) -> None:
    """Raise ValueError with a readable message if ``cron`` cannot be scheduled."""
    trigger = make_trigger(cron, None, timezone)
    probe = datetime(2000, 1, 1, tzinfo=ZoneInfo("UTC"))
    if trigger.get_next_fire_time(None, probe) is None:
        raise ValueError(f"cron expression {cron!r} never fires")


def _after(trigger: BaseTrigger, moment: datetime) -> datetime | None:
    # With no previous fire time the trigger starts at ``now``, rounded up to a whole
    # second; adding a microsecond makes the search strictly after ``moment``.
    return trigger.get_next_fire_time(None, moment + _ONE_MICRO)


def occurrences(
    trigger: BaseTrigger, after: datetime, until: datetime, *, limit: int = 1000
) -> list[datetime]:
    """Fire times ``t`` with ``after < t <= until`` (at most ``limit``, the latest kept)."""
    from apscheduler.triggers.date import DateTrigger

    if isinstance(trigger, DateTrigger):
        at = trigger.run_date
        return [at] if after < at <= until else []
    out: list[datetime] = []
    moment = after
    while True:
        nxt = _after(trigger, moment)
        if nxt is None or nxt > until:
            break
        out.append(nxt)
        if len(out) > limit:
            out.pop(0)
        moment = nxt
    return out


def next_due(trigger: BaseTrigger, now: datetime) -> datetime | None:
    """The first fire time strictly after ``now`` (None: it never fires again)."""
    from apscheduler.triggers.date import DateTrigger

    if isinstance(trigger, DateTrigger):
        return trigger.run_date if trigger.run_date > now else None
    return _after(trigger, now)
