"""Drill-down per service: each endpoint's stored history with a time axis and
min/p50/p95/max; failures (timeouts among them) counted, never hidden."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from tests.tui.conftest import NOW, plain, wait_for


def _samples() -> dict[str, list[Any]]:
    from opsconsole.health.model import Outcome
    from opsconsole.health.storage import RawSample

    rows = [
        RawSample(NOW - timedelta(seconds=60 - i), "sa-east-1/payments/0", Outcome(True, 10.0 + i))
        for i in range(20)
    ]
    rows.append(
        RawSample(
            NOW,
            "sa-east-1/payments/0",
            Outcome(False, None, error="timeout after 2s", timed_out=True),
        )
    )
    return {"sa-east-1/payments/0": rows}


def test_endpoint_history_has_a_time_axis_and_percentiles(monkeypatch: Any) -> None:
    import time

    from rich.console import Console

    from opsconsole.tui.widgets.detail import endpoint_history_text, latency_stats

    monkeypatch.setenv("TZ", "UTC")
    time.tzset()
    assert latency_stats([10, 20, 30, 40]) == "min 10 · p50 20 · p95 40 · max 40 ms"
    console = Console(width=80, no_color=True)
    with console.capture() as cap:
        console.print(
            endpoint_history_text(_samples(), NOW, width=60, timeouts_s={"sa-east-1/payments/0": 2})
        )
    text = cap.get()
    assert "sa-east-1/payments/0" in text
    assert "×" in text  # the failed sample is in the line
    assert "13:59:00" in text and "14:00:00" in text  # time axis: first and last sample
    # The timeout counts as its 2 s, as on the dashboard and in `status`.
    assert "min 10 · p50 20 · p95 29 · max 2000 ms" in text
    assert "21 samples · 1 failed (1 timeouts)" in text
    monkeypatch.undo()
    time.tzset()


async def test_service_drill_down_opens_from_the_grid(make_app: Any) -> None:
    from opsconsole.tui.widgets.detail import CellDetail

    app = make_app()
    async with app.run_test(size=(80, 24)) as pilot:
        await wait_for(pilot, lambda: app.dashboard is not None and app.dashboard.updates > 0)
        grid = app.dashboard.query_one("HealthGrid")
        # Worst first: the down region's rows come first.
        assert grid.rows[0].region.id == "sa-east-1"
        await pilot.press("j", "enter")
        await wait_for(pilot, lambda: isinstance(app.screen, CellDetail))
        history = app.screen.query_one("#endpoint-history")
        await wait_for(pilot, lambda: "per endpoint" in plain(history))
        assert "no stored samples" in plain(history)
