"""A dry run: every step rendered with its final (redacted) values; nothing changes."""

from __future__ import annotations

import json
from typing import Any

from rich.table import Table
from rich.text import Text
from textual import work
from textual.app import ComposeResult
from textual.containers import VerticalScroll
from textual.widgets import Header, Static

from opsconsole.tui.screens.base import OpsScreen
from opsconsole.tui.widgets.key_footer import KeyFooter

__all__ = ["PlanScreen"]


class PlanScreen(OpsScreen):
    TITLE = "Plan"

    def __init__(self, runbook: Any, params: dict[str, Any]) -> None:
        super().__init__()
        self.runbook = runbook
        self.params = params
        self.plan_worker: Any = None

    def compose(self) -> ComposeResult:
        yield Header()
        yield Static(
            f"planning {self.runbook.name} (dry run: read-only checks run, nothing changes)…",
            id="plan-status",
            classes="status-line",
            markup=False,
        )
        with VerticalScroll():
            yield Static("", id="plan-body")
        yield KeyFooter()

    def on_mount(self) -> None:
        self.plan_worker = self._plan()

    @work(exclusive=True, group="plan", exit_on_error=False)
    async def _plan(self) -> None:
        from opsconsole.errors import OpsError
        from opsconsole.runbooks import plan_run
        from opsconsole.tui.run_control import run_env

        status = self.query_one("#plan-status", Static)
        try:
            steps = await plan_run(self.runbook, self.params, env=run_env(self.app))  # type: ignore[arg-type]
        except OpsError as exc:
            status.update(Text(f"✖ plan failed: {exc}", style="bold red"))
            return
        table = Table(box=None, expand=True, pad_edge=False, header_style="bold")
        for col in ("phase", "step", "runs?", "checked", "rendered"):
            table.add_column(col, overflow="fold")
        for s in steps:
            rendered = json.dumps(s.rendered, ensure_ascii=False, default=str)
            notes = ("\n" + "; ".join(s.notes)) if s.notes else ""
            checked = (s.status or "") + (f"\n{s.output.strip()[:200]}" if s.output else "")
            table.add_row(s.phase, f"{s.id}\n{s.name}", s.will_run, checked, rendered + notes)
        self.query_one("#plan-body", Static).update(table)
        status.update(f"plan of {self.runbook.name}: {len(steps)} steps · esc back")
