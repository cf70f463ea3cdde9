"""Incidents screen: open and recent incidents; ``n`` declares one (a form)."""

from __future__ import annotations

from datetime import datetime
from typing import Any, ClassVar

from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.widgets import (
    Button,
    DataTable,
    Header,
    Input,
    Label,
    Select,
    SelectionList,
    Static,
)

from opsconsole.tui.incident_feed import incident_service
from opsconsole.tui.screens.base import OpsModal, OpsScreen
from opsconsole.tui.widgets.common import countdown
from opsconsole.tui.widgets.key_footer import KeyFooter

__all__ = ["DeclareModal", "IncidentsScreen", "declare_from_form"]


class IncidentsScreen(OpsScreen):
    TITLE = "Incidents"
    AUTO_FOCUS = "#inc-table"
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("n", "declare_incident", "Declare"),
        Binding("enter", "open", "Open", show=False),
        Binding("a", "toggle_closed", "All/open"),  # c copies the id, as everywhere
    ]

    def __init__(self) -> None:
        super().__init__()
        self.rows: list[tuple[Any, Any]] = []  # (incident, nearest running deadline)
        self.show_closed = False
        self.now: datetime | None = None

    def compose(self) -> ComposeResult:
        yield Header()
        yield Input(
            placeholder="/ filter: id, title, severity, status, region",
            classes="filter",
            id="inc-filter",
        )
        yield DataTable(id="inc-table", cursor_type="row", zebra_stripes=True)
        yield Static("", id="inc-hint", classes="status-line")
        yield KeyFooter()

    def on_mount(self) -> None:
        table = self.query_one("#inc-table", DataTable)
        # What matters first (id, severity, status, time left): at 80 columns the
        # right-most columns are the ones cut.
        table.add_columns("id", "sev", "status", "left", "title", "next clock", "regions")
        self.reload()
        self.set_interval(1.0, self._tick)
        self.set_interval(5.0, self.reload)  # clocks that start or pass
        self.app.change_listeners.append(self._changed)  # type: ignore[attr-defined]

    def _changed(self, changes: list[Any]) -> None:
        if any(c.kind == "incident" for c in changes):
            self.reload()

    def on_screen_resume(self) -> None:
        self.reload()

    def reload(self) -> None:
        svc = incident_service(self.ctx)
        text = self.query_one("#inc-filter", Input).value.lower()
        rows = []
        for inc in svc.list_incidents(open_only=not self.show_closed):
            hay = f"{inc.id} {inc.title} {inc.severity} {inc.status} {' '.join(inc.regions)}"
            if text and text not in hay.lower():
                continue
            running = [
                d
                for d in svc.deadlines(inc)
                if d.due is not None and d.state in ("running", "overdue")
            ]
            rows.append((inc, min(running, key=lambda d: d.due) if running else None))
        self.rows = rows
        self._draw()

    def _draw(self) -> None:
        table = self.query_one("#inc-table", DataTable)
        keep = table.cursor_row
        table.clear()
        now = self.now or self.ctx.clock()
        for inc, nearest in self.rows:
            left = countdown(nearest.due, now) if nearest else "-"
            clock = nearest.deadline.title if nearest else "-"
            table.add_row(
                inc.id,
                inc.severity,
                inc.status,
                left,
                inc.title,
                clock,
                ",".join(inc.regions),
                key=inc.id,
            )
        if self.rows:
            table.move_cursor(row=min(keep, len(self.rows) - 1))
        hint = self.query_one("#inc-hint", Static)
        hint.update(
            "no open incidents" + ("" if self.ctx.read_only else " · n declares one")
            if not self.rows
            else f"{len(self.rows)} incident(s) · enter opens"
        )

    def _tick(self) -> None:
        if self.rows:
            self._draw()

    def on_input_changed(self, event: Input.Changed) -> None:
        if event.input.id == "inc-filter":
            self.reload()

    def on_data_table_row_selected(self, event: DataTable.RowSelected) -> None:
        self.action_open()

    def action_toggle_closed(self) -> None:
        self.show_closed = not self.show_closed
        self.reload()

    def selected_id(self) -> str | None:
        table = self.query_one("#inc-table", DataTable)
        if self.rows and table.cursor_row < len(self.rows):
            return str(self.rows[table.cursor_row][0].id)
        return None

    def action_open(self) -> None:
        from opsconsole.tui.screens.incident_view import IncidentScreen

        table = self.query_one("#inc-table", DataTable)
        if self.rows and table.cursor_row < len(self.rows):
            self.app.push_screen(IncidentScreen(self.rows[table.cursor_row][0].id))

    def action_declare_incident(self) -> None:
        def done(incident_id: object) -> None:
            self.reload()
            if isinstance(incident_id, str):
                from opsconsole.tui.screens.incident_view import IncidentScreen

                self.app.push_screen(IncidentScreen(incident_id))

        self.app.push_screen(DeclareModal(), callback=done)


def _categories(ctx: Any) -> list[str]:
    from opsconsole.incidents.playbook import playbook_dirs

    names: list[str] = []
    for d in playbook_dirs(ctx.config):
        if d.is_dir():
            names += [p.stem for p in sorted(d.glob("*.y*ml")) if p.stem not in names]
    return names or ["system-failure"]


