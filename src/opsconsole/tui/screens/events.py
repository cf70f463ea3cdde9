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
from textual.reactive import reactive
from textual.widgets import Header, Input, Static

from opsconsole.changes import Change, describe, matches
from opsconsole.tui.screens.base import OpsScreen
from opsconsole.tui.widgets.common import local_time, outcome_text
from opsconsole.tui.widgets.key_footer import KeyFooter
from opsconsole.tui.widgets.log_table import LogTable

__all__ = ["EventsScreen"]

SHOWN = 500
# Session bookkeeping is not news.
HIDDEN_ACTIONS = ("tui.session.", "audit.verify")


def newsworthy(change: Change) -> bool:
    return not change.action.startswith(HIDDEN_ACTIONS)


class EventsScreen(OpsScreen):
    """Follows the app's change feed: each change adds its rows on top, a new filter
    rebuilds the list once (from memory, the store is not read)."""

    TITLE = "Events"
    AUTO_FOCUS = "#events-table"
    BINDINGS: ClassVar[list[BindingType]] = [Binding("c", "copy_id", "Copy id")]

    filter_text: reactive[str] = reactive("", init=False)

    def __init__(self) -> None:
        super().__init__()
        self.rows: list[Change] = []  # shown order, newest first
        self.rebuilds = 0  # full rebuilds (a new filter); tests count them

    def compose(self) -> ComposeResult:
        yield Header()
        yield Input(
            placeholder="/ filter: words, kind:incident actor:NAME via:cli",
            classes="filter",
            id="events-filter",
        )
        yield LogTable(id="events-table")
        yield Static("", id="events-hint", classes="status-line")
        yield KeyFooter()

    def on_mount(self) -> None:
        table = self.query_one(LogTable)
        # Priority order: at 80 columns the last ones are cut, never time/who/what.
        table.add_columns("time", "who", "via", "result", "what")
        self.app.change_listeners.append(self._changed)  # type: ignore[attr-defined]
        self.reload()
        self._hint()

    def on_unmount(self) -> None:
        listeners = self.app.change_listeners  # type: ignore[attr-defined]
        if self._changed in listeners:
            listeners.remove(self._changed)

    def _changed(self, changes: list[Change]) -> None:
        newest = self.rows[0].seq if self.rows else 0
        fresh = [
            c
            for c in reversed(changes)
            if c.seq > newest and newsworthy(c) and matches(c, self.filter_text)
        ]
        if not fresh:
            return
        self.rows = (fresh + self.rows)[:SHOWN]
        self.query_one(LogTable).prepend([self._cells(c) for c in fresh], limit=SHOWN)
        self._hint()

    def on_input_changed(self, event: Input.Changed) -> None:
        if event.input.id == "events-filter":
            self.filter_text = event.value

    def watch_filter_text(self) -> None:
        self.reload()

    def reload(self) -> None:
        recent = list(self.app.recent_changes)  # type: ignore[attr-defined]
        rows = [c for c in reversed(recent) if newsworthy(c) and matches(c, self.filter_text)]
        rows = rows[:SHOWN]
        if [c.seq for c in rows] == [c.seq for c in self.rows]:
            return
        self.rows = rows
        self.rebuilds += 1
        self.query_one(LogTable).replace([self._cells(c) for c in rows])
        self._hint()

    def _cells(self, c: Change) -> tuple[int, tuple[Any, ...]]:
        return c.seq, (
            local_time(c.ts, now=self.ctx.clock()),
            c.actor,
            c.interface,
            outcome_text(c.outcome),
            describe(c, who=False),
        )

    def _hint(self) -> None:
        self.query_one("#events-hint", Static).update(
            f"{len(self.rows)} event(s), newest first · live · / filter · c copies the target id"
            if self.rows
            else "no events match"
        )

    def selected_id(self) -> str | None:
        index = self.query_one(LogTable).cursor_row
        if not self.rows or index >= len(self.rows):
            return None
        return self.rows[index].target or None
