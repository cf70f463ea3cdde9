"""One incident, for its commander: tasks by phase, clocks, roles, timeline, updates."""

from __future__ import annotations

from datetime import datetime
from typing import Any, ClassVar

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.widgets import DataTable, Header, Static

from opsconsole.tui.incident_feed import incident_service
from opsconsole.tui.screens.base import OpsScreen
from opsconsole.tui.screens.modals import AskModal, PickModal
from opsconsole.tui.widgets.common import countdown, local_time
from opsconsole.tui.widgets.key_footer import KeyFooter

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
            with VerticalScroll(id="inc-right"):
                yield Static("", id="inc-clocks")
                yield Static("", id="inc-roles")
        with VerticalScroll(id="inc-timeline-box"):
            yield Static("", id="inc-timeline")
        yield KeyFooter()

    def on_mount(self) -> None:
        self.query_one("#task-table", DataTable).add_columns("", "owner", "task", "phase")
        self.sub_title = self.incident_id
        self.reload()
        self.set_interval(1.0, self._draw_clocks)
        # Someone may change the incident from another terminal: the store's change
        # counter tells the app within a second (opsconsole.changes).
        self.app.change_listeners.append(self._changed)  # type: ignore[attr-defined]

    def on_unmount(self) -> None:
        listeners = self.app.change_listeners  # type: ignore[attr-defined]
        if self._changed in listeners:
            listeners.remove(self._changed)

    def _changed(self, changes: list[Any]) -> None:
        if any(c.target == self.incident_id for c in changes):
            self.reload()

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
                task.owner_role,  # before the long title: kept at 80 columns
                task.title + run,
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
        """Each clock on its own lines: its name first and whole (it wraps, never cut to
        a column of one character), then the time left and the citation."""
        if self.view is None:
            return
        now = self.now or self.ctx.clock()
        text = Text("Deadlines\n", style="bold")
        for d in self.view.deadlines:
            text.append(f"{d.deadline.jurisdiction} {d.deadline.title}\n", style="bold")
            text.append("  ")
            if d.due is not None and d.state in ("running", "overdue"):
                text.append(countdown(d.due, now))
            elif d.state == "waiting":
                text.append(f"waits for {d.deadline.anchor}", style="dim")
            else:
                text.append(d.text, style="dim")
            # The citation when there is room; the name and time left always.
            wide = self.size.width >= 120
            text.append(f" · {d.deadline.citation}\n" if wide else "\n", style="dim")
        if self.view.update_due is not None:
            text.append("next status update ", style="bold")
            text.append(countdown(self.view.update_due, now))
            text.append("\n")
        if not self.view.deadlines and self.view.update_due is None:
            text.append("none\n", style="dim")
        self.query_one("#inc-clocks", Static).update(text)

    def _draw_roles(self) -> None:
        roles = self.view.incident.roles
        text = Text("Roles\n", style="bold")
        for role, who in roles.items():
            text.append(f"{role}: {who}\n")
        if not roles:
            text.append("none assigned\n", style="dim")
        self.query_one("#inc-roles", Static).update(text)

    def _draw_timeline(self) -> None:
        """The whole timeline, newest last, scrolled to the end (tab to it to scroll)."""
        entries = self.svc.timeline(self.incident_id)
        text = Text(f"Timeline ({len(entries)} entries, newest last)\n", style="bold")
        for e in entries:
            local = f" ({e.local:%H:%M %Z})" if e.local else ""
            text.append(f"{local_time(e.ts, now=self.ctx.clock())}{local} ", style="dim")
            text.append(f"{e.actor}: {e.summary}\n")
        text.rstrip()
        self.query_one("#inc-timeline", Static).update(text)
        box = self.query_one("#inc-timeline-box", VerticalScroll)
        self.call_after_refresh(box.scroll_end, animate=False)

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

    def _pick(
        self,
        title: str,
        choices: list[tuple[str, str]],
        apply: Any,
        *,
        note: str = "",
    ) -> None:
        """A picker whose choice is applied at once; a refusal stays in the picker."""
        from opsconsole.errors import OpsError

        def on_pick(value: str) -> str | None:
            try:
                what = apply(value)
            except OpsError as exc:
                return str(exc)
            self.app.notify(what)
            self.reload()
            return None

        if not choices:
            self.app.notify(f"{title}: nothing to choose now", severity="warning")
            return
        self.app.push_screen(PickModal(title, choices, note=note, on_pick=on_pick))

    def action_set_status(self) -> None:
        c = self.svc.choices(self.incident_id)
        self._pick(
            f"Move {self.incident_id} from {self.view.incident.status} to",
            [(st, "") for st in c.statuses],
            lambda st: (self.svc.set_status(self.incident_id, st), f"status {st}")[1],
        )

    def action_decide(self) -> None:
        c = self.svc.choices(self.incident_id)
        self._pick(
            "Record a decision (starts the clocks anchored on it)",
            [(k, v) for k, v in c.decisions.items() if k not in c.decided],
            lambda d: (self.svc.decide(self.incident_id, d), f"decided {d}")[1],
            note="decided already: " + (", ".join(c.decided) or "none"),
        )

    def action_assign_role(self) -> None:
        from opsconsole.errors import OpsError

        c = self.svc.choices(self.incident_id)
        current = self.view.incident.roles

        def person(role: object) -> None:
            if not isinstance(role, str):
                return

            def check(name: str) -> str | None:
                name = name.strip()
                if not name or " " in name:
                    return "one account name, e.g. ana"
                try:
                    self.svc.assign(self.incident_id, role, name)
                except OpsError as exc:
                    return str(exc)
                return None

            def done(name: object) -> None:
                if isinstance(name, str):
                    self.app.notify(f"{role}: {name.strip()}")
                    self.reload()

            self.app.push_screen(
                AskModal(
                    f"Who takes {role}? ({c.roles[role]})",
                    default=current.get(role),
                    title="Assign",
                    validate=check,
                ),
                callback=done,
            )

        self.app.push_screen(
            PickModal(
                "Assign a role",
                [(r, f"{current.get(r, '-')} · {d}") for r, d in c.roles.items()],
            ),
            callback=person,
        )

    def action_export_report(self) -> None:
        """Write the report under the state directory (never the current directory) and
        record it in the audit log, as ``opsconsole incident report --out`` does."""
        from pathlib import Path

        from opsconsole.errors import OpsError
        from opsconsole.paths import state_dir

        location = self.ctx.db_path
        # Beside a SQLite file; on a shared PostgreSQL store, this account's state directory.
        directory = (location.parent if isinstance(location, Path) else state_dir()) / "reports"
        path = directory / f"{self.incident_id}-report.md"
        try:
            text = self.svc.report(self.incident_id)
            self.ctx.record("incident.report", self.incident_id, {"out": str(path)})
            directory.mkdir(parents=True, exist_ok=True)
            path.write_text(text, encoding="utf-8")
        except (OpsError, OSError) as exc:
            self.app.notify(f"report not written: {exc}", severity="error", timeout=10)
            return
        self.app.notify(f"report written to {path}", timeout=10)
        self.reload()

    def selected_id(self) -> str | None:
        return self.incident_id

    def action_launch_task_runbook(self) -> None:
        from opsconsole.errors import OpsError
        from opsconsole.incidents.runlink import render_params
        from opsconsole.tui.run_control import offer_task_runbook

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
