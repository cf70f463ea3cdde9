"""A newest-first table of events, drawn line by line, changed and never rebuilt.

The audit and events screens show a log that grows at the top. Textual's ``DataTable``
renders its cells through Rich and caches them under a counter that every added row and
every resize bumps, so each new event and each screen switch rendered every visible cell
again: about 90 ms for a 160x48 screen here (``bench/tui.py``, the ``5`` key). This table
keeps each row as plain text and a style per cell and builds only the visible lines as
segments (the health grid's way), so drawing a screenful costs about a millisecond.

New events go on top, older pages at the bottom (``NearEnd`` asks for them), and the
cursor and the view stay on the event the person was looking at.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, ClassVar

from rich.cells import cell_len, set_cell_size
from rich.segment import Segment
from rich.style import Style
from rich.text import Text
from textual import events
from textual.binding import Binding, BindingType
from textual.message import Message
from textual.reactive import reactive
from textual.strip import Strip
from textual.widget import Widget

__all__ = ["LogTable"]

# How close to the last loaded row the cursor or the view may come before the screen is
# asked for the next (older) page.
NEAR_END_ROWS = 20
MAX_COLUMN = 48  # a long cell (a target, a description) is cut with an ellipsis
RIGHT_MOST_MIN = 12  # the last column gets at least this much, or what is left

Cell = tuple[str, Style]

_PLAIN = Style()
_HEADER = Style(bold=True)
_CURSOR = Style(reverse=True)
_UNDERLINE = Style(underline=True)
_styles: dict[str, Style] = {}


def _cell(value: Any) -> Cell:
    """A cell as its plain text (one line) and one style (never None: NO_COLOR's filter
    reads ``.color`` of every segment)."""
    if isinstance(value, Text):
        style = value.style
        if isinstance(style, str):
            style = _styles.get(style) or _styles.setdefault(style, Style.parse(style))
        return value.plain.replace("\n", " "), style or _PLAIN
    return ("" if value is None else str(value)).replace("\n", " "), _PLAIN


class LogTable(Widget, can_focus=True):
    """Rows are ``(seq, cells)``, shown by ``seq``, highest first. Keys: up/down (j/k),
    page up/down, home/end; the mouse wheel scrolls, a click moves the cursor."""

    DEFAULT_CSS = """
    LogTable {
        height: 1fr;
    }
    """

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("up,k", "move(-1)", "Up", show=False),
        Binding("down,j", "move(1)", "Down", show=False),
        Binding("pageup", "page(-1)", "PgUp", show=False),
        Binding("pagedown", "page(1)", "PgDn", show=False),
        Binding("home,ctrl+home", "move(-1000000000)", "Top", show=False),
        Binding("end,ctrl+end", "move(1000000000)", "End", show=False),
        Binding("enter", "select", "Select", show=False),
    ]

    cursor_row: reactive[int] = reactive(0, always_update=False)

    class Highlighted(Message):
        def __init__(self, table: LogTable, index: int) -> None:
            super().__init__()
            self.table = table
            self.cursor_row = index

    class Selected(Message):
        def __init__(self, table: LogTable, index: int) -> None:
            super().__init__()
            self.table = table
            self.cursor_row = index

    class NearEnd(Message):
        """The cursor or the view reached the oldest loaded rows: load the next page."""

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__(id=id)
        self.columns: list[str] = []
        self.widths: list[int] = []  # content width per column (the widest cell so far)
        self.seqs: list[int] = []  # shown order, newest first
        self._rows: dict[int, list[Cell]] = {}
        self.offset_row = 0

    # --- columns and rows ------------------------------------------------------------

    def add_columns(self, *names: str) -> None:
        for name in names:
            self.columns.append(name)
            self.widths.append(len(name))

    def add_column(self, name: str, *, key: str | None = None) -> None:  # DataTable's shape
        self.add_columns(name)

    @property
    def row_count(self) -> int:
        return len(self.seqs)

    def get_row_at(self, index: int) -> list[str]:
        """The texts of the row at ``index`` (shown order)."""
        return [text for text, _ in self._rows[self.seqs[index]]]

    def replace(self, rows: Sequence[tuple[int, Sequence[Any]]]) -> None:
        """Show exactly ``rows`` (newest first): a new filter, a first load."""
        self._rows.clear()
        self.widths = [len(c) for c in self.columns]
        self.seqs = []
        self._store(rows)
        self.seqs = [seq for seq, _ in rows]
        self.offset_row = 0
        self._set_cursor(min(self.cursor_row, max(0, len(self.seqs) - 1)), force=True)

    def prepend(self, rows: Sequence[tuple[int, Sequence[Any]]], *, limit: int = 0) -> None:
        """New events (newest first) on top. A cursor on the newest row follows the
        newest (as ``tail -f``); one moved down stays on its event, and a view scrolled
        down keeps showing the same rows. ``limit`` drops the oldest."""
        rows = [r for r in rows if r[0] not in self._rows]
        if not rows:
            return
        cursor_seq = self.seqs[self.cursor_row] if self.seqs and self.cursor_row else None
        self._store(rows)
        self.seqs = sorted([seq for seq, _ in rows] + self.seqs, reverse=True)
        if self.offset_row > 0:
            self.offset_row += len(rows)
        if limit and len(self.seqs) > limit:
            for seq in self.seqs[limit:]:
                del self._rows[seq]
            del self.seqs[limit:]
        if cursor_seq is not None and cursor_seq in self._rows:
            self._set_cursor(self.seqs.index(cursor_seq), quiet=True)
        elif cursor_seq is None:
            self._set_cursor(0, force=True)  # the newest: highlighted anew
        self._clamp()
        self.refresh()

    def append(self, rows: Sequence[tuple[int, Sequence[Any]]]) -> None:
        """Older events (newest first) at the bottom: the next page."""
        rows = [r for r in rows if r[0] not in self._rows]
        self._store(rows)
        self.seqs.extend(seq for seq, _ in rows)
        self.refresh()

    def _store(self, rows: Sequence[tuple[int, Sequence[Any]]]) -> None:
        for seq, values in rows:
            cells = [_cell(v) for v in values]
            self._rows[seq] = cells
            for i, (text, _) in enumerate(cells[: len(self.widths)]):
                size = cell_len(text)
                if size > self.widths[i]:
                    self.widths[i] = min(MAX_COLUMN, size)

    # --- the cursor -------------------------------------------------------------------

    def move_cursor(self, *, row: int, scroll: bool = True) -> None:
        self._set_cursor(row)

    def _set_cursor(self, row: int, *, quiet: bool = False, force: bool = False) -> None:
        row = max(0, min(row, len(self.seqs) - 1)) if self.seqs else 0
        if quiet:  # the same event, moved by rows added above it: no new highlight
            self.set_reactive(LogTable.cursor_row, row)
        elif force and row == self.cursor_row:
            self.watch_cursor_row(row)
        else:
            self.cursor_row = row
        self._clamp()
        self.refresh()

    def watch_cursor_row(self, row: int) -> None:
        self._clamp()
        self.refresh()
        if self.seqs:
            self.post_message(self.Highlighted(self, row))
        if self.near_end():
            self.post_message(self.NearEnd())

    def near_end(self) -> bool:
        """The cursor or the view is within reach of the oldest loaded row (checked again
        when the message is handled: a new filter may have come in between)."""
        if not self.seqs:
            return False
        last = len(self.seqs) - NEAR_END_ROWS
        return self.cursor_row >= last or self.offset_row + self._visible() >= last

    def _visible(self) -> int:
        return max(1, (self.size.height or 20) - 1)

    def _clamp(self) -> None:
        visible = self._visible()
        if self.cursor_row < self.offset_row:
            self.offset_row = self.cursor_row
        elif self.cursor_row >= self.offset_row + visible:
            self.offset_row = self.cursor_row - visible + 1
        self.offset_row = max(0, min(self.offset_row, max(0, len(self.seqs) - visible)))

    def action_move(self, delta: int) -> None:
        if self.seqs:
            self._set_cursor(self.cursor_row + delta)

    def action_page(self, pages: int) -> None:
        self.action_move(pages * self._visible())

    def action_select(self) -> None:
        if self.seqs:
            self.post_message(self.Selected(self, self.cursor_row))

    # --- the mouse ----------------------------------------------------------------------

    def _scroll(self, lines: int) -> None:
        self.offset_row = max(0, min(self.offset_row + lines, len(self.seqs) - self._visible()))
        self.offset_row = max(0, self.offset_row)
        self.refresh()
        if lines > 0 and self.near_end():
            self.post_message(self.NearEnd())

    def on_mouse_scroll_down(self, event: events.MouseScrollDown) -> None:
        event.stop()
        self._scroll(3)

    def on_mouse_scroll_up(self, event: events.MouseScrollUp) -> None:
        event.stop()
        self._scroll(-3)

    def on_click(self, event: events.Click) -> None:
        """A click moves the cursor to the row; a click on the cursor's row selects it."""
        index = self.offset_row + event.y - 1
        if event.y >= 1 and 0 <= index < len(self.seqs):
            if index == self.cursor_row:
                self.action_select()
            else:
                self._set_cursor(index)

    def on_resize(self) -> None:
        self._clamp()

    def on_focus(self) -> None:
        self.refresh()

    def on_blur(self) -> None:
        self.refresh()

    # --- drawing ------------------------------------------------------------------------

    def get_content_height(self, container: Any, viewport: Any, width: int) -> int:
        return len(self.seqs) + 1

    def _layout(self, width: int) -> list[int]:
        """Column widths in priority order, each with a space either side; the right-most
        that do not fit are dropped, and the last column takes what is left."""
        out: list[int] = []
        used = 0
        for w in self.widths:
            left = width - used - 2
            if w <= left:
                out.append(w)
                used += w + 2
                continue
            if left >= min(w, RIGHT_MOST_MIN):
                out.append(left)
                used += left + 2
            break
        if out and len(out) == len(self.widths):
            out[-1] += max(0, width - used)
        return out

    def render_line(self, y: int) -> Strip:
        width = self.size.width
        widths = self._layout(width)
        if y == 0:
            cells = [(name, _HEADER) for name in self.columns]
            return self._strip(cells, widths, width, _PLAIN)
        index = self.offset_row + y - 1
        if index >= len(self.seqs):
            return Strip.blank(width, _PLAIN)
        row_style = _PLAIN
        if index == self.cursor_row:
            row_style = _CURSOR if self.has_focus else _UNDERLINE
        return self._strip(self._rows[self.seqs[index]], widths, width, row_style)

    @staticmethod
    def _strip(cells: Sequence[Cell], widths: list[int], width: int, row_style: Style) -> Strip:
        segments: list[Segment] = []
        for (text, style), w in zip(cells, widths, strict=False):
            if cell_len(text) > w:
                text = set_cell_size(text, max(0, w - 1)) + "…"
            segments.append(Segment(" ", row_style))
            segments.append(Segment(set_cell_size(text, w), style + row_style))
            segments.append(Segment(" ", row_style))
        return Strip(segments).crop_extend(0, width, row_style)
