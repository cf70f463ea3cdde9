"""Parsing user-given times and durations: a bad value is a ValueError with the value in it."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

import pytest

from opsconsole.timeutil import parse_duration, parse_when
from tests.helpers import cli

NOW = datetime(2026, 11, 28, 12, 0, tzinfo=UTC)


def test_durations_ago_and_iso_times() -> None:
    assert parse_when("2h", now=NOW) == NOW - timedelta(hours=2)
    assert parse_when("90s ago", now=NOW) == NOW - timedelta(seconds=90)
    assert parse_when("2026-11-28T14:05:00+01:00") == datetime(2026, 11, 28, 13, 5, tzinfo=UTC)
    assert parse_duration("15m") == timedelta(minutes=15)


@pytest.mark.parametrize(
    "text", ["99999999d", "1000000w", "99999999999999999999s", "0001-01-01T00:00:00+05:00"]
)
def test_out_of_range_durations_are_value_errors_not_overflow(text: str) -> None:
    with pytest.raises(ValueError, match=re.escape(repr(text))):
        parse_when(text, now=NOW)


def test_out_of_range_time_on_the_command_line_is_one_error_line() -> None:
    result = cli("audit", "list", "--since", "99999999d")
    assert result.exit_code == 2, result.output
    assert "not a time: '99999999d'" in result.output
    assert "Traceback" not in result.output
