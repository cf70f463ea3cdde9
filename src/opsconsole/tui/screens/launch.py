"""The launch dialog: a runbook's parameters, prefilled; enter runs, ``ctrl+d`` plans.

Parameters are checked here, with the engine's own rules, before anything starts: a
missing required value or an unknown region re-asks in the dialog instead of creating a
failed run. Regions and choices are pickers, not free text.
"""

from __future__ import annotations

from typing import Any, ClassVar

from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.widgets import Button, Input, Label, Select, Static

from opsconsole.tui.screens.base import OpsModal

__all__ = ["REGION_PARAMS", "LaunchModal"]

# Parameters that name an inventory region: offered as a picker, checked against it.
REGION_PARAMS = ("region", "target", "standby", "target_region", "source_region")


class LaunchModal(OpsModal):
    """``mode`` "run": enter runs (ctrl+d plans instead); "plan": enter plans."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape", "close", "Cancel"),
        Binding("ctrl+r", "go('run')", "Run", show=False),
        Binding("ctrl+d", "go('plan')", "Plan (dry run)"),
    ]

    def __init__(
        self,
        runbook: Any,
        params: dict[str, Any],
        *,
        note: str = "",
        regions: list[tuple[str, str]] | None = None,
        mode: str = "run",
    ) -> None:
        super().__init__()
        self.runbook = runbook
        self.params = params
        self.note = note
        self.regions = regions or []
        self.mode = mode

    def _is_region(self, name: str, spec: Any) -> bool:
        return bool(self.regions) and name in REGION_PARAMS and not spec.choices

    def compose(self) -> ComposeResult:
        rb = self.runbook
        verb = "Plan (dry run)" if self.mode == "plan" else "Run"
        with Vertical(classes="dialog"):
            yield Label(f"{verb} {rb.name}", classes="dialog-title")
            with VerticalScroll(classes="dialog-body"):
                if self.note:
                    yield Static(self.note, markup=False, classes="launch-note")
                yield Static(" ".join(rb.description.split()), markup=False, classes="dialog-hint")
                for name, spec in rb.params.items():
                    value = self.params.get(name, spec.default)
                    need = " (required)" if spec.required else ""
                    yield Label(f"{name}{need}: {spec.description}")
                    text = (
                        ""
                        if value is None
                        else str(value).lower()
                        if isinstance(value, bool)
                        else str(value)
                    )
                    if self._is_region(name, spec) or spec.choices or spec.type == "bool":
                        yield Select(
                            self._choices(name, spec),
                            value=text if text else Select.NULL,
                            allow_blank=not text,
                            prompt=f"pick {name}",
                            id=f"param-{name}",
                            compact=True,
                        )
                    else:
                        yield Input(
                            value=text,
                            password=spec.secret,
                            id=f"param-{name}",
                            compact=True,
                            placeholder=spec.type,
                        )
                yield Static("", id="launch-error", classes="status-line bad")
            with Horizontal(classes="dialog-buttons"):
                if self.mode == "plan":
                    yield Button("Plan (enter)", id="plan", variant="primary", compact=True)
                else:
                    yield Button("Run (enter)", id="run", variant="warning", compact=True)
                    yield Button("Plan (^d)", id="plan", compact=True)
                yield Button("Cancel (esc)", id="cancel", compact=True)

    def _choices(self, name: str, spec: Any) -> list[tuple[str, str]]:
        if spec.choices:
            return [(str(c), str(c)) for c in spec.choices]
        if spec.type == "bool":
            return [("false", "false"), ("true", "true")]
        return [(f"{rid}  {label}", rid) for rid, label in self.regions]

    def on_mount(self) -> None:
        self._focus_next_missing()

    def on_select_changed(self, event: Select.Changed) -> None:
        # Picked: on to the next missing value, or to the button (enter then runs).
        event.stop()
        if event.value is not Select.NULL:
            self.query_one("#launch-error", Static).update("")
            self.call_after_refresh(self._focus_next_missing)

    def _focus_next_missing(self) -> None:
        for name in self.runbook.params:
            widget = self.query_one(f"#param-{name}")
            if isinstance(widget, Input) and not widget.value:
                widget.focus()
                return
            if isinstance(widget, Select) and widget.value is Select.NULL:
                widget.focus()
                return
        self.query_one("#plan" if self.mode == "plan" else "#run", Button).focus()

    def values(self) -> dict[str, str]:
        out: dict[str, str] = {}
        for name in self.runbook.params:
            widget = self.query_one(f"#param-{name}")
            if isinstance(widget, Select):
                value = "" if widget.value is Select.NULL else str(widget.value)
            else:
                value = widget.value  # type: ignore[attr-defined]
            if value != "":
                out[name] = value
        return out

    def problem(self, values: dict[str, str]) -> str | None:
        """Why these values cannot start the run (the engine's own checks), or None."""
        from opsconsole.errors import OpsError
        from opsconsole.runbooks.context import coerce_params

        for name, value in values.items():
            if self._is_region(name, self.runbook.params[name]) and value not in dict(self.regions):
                return f"unknown region {value!r} for {name}; pick one of the list"
        try:
            coerce_params(self.runbook, values)
        except OpsError as exc:
            return str(exc).replace(" (--var", " (").replace("=...)", "")
        return None

    def on_input_submitted(self, event: Input.Submitted) -> None:
        event.stop()
        self.action_go(self.mode)

    def on_button_pressed(self, event: Button.Pressed) -> None:
        event.stop()
        if event.button.id == "cancel":
            self.dismiss(None)
        else:
            self.action_go(event.button.id or self.mode)

    def action_go(self, what: str) -> None:
        values = self.values()
        error = self.problem(values)
        if error:
            self.query_one("#launch-error", Static).update(f"✖ {error}")
            return
        self.dismiss((what, values))
