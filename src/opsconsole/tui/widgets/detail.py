"""The detail of one grid cell: per-phase timings, recent errors, history."""

from __future__ import annotations

import contextlib
import math
from datetime import datetime
from typing import TYPE_CHECKING, Any, ClassVar

from rich.console import Group, RenderableType
from rich.table import Table
from rich.text import Text
from textual import work
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Vertical, VerticalScroll
from textual.widgets import Label, Static

from opsconsole.tui.screens.base import OpsModal
from opsconsole.tui.widgets.common import ago, sparkline, state_text

if TYPE_CHECKING:
    from opsconsole.tui.widgets.grid import GridRow

__all__ = ["CellDetail", "cell_detail_text", "endpoint_history_text", "latency_stats"]

# The stored window the drill-down reads (raw samples are kept longer than this).
HISTORY_MINUTES = 15

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


def latency_stats(values: list[float]) -> str:
    """``min 12 · p50 20 · p95 48 · max 60 ms`` (nearest-rank percentiles)."""
    if not values:
        return "no successful samples"
    ordered = sorted(values)

    def rank(p: float) -> float:
        return ordered[min(len(ordered) - 1, max(0, math.ceil(p * len(ordered)) - 1))]

    return (
        f"min {ordered[0]:.0f} · p50 {rank(0.5):.0f} · p95 {rank(0.95):.0f} · "
        f"max {ordered[-1]:.0f} ms"
    )


def endpoint_history_text(
    samples: dict[str, list[Any]],
    now: datetime,
    *,
    width: int = 60,
    timeouts_s: dict[str, float] | None = None,
) -> RenderableType:
    """Per endpoint: a latency sparkline over the stored window with a time axis under
    it, and min/p50/p95/max. As on the dashboard and in ``status``, a timed-out probe
    counts in the percentiles as taking its timeout (``timeouts_s``, per target; 10 s when
    unknown); other failures (× in the line) are counted apart."""
    from opsconsole.tui.widgets.common import local_time

    if not samples:
        return Text("no stored samples for this service yet", style="dim")
    parts: list[RenderableType] = []
    span = max(10, width - 2)
    for target, rows in samples.items():
        rows = rows[-span:]
        values = [s.outcome.latency_ms if s.outcome.ok else None for s in rows]
        cap_ms = (timeouts_s or {}).get(target, 10.0) * 1000
        good = [
            cap_ms if s.outcome.timed_out else s.outcome.latency_ms
            for s in rows
            if s.outcome.timed_out or (s.outcome.ok and s.outcome.latency_ms is not None)
        ]
        failed = [s for s in rows if not s.outcome.ok]
        timeouts = sum(1 for s in failed if s.outcome.timed_out)
        parts.append(Text(target, style="bold"))
        parts.append(Text(sparkline(values, span) or "-"))
        if rows:
            first, last = local_time(rows[0].at, now=now), local_time(rows[-1].at, now=now)
            gap = max(1, len(values) - len(first) - len(last))
            parts.append(Text(f"{first}{' ' * gap}{last}", style="dim"))
        line = Text(latency_stats(good))
        line.append(
            f" · {len(rows)} samples · {len(failed)} failed"
            + (f" ({timeouts} timeouts)" if timeouts else ""),
            style="bold red" if failed else "",
        )
        parts.append(line)
    return Group(*parts)


class CellDetail(OpsModal):
    """Follows the dashboard live while open; a service's drill-down reads each of its
    endpoints' stored samples (in a thread, every 2 s)."""

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
                yield Static("", id="endpoint-history")
            yield Label("esc close · c copy id", classes="dialog-hint")

    BINDINGS: ClassVar[list[BindingType]] = [Binding("c", "copy_id", "Copy id")]

    def on_mount(self) -> None:
        self._draw()
        self.set_interval(1.0, self._draw)
        if self.service_id is not None:
            self._load_history()
            self.set_interval(2.0, self._load_history)

    def action_copy_id(self) -> None:
        ident = self.region_id + (f"/{self.service_id}" if self.service_id else "")
        self.app.copy_to_clipboard(ident)
        self.app.notify(f"copied {ident}", timeout=3)

    def _targets(self) -> list[str]:
        row = self._row()
        if row is None or row.target is None or not row.target.endpoint:
            return []
        return [t.strip() for t in row.target.endpoint.split(",") if t.strip()]

    @work(thread=True, exclusive=True, group="endpoint-history", exit_on_error=False)
    def _load_history(self) -> None:
        from datetime import timedelta

        from opsconsole.health.storage import recent_samples
        from opsconsole.store import open_db

        now = self.app.ctx.clock()  # type: ignore[attr-defined]
        by_target: dict[str, list[Any]] = {}
        timeouts_s: dict[str, float] = {}
        try:
            config = self.app.ctx.config  # type: ignore[attr-defined]
            if config is not None:
                from opsconsole.health.model import targets_from_config

                for t in targets_from_config(
                    config, region=self.region_id, service=self.service_id
                ):
                    timeouts_s[t.id] = t.timeout
            db = open_db(self.app.ctx.db_path, migrate=False)  # type: ignore[attr-defined]
            try:
                targets = self._targets()
                for sample in recent_samples(db, targets, now - timedelta(minutes=HISTORY_MINUTES)):
                    by_target.setdefault(sample.target, []).append(sample)
            finally:
                db.conn.close()
            text = endpoint_history_text(by_target, now, width=70, timeouts_s=timeouts_s)
        except Exception as exc:  # a drill-down must never break the dashboard
            text = Text(f"history unavailable: {exc}", style="dim")
        with contextlib.suppress(RuntimeError):
            self.app.call_from_thread(self._show_history, text)

    def _show_history(self, text: RenderableType) -> None:
        head = Text(f"per endpoint, last {HISTORY_MINUTES} min (× = failed):", style="bold")
        self.query_one("#endpoint-history", Static).update(Group(head, text))

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
