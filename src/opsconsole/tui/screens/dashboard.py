"""Dashboard: live region x service health, host metrics, open incidents.

The app polls the health feed in a thread worker (see ``OpsConsoleApp._poll``) and hands
each snapshot to :meth:`DashboardScreen.apply_snapshot`. Nothing here blocks input.

Failovers in effect (``opsconsole.runbooks.failovers``) are read from the run records in
a thread worker, at most once a second, along with the health updates: a failed-over
region shows which region serves its customers, and ``f`` refuses to fail it over again.
"""

from __future__ import annotations

import contextlib
import time
from datetime import datetime
from typing import TYPE_CHECKING, Any, ClassVar

from rich.text import Text
from textual import work
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal
from textual.css.query import NoMatches
from textual.widgets import Header, Input, Static

from opsconsole.tui.feed import HealthSnapshot
from opsconsole.tui.screens.base import OpsScreen
from opsconsole.tui.widgets.common import (
    ago,
    local_time,
    served_by_text,
    state_text,
    update_if_changed,
)
from opsconsole.tui.widgets.detail import CellDetail, cell_detail_text
from opsconsole.tui.widgets.grid import HealthGrid
from opsconsole.tui.widgets.key_footer import KeyFooter

if TYPE_CHECKING:
    from pathlib import Path

    from opsconsole.config import Config
    from opsconsole.runbooks.failovers import FailoverInfo

__all__ = ["DashboardScreen", "served_by_text"]

# Failovers are re-read at most this often (seconds): once per health sweep in practice.
FAILOVER_REFRESH_SECONDS = 1.0


def _bytes(rate: float | None) -> str:
    if rate is None:
        return "-"
    for unit in ("B", "kB", "MB", "GB"):
        if rate < 1000:
            return f"{rate:.0f}{unit}/s"
        rate /= 1000
    return f"{rate:.0f}TB/s"


def _pct(value: float | None) -> str:
    return "-" if value is None else f"{value:.0f}%"


