"""Small rendering helpers: states as symbol + word + colour, times, sparklines."""

from __future__ import annotations

import math
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

from rich.text import Text

__all__ = [
    "STATE_STYLE",
    "ago",
    "countdown",
    "local_time",
    "outcome_text",
    "served_by_text",
    "severity_rank",
    "sparkline",
    "state_text",
    "update_if_changed",
]

# state -> (symbol, word, style). The word and symbol carry the meaning; colour helps.
STATE_STYLE: dict[str, tuple[str, str, str]] = {
    "ok": ("●", "ok", "green"),
    "degraded": ("▲", "DEGRADED", "bold yellow"),
    "down": ("✖", "DOWN", "bold red"),
    "unknown": ("?", "unknown", "dim"),
    "flapping": ("↯", "FLAPPING", "bold magenta"),
    # runbook steps and runs
    "pending": ("·", "pending", "dim"),
    "running": ("▶", "running", "bold cyan"),
    "succeeded": ("✔", "done", "green"),
    "skipped": ("↷", "skipped", "dim"),
    "failed": ("✖", "FAILED", "bold red"),
    "timed_out": ("⌛", "TIMED OUT", "bold red"),
    "rolled_back": ("↶", "rolled back", "yellow"),
    "waiting_approval": ("⏸", "WAITING APPROVAL", "bold magenta"),
    "waiting": ("⏸", "WAITING FOR YOU", "bold magenta"),
    "aborted": ("■", "aborted", "yellow"),
    "interrupted": ("!", "interrupted", "bold yellow"),
}

_BLOCKS = "▁▂▃▄▅▆▇█"

# Worst first: a state the model adds later (unknown to this table) sorts with "unknown".
_RANK = {"down": 0, "flapping": 1, "degraded": 2, "unknown": 3, "ok": 5}


def severity_rank(state: str) -> int:
    return _RANK.get(state, 4)


# Audit outcomes: a success is marked as one (``✔ passed``), a failure with a cross;
# anything else (``pending``, ``waiting_approval``...) with a neutral dot.
GOOD_OUTCOMES = frozenset(
    {"ok", "passed", "succeeded", "success", "approved", "done", "intact", "kept", "sent"}
)
BAD_OUTCOMES = frozenset(
    {
        "failed",
        "failure",
        "error",
        "denied",
        "refused",
        "tampered",
        "timed_out",
        "aborted",
        "missed",
        "rejected",
        "interrupted",
        "not_kept",
    }
)


def outcome_text(outcome: str) -> Text:
    """``ok`` stays quiet; other outcomes get a symbol that matches their meaning."""
    if outcome == "ok":
        return Text("ok", style="dim")
    if outcome in GOOD_OUTCOMES:
        return Text(f"✔ {outcome}", style="green")
    if outcome in BAD_OUTCOMES:
        return Text(f"✖ {outcome}", style="bold red")
    return Text(f"· {outcome}")


def update_if_changed(widget: Any, content: Text | str, *, layout: bool = True) -> bool:
    """``Static.update`` only when the content differs. Every update lays the whole screen
    out again; the dashboard redraws its panels each second, mostly with the same text.
    ``layout=False`` for a widget whose size does not follow its content."""
    if widget.content == content:
        return False
    widget.update(content, layout=layout)
    return True


def state_text(state: str, *, short: bool = False) -> Text:
    symbol, word, style = STATE_STYLE.get(state, ("?", state, ""))
    return Text(f"{symbol} {word if not short else word[:4]}", style=style)


def sparkline(values: Sequence[float | None], width: int) -> str:
    """Latency history as block characters; a failed sample (None/NaN) is ``×``."""
    if width <= 0:
        return ""
    tail = list(values)[-width:]
    good = [v for v in tail if v is not None and not math.isnan(v)]
    if not good:
        return "×" * len(tail) if tail else ""
    low, high = min(good), max(good)
    span = (high - low) or 1.0
    out = []
    for v in tail:
        if v is None or math.isnan(v):
            out.append("×")
        else:
            out.append(_BLOCKS[min(len(_BLOCKS) - 1, int((v - low) / span * (len(_BLOCKS) - 1)))])
    return "".join(out)


def _aware(moment: datetime | str) -> datetime:
    if isinstance(moment, str):
        moment = datetime.fromisoformat(moment.replace("Z", "+00:00"))
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment


def local_time(moment: datetime | str, *, now: datetime | None = None) -> str:
    """Viewer's local time; the date only when it is not today."""
    local = _aware(moment).astimezone()
    today = (now or datetime.now(UTC)).astimezone().date()
    return local.strftime("%H:%M:%S" if local.date() == today else "%m-%d %H:%M")


def _span(seconds: float) -> str:
    seconds = int(abs(seconds))
    days, rem = divmod(seconds, 86400)
    hours, rem = divmod(rem, 3600)
    minutes, secs = divmod(rem, 60)
    if days:
        return f"{days}d{hours:02d}h"
    if hours:
        return f"{hours}h{minutes:02d}m"
    return f"{minutes}m{secs:02d}s"


def ago(moment: datetime | str | None, now: datetime) -> str:
    if moment is None:
        return "-"
    return _span((now - _aware(moment)).total_seconds())


def countdown(due: datetime | str, now: datetime) -> Text:
    """``2h13m left`` or ``OVERDUE 5m10s``; words, not colour alone."""
    left: timedelta = _aware(due) - now
    if left.total_seconds() < 0:
        return Text(f"OVERDUE {_span(left.total_seconds())}", style="bold red")
    style = "bold yellow" if left.total_seconds() < 3600 else ""
    return Text(f"{_span(left.total_seconds())} left", style=style)


def served_by_text(info: Any, now: datetime | None = None) -> str:
    """``served by eu-central-1 since 23:18:05 (run 20261128-231805-ab12cd)``."""
    since = f" since {local_time(info.finished_at, now=now)}" if info.finished_at else ""
    drill = ", drill" if info.mode == "drill" else ""
    return f"served by {info.target or 'its standby'}{since} (run {info.run_id}{drill})"
