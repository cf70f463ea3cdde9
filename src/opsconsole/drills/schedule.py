"""When drills fall due: cron expressions with crontab semantics, and one-off times.

Fire times are computed by ``cronsim`` (the library healthchecks.io uses to evaluate
crontab lines) and handed to APScheduler through :class:`CrontabTrigger`, because
APScheduler 3.x's own ``CronTrigger`` differs from crontab in two ways users trip on:

* with both day-of-month and day-of-week restricted, crontab fires when *either*
  matches (``0 9 1 * mon``: the 1st of the month and every Monday); APScheduler
  requires both;
* crontab numbers weekdays from Sunday (0 and 7 are Sunday, ``0-7`` is every day);
  APScheduler starts at Monday.

Five fields (minute hour day month weekday), or six with leading seconds (handy for
tests and sub-minute demos). Times are computed in the drill's time zone (DST-aware).

Missed-drill detection does not rely on APScheduler's job store: :func:`occurrences`
iterates the trigger from the last accounted-for time up to now.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any
from zoneinfo import ZoneInfo

if TYPE_CHECKING:
    from apscheduler.triggers.base import BaseTrigger

__all__ = ["make_trigger", "next_due", "occurrences", "validate_cron"]

_ONE_MICRO = timedelta(microseconds=1)


def _trigger_class() -> type:
    """Built on first use: APScheduler is a heavy import."""
    global _TRIGGER
    if _TRIGGER is not None:
        return _TRIGGER
    from apscheduler.triggers.base import BaseTrigger as _Base

    class CrontabTrigger(_Base):  # type: ignore[misc]
        """An APScheduler trigger whose fire times are crontab's (via cronsim)."""

        def __init__(self, expression: str, timezone: ZoneInfo) -> None:
            self.expression = expression
            self.timezone = timezone
            _check(expression, timezone)

        def get_next_fire_time(
            self, previous_fire_time: datetime | None, now: datetime
        ) -> datetime | None:
            start = previous_fire_time + _ONE_MICRO if previous_fire_time else now
            return _first_at_or_after(self.expression, start.astimezone(self.timezone))

        def __getstate__(self) -> dict[str, Any]:
            return {"version": 1, "expression": self.expression, "timezone": str(self.timezone)}

        def __setstate__(self, state: dict[str, Any]) -> None:
            self.expression = state["expression"]
            self.timezone = ZoneInfo(state["timezone"])

        def __str__(self) -> str:
            return f"crontab[{self.expression}]"

        def __repr__(self) -> str:
            return f"<CrontabTrigger {self.expression!r} tz={self.timezone}>"

    _TRIGGER = CrontabTrigger
    return _TRIGGER


_TRIGGER: type | None = None


def __getattr__(name: str) -> Any:
    if name == "CrontabTrigger":
        return _trigger_class()
    raise AttributeError(name)


def _fields(cron: str) -> str:
    fields = cron.split()
    if len(fields) not in (5, 6):
        raise ValueError(
            f"a cron expression has 5 fields (minute hour day month weekday), or 6 with "
            f"leading seconds; got {len(fields)}"
        )
    return " ".join(fields)


def _check(expression: str, tz: ZoneInfo) -> None:
    from cronsim import CronSim, CronSimError

    try:
        CronSim(expression, datetime(2000, 1, 1, tzinfo=tz))
    except CronSimError as exc:
        raise ValueError(f"cron expression {expression!r}: {exc}") from None


def _first_at_or_after(expression: str, start: datetime) -> datetime | None:
    from cronsim import CronSim

    base = start.replace(microsecond=0)
    # cronsim yields times strictly after its start: begin one second earlier.
    it = CronSim(expression, base - timedelta(seconds=1))
    try:
        for _ in range(3):
            fire = next(it)
            if fire >= start:
                return fire
    except StopIteration:
        return None
    return None


def make_trigger(cron: str | None, at: datetime | None, timezone: str) -> BaseTrigger:
    """An APScheduler trigger for a drill's schedule (``cron`` or one-off ``at``)."""
    tz = ZoneInfo(timezone)
    if at is not None:
        from apscheduler.triggers.date import DateTrigger

        return DateTrigger(run_date=at if at.tzinfo else at.replace(tzinfo=tz), timezone=tz)
    if cron is None:
        raise ValueError("a schedule needs cron or at")
    return _trigger_class()(_fields(cron), tz)  # type: ignore[no-any-return]


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
