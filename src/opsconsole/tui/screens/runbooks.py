"""Runbooks screen: the runbooks found, their steps, recent runs; run, plan, resume.

The runbook files are read once (``g`` re-reads them) and recent runs every 2 s; the
``/`` filter works on what is in memory, so typing in it never waits for the disk.
"""

from __future__ import annotations

from typing import Any, ClassVar

from rich.table import Table
from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, Vertical
from textual.widgets import DataTable, Header, Input, Label, Static

from opsconsole.tui.screens.base import OpsScreen
from opsconsole.tui.widgets.common import local_time, state_text
from opsconsole.tui.widgets.key_footer import KeyFooter

__all__ = ["RunbooksScreen"]


class RunbooksScreen(OpsScreen):
    TITLE = "Runbooks"
    AUTO_FOCUS = "#rb-table"
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("r", "launch_runbook", "Run"),
        Binding("p", "plan", "Plan"),
        Binding("u", "resume_run", "Resume"),
        Binding("a", "approve_run", "Approve"),
        Binding("o", "open_run", "Open run"),
        Binding("tab", "switch_table", "Runbooks/Runs", show=False),
        Binding("g", "reread", "Re-read", show=False),
    ]

    def __init__(self) -> None:
        super().__init__()
        self.books: list[Any] = []
        self.runs: list[dict[str, Any]] = []
        self.all_books: list[Any] | None = None  # read once; ``g`` reloads
        self.all_runs: list[dict[str, Any]] = []
        self._details: dict[tuple[str, int], Any] = {}
        self._loaded = False

    def compose(self) -> ComposeResult:
        yield Header()
        yield Input(placeholder="/ filter runbooks and runs", classes="filter", id="rb-filter")
        with Horizontal(id="rb-main"):
            with Vertical(id="rb-left"):
                yield Label("Runbooks", classes="section")
                yield DataTable(id="rb-table", cursor_type="row")
                yield Label("Recent runs (o opens, u resumes)", classes="section")
                yield DataTable(id="run-table", cursor_type="row")
            yield Static("", id="rb-detail")
        yield KeyFooter()

    def on_mount(self) -> None:
        books = self.query_one("#rb-table", DataTable)
        books.add_columns("name", "description")
        runs = self.query_one("#run-table", DataTable)
        # State first: at 80 columns the right-most columns are the ones cut.
        runs.add_columns("state", "run", "runbook", "by", "started")
        # Runs started, finished or approved in other consoles show within a second.
        self.app.change_listeners.append(self._store_changed)  # type: ignore[attr-defined]
        books.focus()
        # Drawn first, filled right after: reading the runbook files and the runs never
        # holds up the screen key.
        self.call_after_refresh(self._first_load)

    def _first_load(self) -> None:
        if not self._loaded:
            self._loaded = True
            self.reload_runs()
            self.reload()
            self.set_interval(2.0, self.reload_runs)

    def on_unmount(self) -> None:
        listeners = self.app.change_listeners  # type: ignore[attr-defined]
        if self._store_changed in listeners:
            listeners.remove(self._store_changed)

    def _store_changed(self, changes: list[Any]) -> None:
        if self.is_current and any(c.kind == "runbook" for c in changes):
            self.reload_runs()  # (a hidden screen reloads when it comes back)

    def on_screen_resume(self) -> None:
        self.call_after_refresh(self.reload_runs)

    # --- data ----------------------------------------------------------------------

    def action_reread(self) -> None:
        self.all_books = None
        self.reload()

    def reload(self) -> None:
        from opsconsole.runbooks import list_runbooks

        if self.all_books is None:
            self.all_books = list(list_runbooks(self.ctx.config))
        text = self.query_one("#rb-filter", Input).value.lower()
        books = [b for b in self.all_books if text in f"{b.name} {b.description}".lower()]
        if [b.name for b in books] != [b.name for b in self.books] or not books:
            self.books = books
            table = self.query_one("#rb-table", DataTable)
            table.clear()
            for b in self.books:
                desc = f"✖ invalid: {b.error}" if getattr(b, "error", None) else b.description
                table.add_row(b.name, " ".join(str(desc).split()), key=b.name)
        self._filter_runs()
        self._detail()

    def reload_runs(self) -> None:
        from opsconsole.runbooks.state import list_runs

        self.all_runs = list_runs(self.ctx.db, limit=100)
        self._filter_runs()

    def _filter_runs(self) -> None:
        text = self.query_one("#rb-filter", Input).value.lower()
        rows = [
            r
            for r in self.all_runs
            if text in f"{r['id']} {r['runbook']} {r['status']} {r['actor']}".lower()
        ]
        table = self.query_one("#run-table", DataTable)
        keep = table.cursor_row
        if [r["id"] + r["status"] for r in rows] == [r["id"] + r["status"] for r in self.runs]:
            return
        self.runs = rows
        table.clear()
        for r in rows:
            table.add_row(
                state_text(r["status"]),
                r["id"],
                r["runbook"],
                r["actor"],
                local_time(r["started_at"], now=self.ctx.clock()),
                key=r["id"],
            )
        if rows:
            table.move_cursor(row=min(keep, len(rows) - 1))

    def on_input_changed(self, event: Input.Changed) -> None:
        if event.input.id == "rb-filter":
            self.reload()

    def on_data_table_row_highlighted(self, event: DataTable.RowHighlighted) -> None:
        self._detail()

    def on_data_table_row_selected(self, event: DataTable.RowSelected) -> None:
        if event.data_table.id == "run-table":
            self.action_open_run()
        elif not self.ctx.read_only:
            self.action_launch_runbook()
        else:
            self.action_plan()

    def selected_book(self) -> Any | None:
        self._first_load()  # a key typed ahead of the first load acts on the real list
        table = self.query_one("#rb-table", DataTable)
        if not self.books or table.cursor_row >= len(self.books):
            return None
        return self.books[table.cursor_row]

    def selected_id(self) -> str | None:
        """The run id on the runs list, the runbook's name on the runbooks list."""
        if self.focused is not None and self.focused.id == "run-table":
            run = self.selected_run()
            return str(run["id"]) if run else None
        book = self.selected_book()
        return book.name if book is not None else None

    def selected_run(self) -> dict[str, Any] | None:
        self._first_load()
        table = self.query_one("#run-table", DataTable)
        if not self.runs or table.cursor_row >= len(self.runs):
            return None
        return self.runs[table.cursor_row]

    def _detail(self) -> None:
        detail = self.query_one("#rb-detail", Static)
        runs_focused = self.focused is not None and self.focused.id == "run-table"
        if runs_focused and self.selected_run():
            r = self.selected_run()
            assert r is not None
            text = Text.assemble(
                (f"run {r['id']}\n", "bold"),
                state_text(r["status"]),
                f"\n{r['runbook']} by {r['actor']}\nstarted {r['started_at']}\n",
            )
            if r.get("error"):
                text.append(f"{r['error']}\n", style="red")
            if r.get("measured"):
                text.append(", ".join(f"{k} {v:.1f}" for k, v in r["measured"].items()))
            detail.update(text)
            return
        book = self.selected_book()
        if book is None:
            detail.update("no runbooks found")
            return
        detail.update(self._book_detail(book))

    def _book_detail(self, book: Any) -> Any:
        # Parsed once per file version: moving the cursor or filtering never re-reads it.
        try:
            key = (str(book.path), book.path.stat().st_mtime_ns)
        except OSError:
            key = (str(book.path), 0)
        cached = self._details.get(key)
        if cached is None:
            cached = self._details[key] = _render_book(book)
        return cached

    # --- actions -------------------------------------------------------------------

    def action_switch_table(self) -> None:
        books, runs = self.query_one("#rb-table"), self.query_one("#run-table")
        (runs if self.focused is books else books).focus()
        self._detail()

    def action_launch_runbook(self) -> None:
        from opsconsole.tui.run_control import offer_launch

        book = self.selected_book()
        if book is not None:
            offer_launch(self.app, str(book.path), {})  # type: ignore[arg-type]

    def action_plan(self) -> None:
        from opsconsole.errors import OpsError
        from opsconsole.runbooks import load_runbook
        from opsconsole.tui.screens.launch import LaunchModal
        from opsconsole.tui.screens.plan import PlanScreen

        book = self.selected_book()
        if book is None:
            return
        try:
            rb = load_runbook(book.path)
        except OpsError as exc:
            self.app.notify(str(exc), severity="error", timeout=10)
            return

        def go(answer: object) -> None:
            if isinstance(answer, tuple):
                self.app.push_screen(PlanScreen(rb, answer[1]))

        regions = (
            [(rid, r.name) for rid, r in self.ctx.config.inventory.regions.items()]
            if self.ctx.config is not None
            else []
        )
        self.app.push_screen(
            LaunchModal(rb, {}, note="nothing changes: a dry run", regions=regions, mode="plan"),
            callback=go,
        )

    def action_open_run(self) -> None:
        from opsconsole.runbooks.state import get_steps
        from opsconsole.tui.run_control import open_run
        from opsconsole.tui.runs import RunHandle

        r = self.selected_run()
        if r is None:
            return
        handle = self.app.runs.find(r["id"])  # type: ignore[attr-defined]
        if handle is None:
            handle = RunHandle(
                runbook=r["runbook"],
                params={},
                run_id=r["id"],
                status=r["status"],
                error=r.get("error"),
                measured=r.get("measured") or {},
            )
            rows = get_steps(self.ctx.db, r["id"])
            handle.load_steps(rows)
            for row in rows:
                if row.output:
                    handle.add_log(f"── {row.step_id} ({row.status})")
                    for line in row.output.splitlines()[-50:]:
                        handle.add_log(f"  {line}")
        open_run(self.app, handle)  # type: ignore[arg-type]

    def action_resume_run(self) -> None:
        from opsconsole.tui.run_control import resume_run

        r = self.selected_run()
        if r is None:
            self.app.notify("no run selected: tab moves to the runs list", severity="warning")
            return
        if r["status"] not in ("interrupted", "waiting_approval", "running"):
            self.app.notify(
                f"run {r['id']} is {r['status']}: nothing to resume", severity="warning"
            )
            return
        resume_run(self.app, r["id"])  # type: ignore[arg-type]

    def action_approve_run(self) -> None:
        from opsconsole.tui.run_control import approve_run

        r = self.selected_run()
        if r is None or r["status"] != "waiting_approval":
            self.app.notify("select a run that waits for approval", severity="warning")
            return
        approve_run(self.app, r["id"])  # type: ignore[arg-type]


def _render_book(info: Any) -> Any:
    from opsconsole.errors import OpsError
    from opsconsole.runbooks import load_runbook

    try:
        rb = load_runbook(info.path)
    except OpsError as exc:
        return Text(f"✖ {info.path}:\n{exc}", style="red")
    table = Table(box=None, show_header=True, header_style="bold", pad_edge=False, expand=True)
    table.add_column("#", width=3)
    table.add_column("step")
    table.add_column("action", width=10)
    for i, s in enumerate(rb.steps, 1):
        table.add_row(str(i), f"{s.id}: {s.title}", s.action)
    for i, s in enumerate(rb.rollback, 1):
        table.add_row(f"R{i}", f"{s.id}: {s.title}", s.action)
    params = ", ".join(
        f"{n}{'*' if p.required else ''}={p.default!r}"
        if p.default is not None
        else f"{n}{'*' if p.required else ''}"
        for n, p in rb.params.items()
    )
    from rich.console import Group

    head = Text.assemble(
        (rb.name, "bold"),
        f"\n{rb.description.strip()}\n",
        ("params: ", "bold"),
        params or "none",
        "\n",
    )
    if rb.lock:
        head.append(f"lock: {rb.lock}\n")
    return Group(head, table)
