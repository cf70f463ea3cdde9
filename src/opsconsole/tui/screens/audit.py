"""Audit screen: the log, newest first, filterable; ``v`` verifies the chain."""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any, ClassVar

from textual import work
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.reactive import reactive
from textual.widgets import Header, Input, Static

from opsconsole.tui.screens.base import OpsScreen
from opsconsole.tui.widgets.common import local_time, outcome_text
from opsconsole.tui.widgets.key_footer import KeyFooter
from opsconsole.tui.widgets.log_table import LogTable

__all__ = ["AuditScreen", "parse_filter"]

PAGE = 200  # events read at a time: the first screenful and well beyond
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
    """The log is loaded a page at a time (more as the cursor or the view nears the end)
    and followed from there: each change adds only the new events on top. A new filter
    loads its first page again; nothing else re-reads the log."""

    TITLE = "Audit"
    AUTO_FOCUS = "#audit-table"
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("v", "verify", "Verify"),
        Binding("r", "reload", "Reload"),
    ]

    filter_text: reactive[str] = reactive("", init=False)

    def __init__(self) -> None:
        super().__init__()
        self.rows: list[dict[str, Any]] = []  # shown order, newest first
        self.verify_worker: Any = None
        self.loads = 0  # full loads (first page of a filter); tests count them
        self._seen = 0  # newest seq of the whole log when last looked (filter or not)
        self._exhausted = False  # no older event matches the filter
        self._catching_up = False
        self._filter_error = False

    def compose(self) -> ComposeResult:
        yield Header()
        yield Input(
            placeholder="/ filter: action:runbook. actor:NAME target:X since:2h via:tui, or words",
            classes="filter",
            id="audit-filter",
        )
        yield Static("", id="verify-result", classes="status-line")
        yield LogTable(id="audit-table")
        yield Static("", id="audit-details", classes="details")
        yield KeyFooter()

    def on_mount(self) -> None:
        table = self.query_one(LogTable)
        # Outcome before the long columns: at 80 columns the right-most ones are cut.
        for col in ("seq", "time", "outcome", "actor", "action", "target", "via"):
            table.add_column(col, key=col)
        table.focus()
        self.app.change_listeners.append(self._changed)  # type: ignore[attr-defined]
        # The screen is drawn first, the log read right after (no read before first paint).
        self.call_after_refresh(self.reload)

    def on_unmount(self) -> None:
        listeners = self.app.change_listeners  # type: ignore[attr-defined]
        if self._changed in listeners:
            listeners.remove(self._changed)

    def _changed(self, changes: list[Any]) -> None:
        """New events in the store: add the ones that match on top (shown or not, so a
        screen key never waits for a catch-up)."""
        if not self.loads or self._catching_up:
            return
        self._catching_up = True
        self.call_later(self._catch_up)

    def _catch_up(self) -> None:
        self._catching_up = False
        spec = self._filter()
        if spec is None:
            return
        newest = self._newest_seq()
        batch = self._query(spec, after_seq=self._seen)
        if len(batch) >= PAGE:  # a flood (an import, a long absence): read it afresh
            self.reload()
            return
        self._seen = max(self._seen, newest, *(r["seq"] for r in batch))
        fresh = [r for r in batch if _keep(r, spec)]
        if not fresh:
            return
        self.rows = fresh + self.rows
        self.query_one(LogTable).prepend([self._cells(r) for r in fresh])
        self._show_details(self.query_one(LogTable).cursor_row)

    def action_reload(self) -> None:
        self.reload()

    def on_input_changed(self, event: Input.Changed) -> None:
        if event.input.id == "audit-filter":
            self.filter_text = event.value

    def watch_filter_text(self) -> None:
        self.reload()

    def reload(self) -> None:
        """The first page of what the filter matches, newest first."""
        spec = self._filter()
        if spec is None:
            return
        self._seen = self._newest_seq()
        self._exhausted = False
        rows = self._select(spec, before_seq=self._seen + 1)
        self.rows = rows
        self.loads += 1
        table = self.query_one(LogTable)
        table.replace([self._cells(r) for r in rows])
        self._show_details(table.cursor_row if rows else 0)

    def on_log_table_near_end(self, message: LogTable.NearEnd) -> None:
        """The next (older) page, once the person reaches the last loaded rows."""
        if self._exhausted or not self.rows or not self.query_one(LogTable).near_end():
            return
        spec = self._filter()
        if spec is None:
            return
        older = self._select(spec, before_seq=self.rows[-1]["seq"])
        if not older:
            return
        self.rows.extend(older)
        self.query_one(LogTable).append([self._cells(r) for r in older])

    # --- reading the log ----------------------------------------------------------------

    def _filter(self) -> dict[str, Any] | None:
        """The filter as query arguments (plus ``words`` and ``via``); None if invalid."""
        from opsconsole.timeutil import parse_when

        fields, words = parse_filter(self.filter_text)
        status = self.query_one("#verify-result", Static)
        try:
            since = parse_when(fields["since"]) if "since" in fields else None
            until = parse_when(fields["until"]) if "until" in fields else None
        except ValueError as exc:
            status.update(f"filter: {exc}")
            self._filter_error = True
            return None
        if self._filter_error:
            status.update("")
            self._filter_error = False
        return {
            "since": since,
            "until": until,
            "actor": fields.get("actor"),
            "action": fields.get("action"),
            "target": fields.get("target"),
            "via": fields.get("via"),
            "words": words,
        }

    def _select(self, spec: dict[str, Any], *, before_seq: int) -> list[dict[str, Any]]:
        """A page of matching events older than ``before_seq``, newest first. Words and
        ``via`` are matched here, so the log is read on until the page is full."""
        found: list[dict[str, Any]] = []
        while len(found) < PAGE:
            batch = self._query(spec, before_seq=before_seq)
            found += [r for r in batch if _keep(r, spec)]
            if len(batch) < PAGE:
                self._exhausted = True
                break
            before_seq = batch[-1]["seq"]
        return found

    def _query(
        self, spec: dict[str, Any], *, after_seq: int | None = None, before_seq: int | None = None
    ) -> list[dict[str, Any]]:
        from opsconsole.audit import query

        args = {k: v for k, v in spec.items() if k not in ("via", "words")}
        return query(
            self.ctx.db,
            **args,
            limit=PAGE,
            newest_first=True,
            after_seq=after_seq,
            before_seq=before_seq,
        )

    def _newest_seq(self) -> int:
        from opsconsole.audit import query

        newest = query(self.ctx.db, limit=1, newest_first=True)
        return int(newest[0]["seq"]) if newest else 0

    def _cells(self, r: dict[str, Any]) -> tuple[int, tuple[Any, ...]]:
        return r["seq"], (
            str(r["seq"]),
            local_time(r["ts"], now=self.ctx.clock()),
            outcome_text(r["outcome"]),
            r["actor"],
            r["action"],
            r["target"],
            r["interface"],
        )

    def selected_id(self) -> str | None:
        """The highlighted event's target (a run, an incident...), else its seq."""
        index = self.query_one(LogTable).cursor_row
        if not self.rows or index >= len(self.rows):
            return None
        row = self.rows[index]
        return row["target"] or str(row["seq"])

    def on_log_table_highlighted(self, event: LogTable.Highlighted) -> None:
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
        # The audit.verify event just recorded comes back through the change feed.


def _keep(row: dict[str, Any], spec: dict[str, Any]) -> bool:
    if spec["via"] and row["interface"] != spec["via"]:
        return False
    words = spec["words"]
    return not words or all(w in _haystack(row) for w in words)


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
