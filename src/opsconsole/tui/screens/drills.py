"""Drills screen: the schedule, recent history, and this year's compliance summary."""

from __future__ import annotations

from typing import Any, ClassVar

from rich.console import Group
from rich.table import Table
from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, VerticalScroll
from textual.widgets import DataTable, Header, Input, Label, Static

from opsconsole.tui.screens.base import OpsScreen
from opsconsole.tui.widgets.common import local_time
from opsconsole.tui.widgets.key_footer import KeyFooter

__all__ = ["DrillsScreen"]

RESULT = {  # symbols that match the meaning: a pass is never marked with a cross
    "passed": "✔ passed",
    "failed": "✖ FAILED",
    "missed": "✖ MISSED",
    "running": "▶ running",
    "skipped": "↷ skipped",
}


class DrillsScreen(OpsScreen):
    TITLE = "Drills"
    AUTO_FOCUS = "#drill-table"
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("r", "run_drill", "Run drill now"),
        Binding("g", "reload", "Reload"),
    ]

    def __init__(self) -> None:
        super().__init__()
        self.rows: list[dict[str, Any]] = []
        self.error: str | None = None

    def compose(self) -> ComposeResult:
        yield Header()
        yield Input(placeholder="/ filter drills and history", classes="filter", id="drill-filter")
        yield Label("Schedule", classes="section")
        yield DataTable(id="drill-table", cursor_type="row")
        with Horizontal(id="drill-bottom"):
            with VerticalScroll(id="drill-history-box"):
                yield Static("", id="drill-history")
            with VerticalScroll(id="drill-report-box"):
                yield Static("", id="drill-report")
        yield KeyFooter()

    def on_mount(self) -> None:
        # What matters first (next due, objectives, owner): at 80 columns the
        # right-most columns are the ones cut.
        self.query_one("#drill-table", DataTable).add_columns(
            "drill", "next due", "kind", "RTO/RPO", "owner", "target", "plan", "schedule"
        )
        self.reload()
        # A drill run or record from another console or the scheduler (opsconsole.changes).
        self.app.change_listeners.append(self._store_changed)  # type: ignore[attr-defined]

    def on_unmount(self) -> None:
        listeners = self.app.change_listeners  # type: ignore[attr-defined]
        if self._store_changed in listeners:
            listeners.remove(self._store_changed)

    def _store_changed(self, changes: list[Any]) -> None:
        if any(c.kind == "drill" for c in changes) and self.is_current:
            self.reload()

    def on_screen_resume(self) -> None:
        self.reload()

    def action_reload(self) -> None:
        self.reload()

    def _loaded(self) -> Any:
        from opsconsole.drills.loader import load_drills

        assert self.ctx.config is not None
        return load_drills(self.ctx.config)

    def reload(self) -> None:
        from opsconsole.errors import OpsError

        table = self.query_one("#drill-table", DataTable)
        table.clear()
        if self.ctx.config is None:
            self.query_one("#drill-history", Static).update("drills need a config (--config DIR)")
            return
        try:
            from opsconsole.drills.loader import overview

            loaded = self._loaded()
            rows = overview(loaded, self.ctx.config.inventory)
        except OpsError as exc:
            self.query_one("#drill-history", Static).update(Text(f"✖ {exc}", style="red"))
            return
        text = self.query_one("#drill-filter", Input).value.lower()
        self.rows = [r for r in rows if text in f"{r['name']} {r['plan']} {r['kind']}".lower()]
        for r in self.rows:
            due = (
                local_time(r["next_due"], now=self.ctx.clock())
                if r["next_due"]
                else ("disabled" if not r["enabled"] else "-")
            )
            target = (r["target"] or "-") + (" ✖REFUSED" if r["refused"] else "")
            objectives = f"{r['rto_seconds'] or '-'}s/{r['rpo_seconds'] or '-'}s"
            table.add_row(
                r["name"],
                due,
                r["kind"],
                objectives,
                r["owner"] or "-",
                target,
                r["plan"],
                r["schedule"] or "-",
                key=r["name"],
            )
        self._history(text)
        self._report(loaded)

    def _history(self, text: str) -> None:
        from opsconsole.drills.store import history

        runs = [r for r in history(self.ctx.db) if text in f"{r.drill} {r.plan}".lower()][-15:]
        table = Table(
            box=None,
            header_style="bold",
            pad_edge=False,
            expand=True,
            title="History (newest last)",
            title_justify="left",
            title_style="bold",
        )
        for col in ("when", "drill", "result", "RTO", "RPO"):
            table.add_column(col, overflow="fold")
        for r in runs:
            when = r.started_at or r.scheduled_for
            rto = (
                "-"
                if r.rto_seconds is None
                else (f"{r.rto_seconds:.0f}s {'✔' if r.rto_met else '✖'}")
            )
            rpo = (
                "-"
                if r.rpo_seconds is None
                else (f"{r.rpo_seconds:.0f}s {'✔' if r.rpo_met else '✖'}")
            )
            table.add_row(
                local_time(when, now=self.ctx.clock()) if when else "-",
                r.drill,
                RESULT.get(r.status, r.status),
                rto,
                rpo,
            )
        if not runs:
            table.add_row("-", "no drills recorded yet", "", "", "")
        self.query_one("#drill-history", Static).update(table)

    def _report(self, loaded: Any) -> None:
        from opsconsole.drills.report import build_report

        year = self.ctx.clock().year
        parts: list[Any] = [Text(f"Compliance {year}", style="bold")]
        for rep in build_report(self.ctx.db, loaded.file, year=year):
            live = rep.held.get("live", 0)
            mark = "✔ KEPT" if rep.kept else "✖ NOT KEPT"
            parts.append(
                Text.assemble(
                    (f"{rep.plan}: {mark}\n", "bold green" if rep.kept else "bold red"),
                    f"  drills {sum(rep.held.values())}/{rep.min_drills} "
                    f"{'✔' if rep.drills_ok else '✖'} · live {live}/{rep.min_live} "
                    f"{'✔' if rep.live_ok else '✖'} · plan review "
                    f"{'✔' if rep.review_ok else '✖ overdue or missing'}\n",
                    f"  open follow-ups {len(rep.open_followups)} · problems {len(rep.problems)}",
                )
            )
        if len(parts) == 1:
            parts.append(Text("no drill plans defined", style="dim"))
        self.query_one("#drill-report", Static).update(Group(*parts))

    def on_input_changed(self, event: Input.Changed) -> None:
        if event.input.id == "drill-filter":
            self.reload()

    def selected_id(self) -> str | None:
        table = self.query_one("#drill-table", DataTable)
        if not self.rows or table.cursor_row >= len(self.rows):
            return None
        return str(self.rows[table.cursor_row]["name"])

    def action_run_drill(self) -> None:
        """Run the selected live drill now, attended: prompts come to this console."""
        from opsconsole.drills.execute import DrillContext, run_drill
        from opsconsole.tui.run_control import new_operator, open_run
        from opsconsole.tui.runs import RunHandle
        from opsconsole.tui.screens.modals import ConfirmModal

        table = self.query_one("#drill-table", DataTable)
        if not self.rows or table.cursor_row >= len(self.rows):
            return
        row = self.rows[table.cursor_row]
        if row["kind"] != "live":
            self.app.notify(
                "tabletop drills are recorded with `opsconsole drill record`", severity="warning"
            )
            return

        def go(yes: object) -> None:
            if not yes:
                return
            loaded = self._loaded()
            drill = loaded.get(row["name"])
            handle = RunHandle(runbook=drill.runbook, params={})
            operator = new_operator(self.app, handle)  # type: ignore[arg-type]
            ctx = DrillContext(
                self.ctx.db,
                self.ctx.audit,
                self.ctx.config,
                loaded.file,
                on_event=self.app.runs.on_event,
            )  # type: ignore[attr-defined]

            async def work() -> Any:
                result = await run_drill(ctx, row["name"], drill, operator)
                handle.add_log(f"── drill {row['name']}: {result.status}")
                self.reload()

            self.app.runs.launch(handle, work, known_id=False)  # type: ignore[attr-defined]
            open_run(self.app, handle)  # type: ignore[arg-type]

        self.app.push_screen(
            ConfirmModal(
                f"Run live drill {row['name']} ({row['runbook']} on {row['target']}) now?",
                title="Run drill",
                destructive=True,
                yes_label="Run drill",
                no_label="Not now",
            ),
            callback=go,
        )
