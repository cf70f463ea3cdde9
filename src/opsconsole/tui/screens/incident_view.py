"""One incident, for its commander: tasks by phase, clocks, roles, timeline, updates."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import Any, ClassVar

from rich.table import Table
from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, Vertical
from textual.widgets import DataTable, Footer, Header, Static

from opsconsole.timeutil import utcnow
from opsconsole.tui.incident_feed import incident_service
from opsconsole.tui.screens.base import OpsScreen
from opsconsole.tui.screens.modals import AskModal
from opsconsole.tui.widgets.common import countdown, local_time

__all__ = ["IncidentScreen"]

TASK_MARK = {
    "pending": "[ ]",
    "in_progress": "[▶]",
    "done": "[✔]",
    "skipped": "[↷]",
    "waived": "[~]",
}


class IncidentScreen(OpsScreen):
    TITLE = "Incident"
    AUTO_FOCUS = "#task-table"
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("space,d", "task_done", "Done"),
        Binding("t", "task_start", "Start", show=False),
        Binding("s", "task_skip", "Skip", show=False),
        Binding("w", "task_waive", "Waive", show=False),
        Binding("l", "launch_task_runbook", "Run task's runbook"),
        Binding("n", "add_note", "Note"),
        Binding("u", "add_update", "Update"),
        Binding("m", "set_status", "Status"),
        Binding("D", "decide", "Decide", show=False),
        Binding("A", "assign_role", "Assign", show=False),
        Binding("e", "export_report", "Report"),
    ]

    def __init__(self, incident_id: str) -> None:
        super().__init__()
        self.incident_id = incident_id
        self.view: Any = None
        self.now: datetime | None = None

    def compose(self) -> ComposeResult:
        yield Header()
        yield Static("", id="inc-head", classes="status-line")
        with Horizontal(id="inc-main"):
            with Vertical(id="inc-left"):
                yield DataTable(id="task-table", cursor_type="row")
                yield Static("", id="task-detail", classes="details")
            with Vertical(id="inc-right"):
                yield Static("", id="inc-clocks")
                yield Static("", id="inc-roles")
        yield Static("", id="inc-timeline")
        yield Footer()

    def on_mount(self) -> None:
        self.query_one("#task-table", DataTable).add_columns("", "task", "owner", "phase")
        self.sub_title = self.incident_id
        self.reload()
        self.set_interval(1.0, self._draw_clocks)
        # Someone may change the incident from another terminal: pick it up.
        self.set_interval(5.0, self.reload)

    @property
    def svc(self) -> Any:
        return incident_service(self.ctx)

    def reload(self) -> None:
        self.view = self.svc.view(self.incident_id)
        inc = self.view.incident
        table = self.query_one("#task-table", DataTable)
        keep = table.cursor_row
        table.clear()
        for task in inc.tasks:
            run = f" ▶{task.runbook}" if task.runbook else ""
            table.add_row(
                TASK_MARK.get(task.status, task.status),
                task.title + run,
                task.owner_role,
                task.phase,
                key=task.id,
            )
        if inc.tasks:
            table.move_cursor(row=min(keep, len(inc.tasks) - 1))
        self._draw_head()
        self._draw_clocks()
        self._draw_roles()
        self._draw_timeline()
        self._draw_task()

    def _draw_head(self) -> None:
        inc = self.view.incident
        done = sum(1 for t in inc.tasks if not t.open)
        text = Text.assemble(
            (f"{inc.id} {inc.severity} ", "bold red" if inc.severity == "SEV1" else "bold"),
            (f"{inc.status.upper()} ", "bold"),
            inc.title,
            f" · {inc.category} · {','.join(inc.regions) or 'no region'}"
            f" · commander {inc.commander or '-'} · tasks {done}/{len(inc.tasks)}",
        )
        self.query_one("#inc-head", Static).update(text)

    def _draw_clocks(self) -> None:
        if self.view is None:
            return
        now = self.now or utcnow()
        table = Table(
            box=None,
            show_header=True,
            header_style="bold",
            pad_edge=False,
            expand=True,
            title="Deadlines",
            title_justify="left",
            title_style="bold",
        )
        table.add_column("clock", overflow="fold")
        table.add_column("left", no_wrap=True)
        for d in self.view.deadlines:
            if d.due is not None and d.state in ("running", "overdue"):
                left: Any = countdown(d.due, now)
            else:
                left = Text(
                    d.text if d.state != "waiting" else f"waits: {d.deadline.anchor}", style="dim"
                )
            table.add_row(
                f"{d.deadline.jurisdiction} {d.deadline.title}\n[{d.deadline.citation}]", left
            )
        if self.view.update_due is not None:
            table.add_row("next status update", countdown(self.view.update_due, now))
        self.query_one("#inc-clocks", Static).update(table)

    def _draw_roles(self) -> None:
        roles = self.view.incident.roles
        text = Text("Roles\n", style="bold")
        for role, who in roles.items():
            text.append(f"{role}: {who}\n")
        if not roles:
            text.append("none assigned\n", style="dim")
        self.query_one("#inc-roles", Static).update(text)

    def _draw_timeline(self) -> None:
        entries = self.svc.timeline(self.incident_id)[-6:]
        text = Text("Timeline (newest last)\n", style="bold")
        for e in entries:
            local = f" ({e.local:%H:%M %Z})" if e.local else ""
            text.append(f"{local_time(e.ts)}{local} {e.actor}: {e.summary}\n")
        self.query_one("#inc-timeline", Static).update(text)

    def selected_task(self) -> Any | None:
        tasks = self.view.incident.tasks if self.view else []
        row = self.query_one("#task-table", DataTable).cursor_row
        return tasks[row] if tasks and row < len(tasks) else None

    def _draw_task(self) -> None:
        task = self.selected_task()
        detail = self.query_one("#task-detail", Static)
        if task is None:
            detail.update("")
            return
        extra = f" · run {task.run_id} {task.run_status}" if task.run_id else ""
        note = f" · note: {task.note}" if task.note else ""
        detail.update(Text(f"{task.id}: {task.instructions.strip()}{extra}{note}"))

    def on_data_table_row_highlighted(self, event: DataTable.RowHighlighted) -> None:
        if self.view is not None:
            self._draw_task()

    # --- actions (each calls the same service method as `opsconsole incident ...`) ------

    def _do(self, what: str, fn: Any) -> None:
        from opsconsole.errors import OpsError

        try:
            fn()
        except OpsError as exc:
            self.app.notify(str(exc), severity="error", timeout=10)
            return
        self.app.notify(what)
        self.reload()

    def _task_action(self, action: str, note: str | None = None) -> None:
        task = self.selected_task()
        if task is not None:
            self._do(
                f"{task.id}: {action}",
                lambda: self.svc.task(self.incident_id, task.id, action, note=note),
            )

    def action_task_done(self) -> None:
        self._task_action("done")

    def action_task_start(self) -> None:
        self._task_action("start")

    def action_task_skip(self) -> None:
        self._prompt("Why skip this task?", lambda text: self._task_action("skip", text))

    def action_task_waive(self) -> None:
        self._prompt(
            "Reason for waiving this task (required to close with it open):",
            lambda text: self._task_action("waive", text),
        )

    def _prompt(self, prompt: str, then: Any, default: str | None = None) -> None:
        def got(answer: object) -> None:
            if isinstance(answer, str) and answer.strip():
                then(answer.strip())

        self.app.push_screen(AskModal(prompt, default=default), callback=got)

    def action_add_note(self) -> None:
        self._prompt(
            "Note (start with 'action:' for an action item):",
            lambda t: self._do("note added", lambda: self.svc.note(self.incident_id, t)),
        )

    def action_add_update(self) -> None:
        self._prompt(
            "Status update (resets the update clock):",
            lambda t: self._do(
                "status update posted", lambda: self.svc.update(self.incident_id, t)
            ),
        )

    def action_set_status(self) -> None:
        from opsconsole.incidents.model import TRANSITIONS

        allowed = TRANSITIONS.get(self.view.incident.status, ())
        self._prompt(
            f"New status ({' | '.join(allowed) or 'none: closed'}):",
            lambda t: self._do(f"status {t}", lambda: self.svc.set_status(self.incident_id, t)),
            default=allowed[0] if allowed else None,
        )

    def action_decide(self) -> None:
        self._prompt(
            "Decision (e.g. notifiable; starts the clocks anchored on it):",
            lambda t: self._do(f"decided {t}", lambda: self.svc.decide(self.incident_id, t)),
        )

    def action_assign_role(self) -> None:
        def assign(text: str) -> None:
            role, _, user = text.partition(" ")
            self._do(
                f"{role}: {user}", lambda: self.svc.assign(self.incident_id, role, user.strip())
            )

        self._prompt(
            "Role and person, e.g. 'legal ana' (roles: commander deputy scribe "
            "operations communications legal customer-service):",
            assign,
        )

    def action_export_report(self) -> None:
        default = str(Path.cwd() / f"{self.incident_id}-report.md")

        def write(path: str) -> None:
            def go() -> None:
                text = self.svc.report(self.incident_id)
                Path(path).expanduser().write_text(text, encoding="utf-8")

            self._do(f"report written to {path}", go)

        self._prompt("Write the post-incident report (Markdown) to:", write, default=default)

    def action_launch_task_runbook(self) -> None:
        from opsconsole.errors import OpsError
        from opsconsole.incidents.runlink import render_params
        from opsconsole.tui.screens.launch import offer_task_runbook

        task = self.selected_task()
        if task is None or not task.runbook:
            self.app.notify("this task has no runbook", severity="warning")
            return
        try:
            params = render_params(task, self.view.incident)
        except OpsError as exc:
            self.app.notify(str(exc), severity="error")
            return
        offer_task_runbook(self.app, self.incident_id, task, params, on_done=self.reload)  # type: ignore[arg-type]
