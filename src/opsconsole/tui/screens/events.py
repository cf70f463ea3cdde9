"""Events (``6`` or ``:events``): what changed, newest first, from every process.

Health changes, runs started and finished, approvals asked and given, incident changes
and drills, each with time, actor and interface, from the audit log (every change lands
there) and followed live through the store's change counter (``opsconsole.changes``).
``/`` filters: words, ``kind:incident``, ``actor:bob``, ``via:cli``.
"""

from __future__ import annotations

from typing import Any, ClassVar

from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.widgets import DataTable, Header, Input, Static

from opsconsole.changes import Change, describe, matches
from opsconsole.tui.screens.base import OpsScreen
from opsconsole.tui.widgets.common import local_time, outcome_text
from opsconsole.tui.widgets.key_footer import KeyFooter

__all__ = ["EventsScreen"]

SHOWN = 500
# Session bookkeeping is not news.
HIDDEN_ACTIONS = ("tui.session.", "audit.verify")


def newsworthy(change: Change) -> bool:
    return not change.action.startswith(HIDDEN_ACTIONS)


class EventsScreen(OpsScreen):
    TITLE = "Events"
    AUTO_FOCUS = "#events-table"
    BINDINGS: ClassVar[list[BindingType]] = [Binding("c", "copy_id", "Copy id")]

    def __init__(self) -> None:
        super().__init__()
        self.rows: list[Change] = []

    def compose(self) -> ComposeResult:
        yield Header()
        yield Input(
            placeholder="/ filter: words, kind:incident actor:NAME via:cli",
            classes="filter",
            id="events-filter",
        )
        table: DataTable[Any] = DataTable(id="events-table", cursor_type="row", zebra_stripes=True)
        yield table
        yield Static("", id="events-hint", classes="status-line")
        yield KeyFooter()

    def on_mount(self) -> None:
        table = self.query_one(DataTable)
        # Priority order: at 80 columns the last ones are cut, never time/who/what.
        table.add_columns("time", "who", "via", "result", "what")
        self.app.change_listeners.append(self._changed)  # type: ignore[attr-defined]
        self.reload()

    def on_unmount(self) -> None:
        listeners = self.app.change_listeners  # type: ignore[attr-defined]
        if self._changed in listeners:
            listeners.remove(self._changed)

    def _changed(self, changes: list[Change]) -> None:
        if any(newsworthy(c) for c in changes):
            self.reload()

    def reload(self) -> None:
        text = self.query_one("#events-filter", Input).value
        recent = list(self.app.recent_changes)  # type: ignore[attr-defined]
        rows = [c for c in reversed(recent) if newsworthy(c) and matches(c, text)][:SHOWN]
        if [c.seq for c in rows] == [c.seq for c in self.rows]:
            return
        self.rows = rows
        table = self.query_one(DataTable)
        keep = table.cursor_row
        table.clear()
        for c in rows:
            table.add_row(
                local_time(c.ts, now=self.ctx.clock()),
                c.actor,
                c.interface,
                outcome_text(c.outcome),
                describe(c, who=False),
                key=str(c.seq),
            )
        if rows:
            table.move_cursor(row=min(keep, len(rows) - 1))
        self.query_one("#events-hint", Static).update(
            f"{len(rows)} event(s), newest first · live · / filter · c copies the target id"
            if rows
            else "no events match"
        )

    def on_input_changed(self, event: Input.Changed) -> None:
        if event.input.id == "events-filter":
            self.reload()

    def action_copy_id(self) -> None:
        table = self.query_one(DataTable)
        if self.rows and table.cursor_row < len(self.rows):
            target = self.rows[table.cursor_row].target
            self.app.copy_to_clipboard(target)
            self.app.notify(f"copied {target}", timeout=3)
