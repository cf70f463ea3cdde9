"""The region x service health grid: one line per region (its roll-up), then one per
service. Draws only the rows that fit, so 500 targets cost what 40 cost."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import ClassVar

from rich.console import RenderableType
from rich.table import Table
from rich.text import Text
from textual.binding import Binding, BindingType
from textual.message import Message
from textual.reactive import reactive
from textual.widget import Widget

from opsconsole.timeutil import utcnow
from opsconsole.tui.feed import HealthSnapshot, RegionView, TargetView
from opsconsole.tui.widgets.common import ago, sparkline, state_text

__all__ = ["GridRow", "HealthGrid"]


@dataclass(frozen=True)
class GridRow:
    region: RegionView
    target: TargetView | None = None  # None: the region's roll-up line


def _ms(value: float | None) -> str:
    if value is None:
        return "-"
    return f"{value:.0f}ms" if value < 10_000 else f"{value / 1000:.0f}s"


def _pct(value: float | None) -> str:
    return "-" if value is None else f"{value:.1f}%"


class HealthGrid(Widget, can_focus=True):
    """Keyboard: up/down/pgup/pgdn/home/end move, enter opens the cell's detail."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("up,k", "move(-1)", "Up", show=False),
        Binding("down,j", "move(1)", "Down", show=False),
        Binding("pageup", "move(-10)", "PgUp", show=False),
        Binding("pagedown", "move(10)", "PgDn", show=False),
        Binding("home", "move(-100000)", "Top", show=False),
        Binding("end", "move(100000)", "End", show=False),
        Binding("enter", "select", "Detail"),
    ]

    cursor: reactive[int] = reactive(0)

    class Selected(Message):
        def __init__(self, row: GridRow) -> None:
            super().__init__()
            self.row = row

    class Highlighted(Message):
        def __init__(self, row: GridRow) -> None:
            super().__init__()
            self.row = row

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__(id=id)
        self.snapshot = HealthSnapshot()
        self.rows: list[GridRow] = []
        self.filter_text = ""
        self.offset_row = 0
        self.now: datetime | None = None  # fixed "now" for snapshots; None = real time

    # --- data --------------------------------------------------------------------

    def update_snapshot(self, snapshot: HealthSnapshot) -> None:
        current = self.current_row
        self.snapshot = snapshot
        self._rebuild(keep=current)

    def set_filter(self, text: str) -> None:
        self.filter_text = text.strip().lower()
        self._rebuild(keep=self.current_row)

    def _matches(self, region: RegionView, target: TargetView | None) -> bool:
        if not self.filter_text:
            return True
        words = [region.id, region.name.lower(), region.state]
        if target is not None:
            words += [target.service, target.state]
        hay = " ".join(words).lower()
        return all(w in hay for w in self.filter_text.split())

    def _rebuild(self, keep: GridRow | None) -> None:
        by_region: dict[str, list[TargetView]] = {}
        for t in self.snapshot.targets:
            by_region.setdefault(t.region, []).append(t)
        rows: list[GridRow] = []
        for region in self.snapshot.regions:
            targets = [t for t in by_region.get(region.id, []) if self._matches(region, t)]
            if targets or self._matches(region, None):
                rows.append(GridRow(region))
                rows.extend(GridRow(region, t) for t in targets)
        self.rows = rows
        if keep is not None:
            key = (keep.region.id, keep.target.service if keep.target else None)
            for i, row in enumerate(rows):
                if (row.region.id, row.target.service if row.target else None) == key:
                    self.cursor = i
                    break
        self.cursor = max(0, min(self.cursor, len(rows) - 1))
        self.refresh()

    @property
    def current_row(self) -> GridRow | None:
        return self.rows[self.cursor] if 0 <= self.cursor < len(self.rows) else None

    # --- keys ----------------------------------------------------------------------

    def action_move(self, delta: int) -> None:
        if self.rows:
            self.cursor = max(0, min(len(self.rows) - 1, self.cursor + delta))

    def action_select(self) -> None:
        row = self.current_row
        if row is not None:
            self.post_message(self.Selected(row))

    def watch_cursor(self, old: int, new: int) -> None:
        row = self.current_row
        if row is not None and old != new:
            self.post_message(self.Highlighted(row))
        self.refresh()

    # --- drawing ------------------------------------------------------------------

    def render(self) -> RenderableType:
        now = self.now or utcnow()
        width = self.size.width or 80
        visible = max(1, (self.size.height or 20) - 1)
        if self.cursor < self.offset_row:
            self.offset_row = self.cursor
        elif self.cursor >= self.offset_row + visible:
            self.offset_row = self.cursor - visible + 1
        self.offset_row = max(0, min(self.offset_row, max(0, len(self.rows) - visible)))
        wide = width >= 100
        # fixed columns: region/service 16, state 11, p50 6, p95 6, avail 6, since 7 (+ gaps)
        fixed = 16 + 11 + 6 + 6 + 6 + 7 + 6 + (33 if wide else 0)
        hist = max(4, min(60, width - fixed - 1))
        table = Table(
            box=None,
            padding=(0, 1, 0, 0),
            show_header=True,
            header_style="bold",
            expand=False,
            pad_edge=False,
            show_edge=False,
        )
        table.add_column("REGION/SERVICE", width=16, no_wrap=True)
        table.add_column("STATE", width=11, no_wrap=True)
        table.add_column("p50", width=6, justify="right", no_wrap=True)
        table.add_column("p95", width=6, justify="right", no_wrap=True)
        table.add_column("AVAIL", width=6, justify="right", no_wrap=True)
        table.add_column("HISTORY", width=hist, no_wrap=True)
        table.add_column("SINCE", width=7, no_wrap=True)
        if wide:
            table.add_column("LAST ERROR", width=32, no_wrap=True, overflow="ellipsis")
        if not self.rows:
            table.add_row(Text(self.snapshot.note or "waiting for the first sweep…", style="dim"))
        for index in range(self.offset_row, min(len(self.rows), self.offset_row + visible)):
            row = self.rows[index]
            style = (
                "reverse"
                if index == self.cursor and self.has_focus
                else ("underline" if index == self.cursor else "")
            )
            table.add_row(*self._cells(row, now, hist, wide), style=style)
        return table

    def _cells(self, row: GridRow, now: datetime, hist: int, wide: bool) -> list[RenderableType]:
        region, t = row.region, row.target
        if t is None:
            name = Text(region.id, style="bold")
            extra = [""] if wide else []
            label = region.name + (f" ⇄ {region.standby}" if region.standby else "")
            return [
                name,
                state_text(region.state),
                "",
                "",
                "",
                Text(label, style="dim"),
                ago(region.since, now),
                *extra,
            ]
        cells: list[RenderableType] = [
            Text("  " + t.service),
            state_text(t.state),
            _ms(t.p50_ms),
            _ms(t.p95_ms),
            _pct(t.availability),
            sparkline(t.history, hist),
            ago(t.since, now),
        ]
        if wide:
            cells.append(Text(t.last_error or "", style="red"))
        return cells
