"""Audit screen: the log, newest first, filterable; ``v`` verifies the chain."""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any, ClassVar

from textual import work
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.widgets import DataTable, Header, Input, Static

from opsconsole.tui.screens.base import OpsScreen
from opsconsole.tui.widgets.common import local_time, outcome_text
from opsconsole.tui.widgets.key_footer import KeyFooter

__all__ = ["AuditScreen", "parse_filter"]

LIMIT = 1000
_KEYS = ("action", "actor", "target", "since", "until", "via")


def parse_filter(text: str) -> tuple[dict[str, str], list[str]]:
    """``action:runbook. actor:ana 2h`` -> ({'action': 'runbook.', 'actor': 'ana'}, ['2h'])."""
    fields: dict[str, str] = {}
    words: list[str] = []
    for token in text.split():
        key, sep, value = token.partition(":")
        if sep and key in _KEYS and value:
            fields[key] = value
        else:
            words.append(token.lower())
    return fields, words


class AuditScreen(OpsScreen):
    TITLE = "Audit"
    AUTO_FOCUS = "#audit-table"
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("v", "verify", "Verify"),
        Binding("r", "reload", "Reload"),
    ]

    def __init__(self) -> None:
        super().__init__()
        self.rows: list[dict[str, Any]] = []
        self.verify_worker: Any = None
        self.dirty = False

    def compose(self) -> ComposeResult:
        yield Header()
        yield Input(
            placeholder="/ filter: action:runbook. actor:NAME target:X since:2h via:tui, or words",
            classes="filter",
            id="audit-filter",
        )
        yield Static("", id="verify-result", classes="status-line")
        table: DataTable[str] = DataTable(id="audit-table", cursor_type="row", zebra_stripes=True)
        yield table
        yield Static("", id="audit-details", classes="details")
        yield KeyFooter()

    def on_mount(self) -> None:
        table = self.query_one(DataTable)
        # Outcome before the long columns: at 80 columns the right-most ones are cut.
        for col in ("seq", "time", "outcome", "actor", "action", "target", "via"):
            table.add_column(col, key=col)
        self.reload()
        table.focus()
        self.app.change_listeners.append(self._changed)  # type: ignore[attr-defined]

    def _changed(self, changes: list[Any]) -> None:
        if self.app.screen is self:
            self.reload()
        else:  # drawn again when the person comes back, not before
            self.dirty = True

    def on_screen_resume(self) -> None:
        # Only what changed since: an unchanged log is not re-read on every `5`.
        if self.dirty:
            self.reload()

    def action_reload(self) -> None:
        self.reload()

    def reload(self) -> None:
        from opsconsole.audit import query
        from opsconsole.timeutil import parse_when

        text = self.query_one("#audit-filter", Input).value
        fields, words = parse_filter(text)
        status = self.query_one("#verify-result", Static)
        try:
            since = parse_when(fields["since"]) if "since" in fields else None
            until = parse_when(fields["until"]) if "until" in fields else None
        except ValueError as exc:
            status.update(f"filter: {exc}")
            return
        rows = query(
            self.ctx.db,
            since=since,
            until=until,
            actor=fields.get("actor"),
            action=fields.get("action"),
            target=fields.get("target"),
            limit=LIMIT,
            newest_first=True,
        )
        if "via" in fields:
            rows = [r for r in rows if r["interface"] == fields["via"]]
        if words:
            rows = [r for r in rows if all(w in _haystack(r) for w in words)]
        self.rows = rows
        self.dirty = False
        table = self.query_one(DataTable)
        table.clear()
        keep = table.cursor_row
        for r in rows:
            table.add_row(
                str(r["seq"]),
                local_time(r["ts"], now=self.ctx.clock()),
                outcome_text(r["outcome"]),
                r["actor"],
                r["action"],
                r["target"],
                r["interface"],
                key=str(r["seq"]),
            )
        if rows:
            table.move_cursor(row=min(keep, len(rows) - 1))
        self._show_details(table.cursor_row if rows else 0)

    def on_input_changed(self, event: Input.Changed) -> None:
        if event.input.id == "audit-filter":
            self.reload()

    def on_data_table_row_highlighted(self, event: DataTable.RowHighlighted) -> None:
        self._show_details(event.cursor_row)

    def _show_details(self, index: int) -> None:
        details = self.query_one("#audit-details", Static)
        if not self.rows or index >= len(self.rows):
            details.update("no events match" if not self.rows else "")
            return
        r = self.rows[index]
        details.update(
            f"#{r['seq']} {r['ts']} {r['actor']} via {r['interface']}: {r['action']} "
            f"{r['target']} -> {r['outcome']}\n"
            + json.dumps(r["details"], ensure_ascii=False, sort_keys=True)
        )

    def action_verify(self) -> None:
        self.query_one("#verify-result", Static).update("verifying the hash chain…")
        self.verify_worker = self._verify()

    @work(thread=True, exclusive=True, group="audit-verify")
    def _verify(self) -> None:
        from opsconsole.audit import verify
        from opsconsole.errors import OpsError
        from opsconsole.store import open_db

        try:
            # Its own connection: the walk must not share a cursor with the UI thread.
            db = open_db(self.ctx.db_path, migrate=False)
            try:
                from opsconsole.access import authorize
                from opsconsole.audit import AuditLog

                me = AuditLog(db, actor=self.ctx.actor, interface="tui", key=self.ctx.audit.key)
                authorize(me, "audit.verify")  # the policy, as for `opsconsole audit verify`
                result = verify(db, key=self.ctx.audit.key)
            finally:
                db.conn.close()
        except OpsError as exc:
            self.app.call_from_thread(self._verified, None, str(exc))
            return
        self.app.call_from_thread(self._verified, result, None)

    def _verified(self, result: Any, error: str | None) -> None:
        status = self.query_one("#verify-result", Static)
        if result is None:
            status.update(f"✖ verify failed: {error}")
            return
        problem = result.problem
        # Recorded after the walk, exactly like `opsconsole audit verify`.
        self.ctx.record(
            "audit.verify",
            "",
            {"events": result.events, "problem": problem.message if problem else None},
            "ok" if result.ok else "tampered",
        )
        at = datetime.now().strftime("%H:%M:%S")
        if result.ok:
            status.update(
                f"✔ INTACT: {result.events} events, head seq {result.head_seq} (checked {at})"
            )
            status.set_class(False, "bad")
            status.set_class(True, "good")
        else:
            status.update(f"✖ TAMPERED: {problem.kind} at seq {problem.seq}: {problem.message}")
            status.set_class(True, "bad")
            status.set_class(False, "good")
        self.reload()


def _haystack(row: dict[str, Any]) -> str:
    return " ".join(
        str(x)
        for x in (
            row["action"],
            row["target"],
            row["actor"],
            row["outcome"],
            json.dumps(row["details"], ensure_ascii=False),
        )
    ).lower()
