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
    BINDINGS: ClassVar[list[BindingType]] = [Binding("slash", "filter", "Filter", key_display="/")]

    def on_mount(self) -> None:
        for field in self.query("Input.filter").results(Input):
            field.display = False

    def action_filter(self) -> None:
        inputs = self.query("Input.filter")
        if inputs:
            field = inputs.first(Input)
            field.display = True
            field.focus()

    def close_filter(self) -> bool:
        """``esc`` in a filter clears it and hands the keys back; True if it did."""
        focused = self.focused
        if isinstance(focused, Input) and focused.has_class("filter"):
            focused.value = ""
            focused.display = False
            self.focus_next()
            return True
        return False

    def on_input_submitted(self, event: Input.Submitted) -> None:
        # Enter in the filter keeps the filter and hands the keyboard back to the list.
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