class DashboardScreen(OpsScreen):
    TITLE = "Dashboard"
    AUTO_FOCUS = "HealthGrid"
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("f", "failover", "Fail over"),
        Binding("enter", "detail", "Detail", show=False),
        Binding("s", "toggle_sort", "Sort"),
    ]

    def __init__(self) -> None:
        super().__init__()
        self.snapshot = HealthSnapshot()
        self.updates = 0
        self.stale = False
        self.now: datetime | None = None  # fixed time for snapshot tests
        self.failovers: dict[str, FailoverInfo] = {}  # region -> failover in effect
        self.failovers_error: str | None = None
        self.failover_loads = 0
        self._failovers_busy = False
        self._failovers_at = -FAILOVER_REFRESH_SECONDS

    def compose(self) -> ComposeResult:
        yield Header()
        yield Static("", id="down-banner")
        yield Input(
            placeholder="/ filter: region, service or state (down, degraded)",
            classes="filter",
            id="dash-filter",
        )
        with Horizontal(id="dash-main"):
            yield HealthGrid(id="grid")
            yield Static("", id="side-detail")
        yield Static("", id="host-panel")
        yield Static("", id="event-tail")
        yield KeyFooter()

    def on_mount(self) -> None:
        self.query_one("#down-banner", Static).display = False
        self.query_one(HealthGrid).focus()
        self.app.dashboard = self  # type: ignore[attr-defined]
        last = self.app.last_snapshot  # type: ignore[attr-defined]
        if last is not None:
            self.call_after_refresh(self.apply_snapshot, last)
        self.refresh_failovers(force=True)
        self.set_interval(1.0, self._tick)
        self.app.change_listeners.append(self._changes)  # type: ignore[attr-defined]
        self._draw_tail()

    # --- live updates (the app polls the feed; see OpsConsoleApp._poll) -------------

    def on_screen_resume(self) -> None:
        # Drawn first as it was left (at most a second old), brought up to date right
        # after: a screen key never waits for the catch-up.
        self.call_after_refresh(self._catch_up)

    def _catch_up(self) -> None:
        self.refresh_failovers(force=True)  # e.g. back from the run of a failover
        if self.stale and self.app.last_snapshot is not None:  # type: ignore[attr-defined]
            self.apply_snapshot(self.app.last_snapshot)  # type: ignore[attr-defined]

    def apply_snapshot(self, snap: HealthSnapshot) -> None:
        self.stale = False
        self.snapshot = snap
        grids = self.query(HealthGrid)
        if not grids:  # not composed yet (or being torn down): drawn on mount
            return
        self.refresh_failovers()
        grid = grids.first(HealthGrid)
        grid.now = self.now
        grid.update_snapshot(snap)
        try:
            self._draw_banner()
            self._draw_host()
            self._draw_side()
            self._draw_tail()
        except NoMatches:  # children still mounting, or torn down: the next snapshot draws
            return
        self.updates += 1

    def _tick(self) -> None:
        if self.query("#down-banner"):  # not while the screen is being torn down
            self._draw_banner()

    def _changes(self, changes: list[Any]) -> None:
        self._draw_tail()

    def on_resize(self) -> None:
        self._draw_tail()

    def _draw_tail(self) -> None:
        self._fit_tail()
        # Again once the layout took the new texts (the host panel may wrap).
        self.call_after_refresh(self._fit_tail)

    def _fit_tail(self) -> None:
        """What changed lately, in the rows the grid does not need (none at 80x24 with a
        full grid: the grid's rows come first)."""
        from opsconsole.changes import describe
        from opsconsole.tui.screens.events import newsworthy

        if not self.is_attached or not self.query("#event-tail"):
            return  # torn down (quitting) or not composed yet
        tail = self.query_one("#event-tail", Static)
        grid = self.query_one(HealthGrid)
        fixed = self.query(
            "Header, IncidentBar, #down-banner, #dash-filter, #host-panel, KeyFooter"
        )
        used = sum(w.outer_size.height for w in fixed if w.display)
        room = self.size.height - used - (len(grid.rows) + 1 if grid.rows else 2)
        lines = max(0, min(12, room - 2))  # a title line and the border above it
        if lines <= 0:
            if tail.display:
                tail.display = False
                self.call_after_refresh(self._fit_tail)  # the grid got the room back
            return
        recent = [c for c in self.app.recent_changes if newsworthy(c)][-lines:]  # type: ignore[attr-defined]
        text = Text("WHAT CHANGED (6: all events)", style="bold")
        for c in reversed(recent):
            text.append(f"\n{local_time(c.ts, now=self.ctx.clock())} ", style="dim")
            text.append(f"{c.actor}/{c.interface} ", style="bold")
            text.append(describe(c, who=False))
        if not recent:
            text.append("\nnothing yet", style="dim")
        update_if_changed(tail, text, layout=False)  # its height is set here, not by the text
        tail.styles.height = lines + 2
        tail.display = True

    def refresh_failovers(self, *, force: bool = False) -> None:
        """Re-read the failovers in effect in a thread (one read at a time, throttled)."""
        if self._failovers_busy:
            return
        now = time.monotonic()
        if not force and now - self._failovers_at < FAILOVER_REFRESH_SECONDS:
            return
        self._failovers_busy = True
        self._failovers_at = now
        self._load_failovers(self.ctx.db_path, self.ctx.config)

    @work(thread=True, group="failovers", exit_on_error=False)
    def _load_failovers(self, db_path: Path, config: Config | None) -> None:
        from opsconsole.runbooks.failovers import failovers_in_effect
        from opsconsole.store import open_db

        result: dict[str, FailoverInfo] | None = None
        error = None
        try:
            # Its own connection: the read must not share a cursor with the UI thread.
            db = open_db(db_path, migrate=False)
            try:
                result = failovers_in_effect(db, config=config)
            finally:
                db.conn.close()
        except Exception as exc:  # never break the dashboard; keep what we knew
            error = f"failovers unavailable: {exc}"
        with contextlib.suppress(RuntimeError):  # the app is shutting down
            self.app.call_from_thread(self._failovers_loaded, result, error)

    def _failovers_loaded(self, result: dict[str, FailoverInfo] | None, error: str | None) -> None:
        self._failovers_busy = False
        self.failover_loads += 1
        self.failovers_error = error
        if result is None or result == self.failovers:
            return
        self.failovers = result
        self.app.failovers = result  # type: ignore[attr-defined]
        grids = self.query(HealthGrid)
        if grids:
            grids.first(HealthGrid).set_failovers(result)
            self._draw_banner()

    # --- panels ------------------------------------------------------------------------

    def _draw_banner(self) -> None:
        banner = self.query_one("#down-banner", Static)
        down = self.snapshot.down_regions
        # Failed over but no longer down: customers are still on the standby (fail back?).
        moved = [r for r in self.snapshot.regions if r.id in self.failovers and r.state != "down"]
        if not down and not moved:
            banner.display = False
            return
        now = self.now or self.ctx.clock()
        text = Text()
        for r in down:
            text.append(state_text("down"))
            text.append(f" {r.id} ({r.name}) down for {ago(r.since, now)}", style="bold")
            info = self.failovers.get(r.id)
            if info is not None:
                text.append(f" · {served_by_text(info, now)}", style="bold yellow")
            elif r.standby and not self.ctx.read_only:
                text.append(f" · f: fail over to {r.standby}")
            text.append("   ")
        for r in moved:
            text.append(f"⇄ {r.id} ({r.name}) {r.state}", style="bold")
            text.append(f" · still {served_by_text(self.failovers[r.id], now)}", style="yellow")
            text.append("   ")
        update_if_changed(banner, text)
        banner.display = True

    def _draw_host(self) -> None:
        host = self.snapshot.host
        panel = self.query_one("#host-panel", Static)
        if host is None:
            update_if_changed(panel, Text("HOST  no metrics", style="dim"))
            return
        text = Text("HOST ", style="bold")
        text.append(
            f"cpu {_pct(host.cpu_percent)} · mem {_pct(host.memory_percent)} · "
            f"disk {_pct(host.disk_percent)} · load/cpu "
            f"{'-' if host.load_per_cpu is None else f'{host.load_per_cpu:.2f}'} · "
            f"net ↓{_bytes(host.net_rx_bps)} ↑{_bytes(host.net_tx_bps)}"
        )
        for alert in host.alerts:
            text.append(f"  ▲ {alert}", style="bold yellow")
        update_if_changed(panel, text)

    def _draw_side(self) -> None:
        side = self.query_one("#side-detail", Static)
        side.display = self.size.width >= 140
        row = self.query_one(HealthGrid).current_row
        if side.display and row is not None:
            # A fixed-size panel: new text, no new layout.
            detail = cell_detail_text(row, self.now or self.ctx.clock())
            update_if_changed(side, detail, layout=False)

    # --- keys ---------------------------------------------------------------------------

    def on_input_changed(self, event: Input.Changed) -> None:
        if event.input.id == "dash-filter":
            self.query_one(HealthGrid).set_filter(event.value)

    def action_toggle_sort(self) -> None:
        grid = self.query_one(HealthGrid)
        grid.set_worst_first(not grid.worst_first)
        self.app.notify("worst first" if grid.worst_first else "inventory order", timeout=2)

    def selected_id(self) -> str | None:
        """``c`` copies ``region`` or ``region/service``."""
        row = self.query_one(HealthGrid).current_row
        if row is None:
            return None
        return row.region.id + (f"/{row.target.service}" if row.target else "")

    def on_health_grid_highlighted(self, message: HealthGrid.Highlighted) -> None:
        self._draw_side()

    def on_health_grid_selected(self, message: HealthGrid.Selected) -> None:
        self.push_screen_detail()

    def action_detail(self) -> None:
        self.push_screen_detail()

    def push_screen_detail(self) -> None:
        row = self.query_one(HealthGrid).current_row
        if row is not None:
            self.app.push_screen(
                CellDetail(self, row.region.id, row.target.service if row.target else None)
            )

    def failover_region(self) -> str | None:
        """The region ``f`` acts on: the highlighted one if down, else the first down
        region not failed over yet (else the first down one: ``f`` then says why not)."""
        row = self.query_one(HealthGrid).current_row
        down = self.snapshot.down_regions
        if row is not None and (row.region.state == "down" or not down):
            return row.region.id
        for r in down:
            if r.id not in self.failovers:
                return r.id
        if down:
            return down[0].id
        return None

    def action_failover(self) -> None:
        self.app.offer_failover(self.failover_region())  # type: ignore[attr-defined]