def declare_from_form(ctx: Any, values: dict[str, str]) -> Any:
    """Declare through the incident service, exactly like ``opsconsole incident declare``."""
    from opsconsole.timeutil import parse_when

    def split(text: str) -> list[str]:
        return [x.strip() for x in text.replace(",", " ").split() if x.strip()]

    detected = values.get("detected", "").strip()
    return incident_service(ctx).declare(
        values["title"],
        severity=values["severity"],
        category=values["category"],
        regions=split(values.get("regions", "")),
        services=split(values.get("services", "")),
        detected_at=parse_when(detected) if detected else None,
    )


class DeclareModal(OpsModal):
    """The declare form; regions default to those the dashboard shows down."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape", "close", "Cancel"),
        Binding("ctrl+s", "submit", "Declare"),
    ]

    def compose(self) -> ComposeResult:
        from opsconsole.incidents.model import SEVERITIES, SEVERITY_HINT

        snap = getattr(self.app, "last_snapshot", None)
        down = {r.id for r in snap.down_regions} if snap is not None else set()
        cats = _categories(self.ctx)
        default_cat = "system-failure" if "system-failure" in cats else cats[0]
        with Vertical(classes="dialog wide"):
            yield Label("Declare an incident", classes="dialog-title")
            with VerticalScroll(classes="dialog-body"):
                yield Label("title")
                yield Input(id="f-title", compact=True, placeholder="what is happening")
                yield Label(f"severity ({SEVERITY_HINT})")
                yield Select(
                    [(f"{k}: {v[:60]}", k) for k, v in SEVERITIES.items()],
                    value="SEV1",
                    allow_blank=False,
                    id="f-severity",
                    compact=True,
                )
                yield Label("category (its playbook is attached)")
                yield Select(
                    [(c, c) for c in cats],
                    value=default_cat,
                    allow_blank=False,
                    id="f-category",
                    compact=True,
                )
                yield Label("regions (space toggles; the down ones are ticked)")
                yield SelectionList[str](
                    *[(f"{rid} {name}", rid, rid in down) for rid, name in self._regions()],
                    id="f-regions",
                    compact=True,
                )
                yield Static("", id="f-regions-picked", classes="dialog-hint")
                yield Label("services (optional)")
                yield SelectionList[str](
                    *[(svc, svc, False) for svc in self._services()],
                    id="f-services",
                    compact=True,
                )
                yield Static("", id="f-services-picked", classes="dialog-hint")
                yield Label("detected at (optional: ISO time or '20m ago'; default now)")
                yield Input(id="f-detected", compact=True)
                yield Static("", id="f-error", classes="status-line bad")
            with Horizontal(classes="dialog-buttons"):
                yield Button("Declare (^s)", id="declare", variant="error", compact=True)
                yield Button("Cancel (esc)", id="cancel", compact=True)

    def _regions(self) -> list[tuple[str, str]]:
        if self.ctx.config is None:
            return []
        return [(rid, r.name) for rid, r in self.ctx.config.inventory.regions.items()]

    def _services(self) -> list[str]:
        if self.ctx.config is None:
            return []
        names: list[str] = []
        for region in self.ctx.config.inventory.regions.values():
            names += [s for s in region.services if s not in names]
        return names

    def on_mount(self) -> None:
        self.query_one("#f-title", Input).focus()
        self._show_picked()

    def on_selection_list_selected_changed(self, event: SelectionList.SelectedChanged) -> None:
        self._show_picked()

    def _show_picked(self) -> None:
        # In words too: a monochrome terminal does not show which boxes are ticked.
        for name in ("regions", "services"):
            picked = self.query_one(f"#f-{name}", SelectionList).selected
            self.query_one(f"#f-{name}-picked", Static).update(
                f"picked: {', '.join(picked) if picked else 'none'}"
            )

    def values(self) -> dict[str, str]:
        def inp(name: str) -> str:
            return self.query_one(f"#f-{name}", Input).value

        def picked(name: str) -> str:
            return ",".join(self.query_one(f"#f-{name}", SelectionList).selected)

        return {
            "title": inp("title"),
            "regions": picked("regions"),
            "services": picked("services"),
            "detected": inp("detected"),
            "severity": str(self.query_one("#f-severity", Select).value),
            "category": str(self.query_one("#f-category", Select).value),
        }

    def on_input_submitted(self, event: Input.Submitted) -> None:
        event.stop()
        self.action_submit()

    def on_button_pressed(self, event: Button.Pressed) -> None:
        event.stop()
        if event.button.id == "cancel":
            self.dismiss(None)
        else:
            self.action_submit()

    def action_submit(self) -> None:
        from opsconsole.errors import OpsError

        if not self.values()["title"].strip():
            self.query_one("#f-error", Static).update("✖ a title is needed: what is happening?")
            self.query_one("#f-title", Input).focus()
            return
        try:
            inc = declare_from_form(self.ctx, self.values())
        except (OpsError, ValueError) as exc:
            self.query_one("#f-error", Static).update(f"✖ {exc}")
            return
        self.app.notify(f"declared {inc.id} {inc.severity}: {inc.title}")
        self.dismiss(inc.id)
