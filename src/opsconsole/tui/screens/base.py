"""The base of every console screen: access to the context, read-only, `/` filter."""

from __future__ import annotations

from typing import TYPE_CHECKING, ClassVar

from textual.binding import Binding, BindingType
from textual.screen import ModalScreen, Screen
from textual.widgets import Input

from opsconsole.tui.context import MUTATING_ACTIONS

if TYPE_CHECKING:
    from opsconsole.tui.app import OpsConsoleApp
    from opsconsole.tui.context import TuiContext

__all__ = ["OpsModal", "OpsScreen", "ReadOnlyMixin"]


class ReadOnlyMixin:
    """``--read-only`` hides (not greys out) every binding of a mutating action."""

    app: OpsConsoleApp

    @property
    def ctx(self) -> TuiContext:
        return self.app.ctx

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        return not (self.app.ctx.read_only and action in MUTATING_ACTIONS)


class OpsScreen(ReadOnlyMixin, Screen[None]):
    """A top-level screen (one per mode). ``/`` focuses its filter input, if it has one."""

    TITLE_TEXT = ""
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("slash", "filter", "Filter", key_display="/"),
        Binding("j", "table_move(1)", "Down", show=False),
        Binding("k", "table_move(-1)", "Up", show=False),
        Binding("c", "copy_id", "Copy id", show=False),
    ]

    def selected_id(self) -> str | None:
        """The id of what the cursor is on (a run, an incident, a drill, an event's
        target): what ``c`` copies. Screens with a list override it."""
        return None

    def action_copy_id(self) -> None:
        """``c`` copies the highlighted row's id to the clipboard (OSC 52), as in k9s."""
        ident = self.selected_id()
        if not ident:
            self.app.notify("nothing to copy here", severity="warning", timeout=3)
            return
        self.app.copy_to_clipboard(ident)
        self.app.notify(f"copied {ident}", timeout=3)

    def action_table_move(self, delta: int) -> None:
        """``j``/``k`` on tables, as in k9s and lazygit."""
        from textual.widgets import DataTable

        focused = self.focused
        if isinstance(focused, DataTable):
            focused.action_cursor_down() if delta > 0 else focused.action_cursor_up()

    def on_mount(self) -> None:
        from textual.widgets import Header

        from opsconsole.tui.widgets.incident_bar import IncidentBar

        for field in self.query("Input.filter").results(Input):
            field.display = False
        headers = self.query(Header)
        if headers and not self.query(IncidentBar):
            self.mount(IncidentBar(), after=headers.first())

    def action_filter(self) -> None:
        inputs = self.query("Input.filter")
        if inputs:
            field = inputs.first(Input)
            field.display = True
            field.focus()

    def close_filter(self) -> bool:
        """``esc`` clears a filter that is open or applied (focused or not) before it
        leaves the screen: a filter never hides rows silently. True if it did."""
        for field in self.query("Input.filter").results(Input):
            if field.has_focus or field.value or field.display:
                had_focus = field.has_focus
                field.value = ""
                field.display = False
                if had_focus:
                    self.focus_next()
                return True
        return False

    def on_input_submitted(self, event: Input.Submitted) -> None:
        # Enter in the filter keeps the filter (shown, with its text) and hands the
        # keyboard back to the list.
        if event.input.has_class("filter"):
            event.stop()
            if not event.value:
                event.input.display = False
            self.focus_next()


class OpsModal(ReadOnlyMixin, ModalScreen[object]):
    """A dialog; ``esc`` closes it with ``None``."""

    BINDINGS: ClassVar[list[BindingType]] = [Binding("escape", "close", "Close")]

    def action_close(self) -> None:
        self.dismiss(None)
