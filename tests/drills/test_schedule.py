"""Cron with crontab semantics, against a table of known firing times."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from opsconsole.drills.schedule import make_trigger, next_due, occurrences, validate_cron

Q1 = (datetime(2025, 12, 31, 23, 59, tzinfo=UTC), datetime(2026, 3, 31, 23, 59, tzinfo=UTC))


def _fires(cron: str, tz: str = "UTC", span: tuple[datetime, datetime] = Q1) -> list[str]:
    return [
        f.strftime("%Y-%m-%d %H:%M %a") for f in occurrences(make_trigger(cron, None, tz), *span)
    ]


def test_day_of_month_or_day_of_week_when_both_are_restricted() -> None:
    fires = _fires("0 9 1 * mon")
    # crontab: the 1st of each month OR any Monday (APScheduler alone: never, in Q1 2026).
    assert fires[:6] == [
        "2026-01-01 09:00 Thu",
        "2026-01-05 09:00 Mon",
        "2026-01-12 09:00 Mon",
        "2026-01-19 09:00 Mon",
        "2026-01-26 09:00 Mon",
        "2026-02-01 09:00 Sun",
    ]
    assert len(fires) == 3 + 13  # three 1sts (none a Monday) + 13 Mondays


@pytest.mark.parametrize(
    ("cron", "days"),
    [
        ("0 0 * * 0-7", ["Thu", "Fri", "Sat", "Sun", "Mon", "Tue", "Wed", "Thu"]),
        ("0 0 * * 0", ["Sun", "Sun"]),
        ("0 0 * * 7", ["Sun", "Sun"]),
        ("0 0 * * 5-7", ["Fri", "Sat", "Sun", "Fri"]),
        ("0 0 * * sat,sun", ["Sat", "Sun", "Sat"]),
        ("0 0 * * 1-5/2", ["Fri", "Mon", "Wed", "Fri"]),
    ],
)
def test_weekday_numbers_are_crontabs(cron: str, days: list[str]) -> None:
    assert [f.split()[-1] for f in _fires(cron)][: len(days)] == days


@pytest.mark.parametrize(
    ("cron", "tz", "after", "expected"),
    [
        ("30 9 * * 1-5", "UTC", datetime(2026, 1, 2, 10, tzinfo=UTC), "2026-01-05 09:30"),
        (
            "0 3 1 4,10 *",
            "America/Sao_Paulo",
            datetime(2026, 11, 28, tzinfo=UTC),
            "2027-04-01 06:00",
        ),
        # DST: 02:30 does not exist in Berlin on 2026-03-29; crontab runs it at 03:00 local.
        ("30 2 * * *", "Europe/Berlin", datetime(2026, 3, 28, 2, tzinfo=UTC), "2026-03-29 01:00"),
        ("0 12 29 2 *", "UTC", datetime(2026, 1, 1, tzinfo=UTC), "2028-02-29 12:00"),
        ("*/15 * * * * *", "UTC", datetime(2026, 1, 1, 0, 0, 1, tzinfo=UTC), "2026-01-01 00:00"),
    ],
)
def test_next_firing_times(cron: str, tz: str, after: datetime, expected: str) -> None:
    fire = next_due(make_trigger(cron, None, tz), after)
    assert fire is not None
    assert fire.astimezone(UTC).strftime("%Y-%m-%d %H:%M") == expected


@pytest.mark.parametrize("cron", ["61 * * * *", "0 0 30 2 *", "* * *", "0 0 * * 8"])
def test_invalid_or_never_firing_expressions_are_refused(cron: str) -> None:
    with pytest.raises(ValueError, match="cron"):
        validate_cron(cron, "UTC")
