"""Dialogs: confirm, approve, pick, ask, show. The TUI Operator and every screen use these.

Key safety, the same in every dialog:

* ``esc`` closes the dialog **without deciding anything** (it dismisses with ``None``);
* ``enter`` confirms what the person was asked to confirm (a "done?" step) but never a
  destructive choice: in a destructive dialog (abort, roll back, deny, quit with runs in
  progress) the focus rests on the safe button and only the explicit key (``y``, or the
  dialog's own letter) goes ahead;
* an answer that is not valid re-asks in place instead of closing.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import ClassVar

from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.widgets import Button, Input, Label, Markdown, OptionList, Static
from textual.widgets.option_list import Option

from opsconsole.tui.screens.base import OpsModal

__all__ = ["ApprovalModal", "AskModal", "ConfirmModal", "PickModal", "ShowModal"]


class ConfirmModal(OpsModal):
    """Yes / no / not now.

    ``y`` answers yes, ``n`` no, ``esc`` decides nothing (``None``). ``enter`` answers yes
    unless ``destructive``: then it takes the focused button, which is the safe one.
    ``typed_ahead`` is a key the person pressed before the dialog appeared; it is shown.
    """

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("y", "answer(True)", "Yes"),
        Binding("n", "answer(False)", "No"),
        Binding("escape", "close", "Not now"),
    ]

    def __init__(
        self,
        prompt: str,
        *,
        title: str = "Confirm",
        destructive: bool = False,
        yes_label: str = "Yes",
        no_label: str = "No",
    ) -> None:
        super().__init__()
        self.prompt = prompt
        self.destructive = destructive
        self.title_text = title
        self.yes_label = yes_label
        self.no_label = no_label

    def compose(self) -> ComposeResult:
        with Vertical(classes="dialog"):
            yield Label(self.title_text, classes="dialog-title")
            with VerticalScroll(classes="dialog-body"):
                yield Static(self.prompt, markup=False)
            hint = (
                "y: yes · n: no · esc: decide later"
                if self.destructive
                else "enter or y: yes · n: no · esc: decide later"
            )
            yield Label(hint, classes="dialog-hint")
            with Horizontal(classes="dialog-buttons"):
                yield Button(
                    f"{self.yes_label} (y)",
                    id="yes",
                    variant="error" if self.destructive else "primary",
                    compact=True,
                )
                yield Button(f"{self.no_label} (n)", id="no", compact=True)

    def on_mount(self) -> None:
        self.query_one("#no" if self.destructive else "#yes", Button).focus()

    def on_button_pressed(self, event: Button.Pressed) -> None:
        event.stop()
        self.dismiss(event.button.id == "yes")

    def action_answer(self, value: bool) -> None:
        self.dismiss(value)


class ApprovalModal(OpsModal):
    """Approve or deny another person's run: ``a`` approves, ``d`` denies after a second
    confirmation, ``esc`` and ``enter`` (focus on Cancel) decide nothing."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("a", "approve", "Approve"),
        Binding("d", "deny", "Deny…"),
        Binding("escape", "close", "Cancel"),
    ]

    def __init__(self, run_id: str, detail: str = "") -> None:
        super().__init__()
        self.run_id = run_id
        self.detail = detail

    def compose(self) -> ComposeResult:
        with Vertical(classes="dialog"):
            yield Label(f"Approval of run {self.run_id}", classes="dialog-title")
            with VerticalScroll(classes="dialog-body"):
                yield Static(self.detail or f"Run {self.run_id} waits for approval.", markup=False)
            yield Label("a: approve · d: deny (asks again) · esc: cancel", classes="dialog-hint")
            with Horizontal(classes="dialog-buttons"):
                yield Button("Approve (a)", id="approve", variant="primary", compact=True)
                yield Button("Deny (d)", id="deny", variant="error", compact=True)
                yield Button("Cancel (esc)", id="cancel", compact=True)

    def on_mount(self) -> None:
        self.query_one("#cancel", Button).focus()

    def on_button_pressed(self, event: Button.Pressed) -> None:
        event.stop()
        if event.button.id == "approve":
            self.action_approve()
        elif event.button.id == "deny":
            self.action_deny()
        else:
            self.dismiss(None)

    def action_approve(self) -> None:
        self.dismiss("approve")

    def action_deny(self) -> None:
        def sure(yes: object) -> None:
            if yes is True:
                self.dismiss("deny")

        self.app.push_screen(
            ConfirmModal(
                f"Deny run {self.run_id}? The run stops at its approval step.",
                title="Deny",
                destructive=True,
                yes_label="Deny",
                no_label="Keep waiting",
            ),
            callback=sure,
        )


