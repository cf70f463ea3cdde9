"""The region x service health grid: one line per region (its roll-up), then one per
service. Draws only the rows that fit, so 500 targets cost what 40 cost."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, ClassVar

from rich.segment import Segment
from rich.style import Style
from textual.binding import Binding, BindingType
from textual.message import Message
from textual.reactive import reactive
from textual.strip import Strip
from textual.widget import Widget

from opsconsole.tui.feed import HealthSnapshot, RegionView, TargetView
from opsconsole.tui.widgets.common import (
    STATE_STYLE,
    ago,
    local_time,
    severity_rank,
    sparkline,
)

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
        self.failovers: dict[str, Any] = {}  # region -> runbooks.failovers.FailoverInfo
        self.worst_first = True  # ``s`` toggles inventory order

    # --- data --------------------------------------------------------------------

    def update_snapshot(self, snapshot: HealthSnapshot) -> None:
        current = self.current_row
        self.snapshot = snapshot
        self._rebuild(keep=current)

    def set_failovers(self, failovers: dict[str, Any]) -> None:
        """Regions whose customers a failover moved to their standby (region rows say so)."""
        self.failovers = dict(failovers)
        self._rebuild(keep=self.current_row)

    def set_filter(self, text: str) -> None:
        self.filter_text = text.strip().lower()
        self._rebuild(keep=self.current_row)

    def _matches(self, region: RegionView, target: TargetView | None) -> bool:
        if not self.filter_text:
            return True
        words = [region.id, region.name.lower(), region.state]
        info = self.failovers.get(region.id)
        if info is not None:
            words += ["failover", "served", info.target or ""]
        if target is not None:
            words += [target.service, target.state]
        hay = " ".join(words).lower()
        return all(w in hay for w in self.filter_text.split())

    def _rebuild(self, keep: GridRow | None) -> None:
        by_region: dict[str, list[TargetView]] = {}
        for t in self.snapshot.targets:
            by_region.setdefault(t.region, []).append(t)
        regions = list(self.snapshot.regions)
        if self.worst_first:
            # Stable sorts: inventory order among equals, so rows do not jump around.
            regions.sort(key=lambda r: severity_rank(r.state))
            for targets in by_region.values():
                targets.sort(key=lambda t: severity_rank(t.state))
        rows: list[GridRow] = []
        for region in regions:
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
        self._clamp()
        self.refresh()

    @property
    def current_row(self) -> GridRow | None:
        return self.rows[self.cursor] if 0 <= self.cursor < len(self.rows) else None

    # --- keys ----------------------------------------------------------------------

    def action_move(self, delta: int) -> None:
        if self.rows:
            self.cursor = max(0, min(len(self.rows) - 1, self.cursor + delta))

    def set_worst_first(self, on: bool) -> None:
        self.worst_first = on
        self._rebuild(keep=self.current_row)

    def get_content_height(self, container: Any, viewport: Any, width: int) -> int:
        return len(self.rows) + 1 if self.rows else 2

    def on_click(self, event: Any) -> None:
        """Mouse: a click selects the row; a click on the selected row opens it."""
        index = self.offset_row + event.y - 1
        if event.y >= 1 and 0 <= index < len(self.rows):
            if index == self.cursor:
                self.action_select()
            else:
                self.cursor = index

    def action_select(self) -> None:
        row = self.current_row
        if row is not None:
            self.post_message(self.Selected(row))

    def watch_cursor(self, old: int, new: int) -> None:
        row = self.current_row
        if row is not None and old != new:
            self.post_message(self.Highlighted(row))
        self._clamp()
        self.refresh()

    # --- drawing ------------------------------------------------------------------
    # Line API: each refresh builds only the visible lines as plain segments (a Rich
    # Table of the same rows costs ten times more, measured with bench/tui.py).

    def _layout(self) -> tuple[int, bool]:
        width = self.size.width or 80
        wide = width >= 100
        fixed = 16 + 11 + 6 + 6 + 6 + 7 + 7 + (33 if wide else 0)
        return max(4, min(60, width - fixed - 1)), wide

    def _clamp(self) -> None:
        visible = max(1, (self.size.height or 20) - 1)
        if self.cursor < self.offset_row:
            self.offset_row = self.cursor
        elif self.cursor >= self.offset_row + visible:
            self.offset_row = self.cursor - visible + 1
        self.offset_row = max(0, min(self.offset_row, max(0, len(self.rows) - visible)))

    def render_line(self, y: int) -> Strip:
        width = self.size.width
        hist, wide = self._layout()
        if y == 0:
            cols = ["REGION/SERVICE", "STATE", "p50", "p95", "AVAIL", "HISTORY", "SINCE"]
            if wide:
                cols.append("LAST ERROR")
            return self._strip(
                list(zip(cols, [_BOLD] * len(cols), strict=True)), hist, wide, width, _PLAIN
            )
        index = self.offset_row + y - 1
        if not self.rows:
            if y == 1:
                note = self.snapshot.note or "waiting for the first sweep…"
                return Strip([Segment(note[:width], _DIM)]).extend_cell_length(width, _PLAIN)
            return Strip.blank(width, _PLAIN)
        if index >= len(self.rows):
            return Strip.blank(width, _PLAIN)
        row_style = _PLAIN
        if index == self.cursor:
            row_style = _CURSOR if self.has_focus else _UNDERLINE
        return self._strip(
            self._cells(self.rows[index], self.now or self.app.ctx.clock(), hist, wide),
            hist,
            wide,
            width,
            row_style,
        )

    def _strip(
        self,
        cells: Sequence[tuple[str | None, Style | None]],
        hist: int,
        wide: bool,
        width: int,
        row_style: Style,
    ) -> Strip:
        widths = [16, 11, 6, 6, 6, hist, 7] + ([32] if wide else [])
        right = {2, 3, 4}
        segments: list[Segment] = []
        carry = 0  # a cell whose text is None lends its width to the next cell
        for i, (text, style) in enumerate(cells):
            w = widths[i] + carry
            if text is None:
                carry = w + 1
                continue
            carry = 0
            if len(text) > w:
                text = text[: w - 1] + "…"
            text = text.rjust(w) if i in right else text.ljust(w)
            # Never a None style: Textual's monochrome filter (NO_COLOR) reads .color.
            style = row_style if style is None else style + row_style
            segments.append(Segment(text, style))
            segments.append(Segment(" ", row_style))
        return Strip(list(Segment.simplify(segments))).crop_extend(0, width, row_style)

    def _cells(
        self, row: GridRow, now: datetime, hist: int, wide: bool
    ) -> list[tuple[str | None, Style | None]]:
        region, t = row.region, row.target
        if t is None:
            label = region.name + (f" ⇄ {region.standby}" if region.standby else "")
            info = self.failovers.get(region.id)
            if info is None:
                cells: list[tuple[str | None, Style | None]] = [
                    (region.id, _BOLD),
                    _state(region.state),
                    ("", None),
                    ("", None),
                    ("", None),
                    (label, _DIM),
                    (ago(region.since, now), None),
                ]
                return cells + ([("", None)] if wide else [])
            # Customers served by the standby: said across the empty p50/p95/avail columns.
            label = f"→ served by {info.target or 'its standby'}"
            if info.finished_at is not None:
                label += f" since {local_time(info.finished_at, now=now)}"
            cells = [
                (region.id, _BOLD),
                _state(region.state),
                (None, None),
                (None, None),
                (None, None),
                (label, _YELLOW),
                (ago(region.since, now), None),
            ]
            return cells + ([(f"run {info.run_id}", _YELLOW)] if wide else [])
        cells = [
            ("  " + t.service, None),
            _state(t.state),
            (_ms(t.p50_ms), None),
            (_ms(t.p95_ms), None),
            (_pct(t.availability), None),
            (sparkline(t.history, hist), None),
            (ago(t.since, now), None),
        ]
        if wide:
            cells.append((t.last_error or "", _RED))
        return cells

    def on_resize(self) -> None:
        self._clamp()
        self.refresh()

    def on_focus(self) -> None:
        self.refresh()

    def on_blur(self) -> None:
        self.refresh()


_PLAIN = Style()
_BOLD = Style(bold=True)
_DIM = Style(dim=True)
_RED = Style(color="red")
_YELLOW = Style(color="yellow", bold=True)
_CURSOR = Style(reverse=True)
_UNDERLINE = Style(underline=True)
_STATE_STYLES: dict[str, Style] = {k: Style.parse(v[2]) for k, v in STATE_STYLE.items()}


def _state(state: str) -> tuple[str, Style | None]:
    symbol, word, _ = STATE_STYLE.get(state, ("?", state, ""))
    return f"{symbol} {word}", _STATE_STYLES.get(state)
