"""The incident line under the header of every screen: open SEV1/SEV2 incidents (id,
severity, status) and the nearest deadline counting down; ``i`` jumps to it.

The app keeps the list (``OpsConsoleApp.incidents``, a reactive re-read every 5 s and on
every incident change from any process); the bar watches it and draws it, and redraws the
countdown once a second.
"""

from __future__ import annotations

from datetime import datetime

from rich.text import Text
from textual.widgets import Static

from opsconsole.tui.widgets.common import countdown

__all__ = ["IncidentBar", "incident_line"]

URGENT = ("SEV1", "SEV2")


def incident_line(incidents: list, now: datetime, *, width: int = 80) -> Text:  # type: ignore[type-arg]
    """One line; the nearest clock first, so a narrow terminal cuts the least urgent."""
    urgent = [i for i in incidents if i.severity in URGENT]
    if not urgent:
        others = len(incidents)
        text = Text("no SEV1/SEV2 incident open", style="dim")
        if others:
            text.append(f" · {others} lower-severity open (3: incidents)", style="dim")
        return text
    first = urgent[0]
    text = Text()
    text.append("◆ ", style="bold red")
    text.append(f"{first.id} {first.severity} {first.status}", style="bold")
    if first.deadline_due is not None:
        text.append(" · ")
        text.append(countdown(first.deadline_due, now))
        text.append(f" {first.deadline_name}")
    rest = [f"{i.id} {i.severity}" for i in urgent[1:]]
    hint = "  i: open"
    if rest:
        more = f" · +{len(rest)}: {', '.join(rest)}"
        if text.cell_len + len(more) + len(hint) <= width:
            text.append(more)
        else:
            text.append(f" · +{len(rest)}")
    if text.cell_len + len(hint) > width:
        text.truncate(width - len(hint), overflow="ellipsis")
    text.append(hint, style="bold")
    return text


class IncidentBar(Static):
    DEFAULT_CSS = """
    IncidentBar {
        height: 1;
        padding: 0 1;
        background: $boost;
    }
    """

    def __init__(self) -> None:
        super().__init__("", id="incident-bar", markup=False)
        self.now: datetime | None = None  # fixed clock for snapshot tests

    def on_mount(self) -> None:
        self.set_interval(1.0, self.refresh)  # the countdown
        self.watch(self.app, "incidents", lambda _: self.refresh(), init=False)

    def render(self) -> Text:
        incidents = getattr(self.app, "incidents", [])
        return incident_line(
            incidents, self.now or self.app.ctx.clock(), width=max(20, self.size.width - 2)
        )