class PickModal(OpsModal):
    """Pick one value from a list (roles, decisions, statuses, regions, runbooks):
    ``enter`` picks the highlighted one, ``esc`` picks nothing. Typing filters."""

    BINDINGS: ClassVar[list[BindingType]] = [Binding("escape", "close", "Cancel")]

    def __init__(
        self,
        title: str,
        choices: Sequence[tuple[str, str]],
        *,
        note: str = "",
        on_pick: Callable[[str], str | None] | None = None,
    ) -> None:
        """``choices``: (value, description). ``on_pick`` may refuse a value by returning
        an error text: the dialog stays open and shows it."""
        super().__init__()
        self.title_text = title
        self.choices = list(choices)
        self.note = note
        self.on_pick = on_pick

    def compose(self) -> ComposeResult:
        with Vertical(classes="dialog"):
            yield Label(self.title_text, classes="dialog-title")
            if self.note:
                yield Static(self.note, markup=False, classes="dialog-hint")
            yield Input(placeholder="type to filter", id="pick-filter", compact=True)
            yield OptionList(*self._options(""), id="pick-list")
            yield Static("", id="pick-error", classes="status-line bad")
            yield Label("enter: pick · esc: cancel", classes="dialog-hint")

    def _options(self, text: str) -> list[Option]:
        text = text.lower()
        return [
            Option(f"{value}  {desc}" if desc else value, id=value)
            for value, desc in self.choices
            if text in f"{value} {desc}".lower()
        ]

    def on_mount(self) -> None:
        self.query_one("#pick-filter", Input).focus()
        options = self.query_one(OptionList)
        if options.option_count:
            options.highlighted = 0

    def on_input_changed(self, event: Input.Changed) -> None:
        event.stop()
        options = self.query_one(OptionList)
        options.clear_options()
        options.add_options(self._options(event.value))
        if options.option_count:
            options.highlighted = 0

    def on_key(self, event: object) -> None:
        key = getattr(event, "key", "")
        if key in ("down", "up", "pagedown", "pageup") and self.focused is not None:
            options = self.query_one(OptionList)
            if self.focused is not options:
                options.focus()
                options.run_action(f"cursor_{'down' if key in ('down', 'pagedown') else 'up'}")
                getattr(event, "stop", lambda: None)()

    def on_input_submitted(self, event: Input.Submitted) -> None:
        event.stop()
        self._pick()

    def on_option_list_option_selected(self, event: OptionList.OptionSelected) -> None:
        event.stop()
        self._pick()

    def _pick(self) -> None:
        options = self.query_one(OptionList)
        index = options.highlighted
        if index is None or not options.option_count:
            self.query_one("#pick-error", Static).update("✖ nothing matches: change the filter")
            return
        value = options.get_option_at_index(index).id or ""
        if self.on_pick is not None:
            error = self.on_pick(value)
            if error:
                self.query_one("#pick-error", Static).update(f"✖ {error}")
                return
        self.dismiss(value)


class AskModal(OpsModal):
    """Ask for a value; enter submits, esc cancels (``None``).

    ``validate`` returns an error text for an answer that cannot be used: the dialog stays
    open with the error shown (one typo never fails a run)."""

    def __init__(
        self,
        prompt: str,
        *,
        secret: bool = False,
        default: str | None = None,
        title: str = "Input needed",
        validate: Callable[[str], str | None] | None = None,
    ) -> None:
        super().__init__()
        self.prompt = prompt
        self.secret = secret
        self.default = default
        self.title_text = title
        self.validate = validate

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
            yield Static("", id="ask-error", classes="status-line bad")
            yield Label("enter: submit · esc: cancel", classes="dialog-hint")

    def on_mount(self) -> None:
        self.query_one("#answer", Input).focus()

    def on_input_submitted(self, event: Input.Submitted) -> None:
        event.stop()
        if self.validate is not None:
            error = self.validate(event.value)
            if error:
                self.query_one("#ask-error", Static).update(f"✖ {error}")
                return
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
