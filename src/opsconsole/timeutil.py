"""UTC timestamps for storage, and parsing of user-given times."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

__all__ = ["isoformat", "parse_duration", "parse_when", "utcnow"]

_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(s|sec|m|min|h|hr|d|w)\s*$", re.IGNORECASE)
_UNITS = {"s": 1, "sec": 1, "m": 60, "min": 60, "h": 3600, "hr": 3600, "d": 86400, "w": 604800}


def utcnow() -> datetime:
    return datetime.now(UTC)


def isoformat(moment: datetime) -> str:
    """UTC, ISO-8601, microseconds: the one format timestamps are stored in."""
    if moment.tzinfo is None:
        moment = moment.astimezone()
    return moment.astimezone(UTC).isoformat(timespec="microseconds")


def parse_duration(text: str) -> timedelta:
    m = _DURATION.match(text)
    if not m:
        raise ValueError(f"not a duration: {text!r} (use e.g. 90s, 15m, 2h, 3d)")
    try:
        return timedelta(seconds=float(m[1]) * _UNITS[m[2].lower()])
    except OverflowError:
        raise ValueError(f"not a duration: {text!r} is too long") from None


def parse_when(text: str, *, now: datetime | None = None) -> datetime:
    """ISO-8601 (naive means local time), 'now', or a duration ago: '2h', '2h ago', '-2h'."""
    now = now or utcnow()
    raw = text.strip()
    if raw.lower() == "now":
        return now
    rel = raw.lower().removesuffix("ago").strip().removeprefix("-").strip()
    if _DURATION.match(rel):
        try:
            return now - parse_duration(rel)
        except OverflowError:
            raise ValueError(f"not a time: {text!r} is before year 1") from None
    try:
        moment = datetime.fromisoformat(raw.replace("Z", "+00:00"))
    except ValueError:
        raise ValueError(
            f"not a time: {text!r} (use ISO-8601 like 2026-11-28T14:05:00+01:00, or 2h ago)"
        ) from None
    try:
        if moment.tzinfo is None:
            moment = moment.astimezone()
        return moment.astimezone(UTC)
    except OverflowError:
        raise ValueError(f"not a time: {text!r} is out of range") from None
