"""A screen whose capability has not landed (or failed to import) says so plainly."""

from __future__ import annotations

from textual.app import ComposeResult
from textual.widgets import Header, Static

from opsconsole.tui.screens.base import OpsScreen
from opsconsole.tui.widgets.key_footer import KeyFooter

__all__ = ["PendingScreen"]


class PendingScreen(OpsScreen):
    def __init__(self, title: str, reason: str) -> None:
        super().__init__()
        self.title = title
        self.reason = reason

    def compose(self) -> ComposeResult:
        yield Header()
        yield Static(
            f"{self.title}: not available.\n{self.reason}", classes="pending", markup=False
        )
        yield KeyFooter()
