"""The detail of one grid cell: per-phase timings, recent errors, history."""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING, Any

from rich.console import Group, RenderableType
from rich.table import Table
from rich.text import Text
from textual.app import ComposeResult
from textual.containers import Vertical, VerticalScroll
from textual.widgets import Label, Static

from opsconsole.tui.screens.base import OpsModal
from opsconsole.tui.widgets.common import ago, sparkline, state_text

if TYPE_CHECKING:
    from opsconsole.tui.widgets.grid import GridRow

__all__ = ["CellDetail", "cell_detail_text"]

PHASES = ("dns", "connect", "tls", "ttfb", "transfer", "total")


def cell_detail_text(row: GridRow, now: datetime, *, width: int = 40) -> RenderableType:
    region, t = row.region, row.target
    head = Text(f"{region.id} ({region.name})", style="bold")
    if t is None:
        lines: list[RenderableType] = [head, Text.assemble("region: ", state_text(region.state))]
        if region.standby:
            lines.append(Text(f"standby: {region.standby}"))
        lines.append(Text(f"since: {ago(region.since, now)} · tz {region.timezone}"))
        return Group(*lines)
    head.append(f" / {t.service}")
    parts: list[RenderableType] = [
        head,
        Text.assemble(state_text(t.state), f" for {ago(t.since, now)}"),
        Text(f"endpoint: {t.endpoint or '-'}", style="dim"),
        Text(
            f"p50 {t.p50_ms or 0:.0f}ms · p95 {t.p95_ms or 0:.0f}ms · "
            f"avail {'-' if t.availability is None else f'{t.availability:.2f}%'} · "
            f"{t.samples} samples"
        ),
    ]
    if t.phases:
        table = Table(box=None, show_header=True, header_style="bold", pad_edge=False)
        table.add_column("phase")
        table.add_column("ms", justify="right")
        known = [p for p in PHASES if p in t.phases] + [p for p in t.phases if p not in PHASES]
        for phase in known:
            table.add_row(phase, f"{t.phases[phase]:.1f}")
        parts += [Text("last probe, per phase:", style="bold"), table]
    else:
        parts.append(Text("per-phase timings: not recorded for this endpoint", style="dim"))
    parts.append(Text("history (latency; × = failed):", style="bold"))
    parts.append(Text(sparkline(t.history, width) or "-"))
    parts.append(Text("recent errors:", style="bold"))
    if t.errors:
        parts.extend(Text(f"· {e}", style="red") for e in list(t.errors)[-5:])
    else:
        parts.append(Text("none", style="dim"))
    return Group(*parts)


class CellDetail(OpsModal):
    """Follows the dashboard live while open."""

    def __init__(self, dashboard: Any, region: str, service: str | None) -> None:
        super().__init__()
        self.dashboard = dashboard
        self.region_id = region
        self.service_id = service

    def compose(self) -> ComposeResult:
        with Vertical(classes="dialog wide"):
            yield Label(f"{self.region_id} / {self.service_id or 'region'}", classes="dialog-title")
            with VerticalScroll(classes="dialog-body"):
                yield Static("", id="cell-detail")
            yield Label("esc close · f fail over this region", classes="dialog-hint")

    def on_mount(self) -> None:
        self._draw()
        self.set_interval(1.0, self._draw)

    def _row(self) -> GridRow | None:
        from opsconsole.tui.widgets.grid import GridRow

        snap = self.dashboard.snapshot
        region = snap.region(self.region_id)
        if region is None:
            return None
        target = next(
            (
                t
                for t in snap.targets
                if t.region == self.region_id and t.service == self.service_id
            ),
            None,
        )
        return GridRow(region, target)

    def _draw(self) -> None:
        row = self._row()
        body = self.query_one("#cell-detail", Static)
        if row is None:
            body.update("gone from the inventory")
            return
        body.update(cell_detail_text(row, self.dashboard.now or self.app.ctx.clock(), width=80))
