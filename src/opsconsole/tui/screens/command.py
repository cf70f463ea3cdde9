"""``:`` command mode, as in k9s: type a screen name or a command, enter runs it."""

from __future__ import annotations

from textual.app import ComposeResult
from textual.suggester import SuggestFromList
from textual.widgets import Input

from opsconsole.tui.screens.base import OpsModal

__all__ = ["COMMANDS", "CommandLine"]

COMMANDS = [
    "dashboard",
    "runbooks",
    "incidents",
    "drills",
    "audit",
    "events",
    "help",
    "quit",
    "failover ",
    "declare",
    "verify",
]


class CommandLine(OpsModal):
    """A one-line prompt at the bottom; dismisses with the typed text (or None)."""

    def compose(self) -> ComposeResult:
        words = [
            c for c in COMMANDS if not (self.ctx.read_only and c.strip() in ("failover", "declare"))
        ]
        yield Input(
            placeholder=":" + " | ".join(w.strip() for w in words),
            suggester=SuggestFromList(words, case_sensitive=False),
            id="command",
        )

    def on_mount(self) -> None:
        self.query_one(Input).focus()

    def on_input_submitted(self, event: Input.Submitted) -> None:
        event.stop()
        self.dismiss(event.value.strip())
