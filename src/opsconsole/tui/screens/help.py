"""``?``: every key binding that works right now, global and on the current screen."""

from __future__ import annotations

from typing import ClassVar

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import VerticalScroll
from textual.screen import Screen
from textual.widgets import Label, Static

from opsconsole.tui.screens.base import ReadOnlyMixin

__all__ = ["HelpScreen", "binding_rows"]


def binding_rows(screen: Screen[object]) -> list[tuple[str, str, str]]:
    """(key, description, where) for every enabled binding on ``screen`` and the app."""
    rows: list[tuple[str, str, str]] = []
    seen: set[str] = set()
    for active in screen.active_bindings.values():
        binding: Binding = active.binding
        if not active.enabled or binding.system or binding.action.startswith("screen.copy"):
            continue
        label = binding.description or binding.action
        where = "global" if active.node is screen.app else type(active.node).__name__
        display = screen.app.get_key_display(binding)
        if display in seen:
            continue
        seen.add(display)
        rows.append((display, label, where))
    rows.sort(key=lambda r: (r[2] != "global", r[0]))
    return rows


class HelpScreen(ReadOnlyMixin, Screen[None]):
    """Full-screen, as in k9s: cheap to open however busy the dashboard beneath is."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape,question_mark,q", "app.pop_screen", "Close")
    ]

    def __init__(self, rows: list[tuple[str, str, str]]) -> None:
        super().__init__()
        self.rows = rows

    def set_rows(self, rows: list[tuple[str, str, str]]) -> None:
        """Reuse this screen for another set of keys (no new widgets)."""
        self.rows = rows
        if self.is_mounted:
            self.query_one("#help-body", Static).update(self._text())

    def compose(self) -> ComposeResult:
        yield Label("Keys — esc or ? closes", classes="dialog-title")
        with VerticalScroll():
            yield Static(self._text(), id="help-body")

    def _text(self) -> Text:
        width = max((len(k) for k, _, _ in self.rows), default=4) + 2
        text = Text()
        text.append("Screens: ", style="bold")
        text.append(
            "1 dashboard · 2 runbooks · 3 incidents · 4 drills · 5 audit · 6 events · "
            "i: the incident with the nearest deadline\n"
        )
        text.append(": ", style="bold")
        text.append(
            "command mode (dashboard, runbooks, incidents, drills, audit, events, "
            "failover REGION, declare, verify, quit) · ctrl+p palette\n"
        )
        if self.ctx.read_only:
            text.append("READ-ONLY: actions that change things are hidden\n", style="bold")
        text.append("\n")
        for key, label, where in self.rows:
            text.append(key.ljust(width), style="bold")
            text.append(label)
            text.append(f"  ({where})\n", style="dim")
        return text
