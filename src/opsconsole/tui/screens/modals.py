"""Dialogs: confirm, ask, show. The TUI Operator and every screen use these."""

from __future__ import annotations

from typing import ClassVar

from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.widgets import Button, Input, Label, Markdown, Static

from opsconsole.tui.screens.base import OpsModal

__all__ = ["AskModal", "ConfirmModal", "ShowModal"]


class ConfirmModal(OpsModal):
    """Yes / no. ``y`` / ``n`` answer directly; enter takes the focused button."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("y", "answer(True)", "Yes"),
        Binding("n", "answer(False)", "No"),
        Binding("escape", "answer(False)", "No"),
    ]

    def __init__(self, prompt: str, *, default: bool = False, title: str = "Confirm") -> None:
        super().__init__()
        self.prompt = prompt
        self.default = default
        self.title_text = title

    def compose(self) -> ComposeResult:
        with Vertical(classes="dialog"):
            yield Label(self.title_text, classes="dialog-title")
            with VerticalScroll(classes="dialog-body"):
                yield Static(self.prompt, markup=False)
            with Horizontal(classes="dialog-buttons"):
                yield Button("Yes (y)", id="yes", variant="primary" if self.default else "default")
                yield Button("No (n)", id="no", variant="default" if self.default else "primary")

    def on_mount(self) -> None:
        self.query_one("#yes" if self.default else "#no", Button).focus()

    def on_button_pressed(self, event: Button.Pressed) -> None:
        event.stop()
        self.dismiss(event.button.id == "yes")

    def action_answer(self, value: bool) -> None:
        self.dismiss(value)


class AskModal(OpsModal):
    """Ask for a value; enter submits, esc cancels (``None``)."""

    def __init__(
        self,
        prompt: str,
        *,
        secret: bool = False,
        default: str | None = None,
        title: str = "Input needed",
    ) -> None:
        super().__init__()
        self.prompt = prompt
        self.secret = secret
        self.default = default
        self.title_text = title

    def compose(self) -> ComposeResult:
        with Vertical(classes="dialog"):
            yield Label(self.title_text, classes="dialog-title")
            yield Static(self.prompt, markup=False, classes="dialog-body")
            yield Input(
                value=self.default or "",
                password=self.secret,
                id="answer",
                compact=True,
                placeholder="type and press enter" + (" (hidden)" if self.secret else ""),
            )

    def on_mount(self) -> None:
        self.query_one("#answer", Input).focus()

    def on_input_submitted(self, event: Input.Submitted) -> None:
        event.stop()
        self.dismiss(event.value)


class ShowModal(OpsModal):
    """Instructions to read (a manual step's body); enter or esc closes."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("enter", "close", "Done"),
        Binding("escape", "close", "Close"),
    ]

    def __init__(self, text: str, *, title: str = "Instructions") -> None:
        super().__init__()
        self.text = text
        self.title_text = title

    def compose(self) -> ComposeResult:
        with Vertical(classes="dialog"):
            yield Label(self.title_text, classes="dialog-title")
            with VerticalScroll(classes="dialog-body"):
                yield Markdown(self.text)
            yield Label("enter: done", classes="dialog-hint")

    def action_close(self) -> None:
        self.dismiss(True)
