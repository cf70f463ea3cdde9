"""``?``: every key binding that works right now, global and on the current screen."""

from __future__ import annotations

from typing import TYPE_CHECKING, ClassVar

from rich.table import Table
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Vertical, VerticalScroll
from textual.widgets import Label, Static

from opsconsole.tui.screens.base import OpsModal

if TYPE_CHECKING:
    from textual.screen import Screen

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


class HelpScreen(OpsModal):
    BINDINGS: ClassVar[list[BindingType]] = [Binding("escape,question_mark,q", "close", "Close")]

    def __init__(self, rows: list[tuple[str, str, str]]) -> None:
        super().__init__()
        self.rows = rows

    def compose(self) -> ComposeResult:
        table = Table(box=None, expand=True, pad_edge=False)
        table.add_column("key", style="bold", no_wrap=True)
        table.add_column("does")
        table.add_column("where", style="dim")
        for key, label, where in self.rows:
            table.add_row(key, label, where)
        mode = "\nREAD-ONLY: actions that change things are hidden" if self.ctx.read_only else ""
        with Vertical(classes="dialog wide"):
            yield Label("Keys", classes="dialog-title")
            with VerticalScroll(classes="dialog-body"):
                yield Static(
                    "Screens: 1 dashboard · 2 runbooks · 3 incidents · 4 drills · 5 audit\n"
                    ": command mode (dashboard, runbooks, incidents, drills, audit, "
                    "failover REGION, declare, verify, quit) · ctrl+p palette" + mode,
                    markup=False,
                )
                yield Static(table)
            yield Label("esc / ? close", classes="dialog-hint")
