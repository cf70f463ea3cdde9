from __future__ import annotations

from pathlib import Path
from typing import Any

from tests.tui.conftest import NOW, fixed_snapshot, plain, wait_for


async def test_region_going_down_shows_without_a_key_press(make_app: Any) -> None:
    app = make_app(snapshot=fixed_snapshot(down=None))
    async with app.run_test(size=(80, 24)) as pilot:
        await wait_for(pilot, lambda: app.dashboard is not None and app.dashboard.updates > 0)
        banner = app.dashboard.query_one("#down-banner")
        assert not banner.display
        app.health_feed.push(fixed_snapshot(down="sa-east-1"))
        await wait_for(pilot, lambda: banner.display)
        text = plain(banner)
        assert "sa-east-1" in text and "DOWN" in text and "f: fail over to eu-central-1" in text


async def test_updates_never_block_keys_and_stale_ones_are_dropped(make_app: Any) -> None:
    from opsconsole.tui.app import HealthUpdated

    app = make_app()
    async with app.run_test(size=(80, 24)) as pilot:
        await wait_for(pilot, lambda: app.dashboard is not None and app.dashboard.updates > 0)
        older, newer = HealthUpdated(fixed_snapshot()), HealthUpdated(fixed_snapshot())
        assert newer.can_replace(older)
        grid = app.dashboard.query_one("HealthGrid")
        before = grid.cursor
        await pilot.press("down", "down")
        await wait_for(pilot, lambda: grid.cursor == before + 2)


async def test_cell_detail_shows_phases_errors_and_history(make_app: Any) -> None:
    from opsconsole.tui.widgets.detail import CellDetail

    app = make_app()
    async with app.run_test(size=(100, 30)) as pilot:
        await wait_for(pilot, lambda: app.dashboard is not None and app.dashboard.updates > 0)
        grid = app.dashboard.query_one("HealthGrid")
        row = next(
            i
            for i, r in enumerate(grid.rows)
            if r.target and r.region.id == "sa-east-1" and r.target.service == "payments"
        )
        grid.cursor = row
        await pilot.press("enter")
        await wait_for(pilot, lambda: isinstance(app.screen, CellDetail))
        body = app.screen.query_one("#cell-detail")
        await wait_for(pilot, lambda: "ttfb" in plain(body))
        text = plain(body)
        assert "DOWN" in text and "HTTP 503" in text and "×" in text


async def test_help_lists_every_binding_and_read_only_hides_failover(make_app: Any) -> None:
    from opsconsole.tui.screens.help import binding_rows

    app = make_app(read_only=True)
    async with app.run_test(size=(80, 24)) as pilot:
        await wait_for(pilot, lambda: app.dashboard is not None)
        rows = binding_rows(app.screen)
        keys = {k for k, _, _ in rows}
        assert {"?", ":", "/", "q", "1", "5"} <= keys
        assert "f" not in keys
        await pilot.press("question_mark")
        await wait_for(pilot, lambda: type(app.screen).__name__ == "HelpScreen")
        await pilot.press("escape")
        await pilot.press("colon", *"audit", "enter")
        await wait_for(pilot, lambda: app.current_mode == "audit")
        await pilot.press("escape")
        await wait_for(pilot, lambda: app.current_mode == "dashboard")


async def test_dashboard_to_failover_in_four_keys(
    demo: Any,
    demo_thread: Any,
    db_path: Path,
) -> None:
    """Real demo, real engine: a region made down is failed over from the dashboard."""
    from opsconsole.config import load_config
    from opsconsole.demo import DemoClient
    from opsconsole.runbooks.state import get_run
    from opsconsole.store import open_db
    from opsconsole.tui.app import create_app
    from opsconsole.tui.feed import StaticFeed
    from opsconsole.tui.screens.modals import ConfirmModal
    from opsconsole.tui.screens.run_view import RunScreen

    DemoClient(demo.router_url, demo.api_key_file).fault("sa-east-1", None, "down")
    db = open_db(db_path)
    feed = StaticFeed(fixed_snapshot(down="sa-east-1"))
    app = create_app(
        config=load_config(demo.config_dir), db=db, actor="ana", health_feed=feed, animate=False
    )
    async with app.run_test(size=(120, 40)) as pilot:
        await wait_for(pilot, lambda: app.dashboard is not None and app.dashboard.updates > 0)
        keys = ["f", "enter"]  # offer the region's failover; run it
        await pilot.press(keys[0])
        await wait_for(pilot, lambda: type(app.screen).__name__ == "LaunchModal")
        assert app.screen.values()["region"] == "sa-east-1"
        await pilot.press(keys[1])
        await wait_for(pilot, lambda: isinstance(app.screen, ConfirmModal), timeout=60)
        keys.append("y")  # the runbook's own manual confirmation
        await pilot.press("y")
        assert len(keys) <= 4
        await wait_for(
            pilot,
            lambda: isinstance(app.screen, RunScreen) and not app.screen.handle.active,
            timeout=120,
        )
        handle = app.screen.handle
        assert handle.status == "succeeded", list(handle.log)[-10:]
        assert "rto_seconds" in handle.measured
    routes = DemoClient(demo.router_url, demo.api_key_file).request("GET", "/routes")
    assert routes["routes"]["sa-east-1"]["payments"] == "eu-central-1"
    assert get_run(db, handle.run_id).status == "succeeded"


def test_dashboard_snapshot_80x24(make_app: Any, snap_compare: Any) -> None:
    assert snap_compare(make_app(), terminal_size=(80, 24), run_before=_settle)


def test_dashboard_snapshot_160x48(make_app: Any, snap_compare: Any) -> None:
    assert snap_compare(make_app(), terminal_size=(160, 48), run_before=_settle)


async def _settle(pilot: Any) -> None:
    """Fixed clock, first snapshot drawn, no blinking cursor."""
    app = pilot.app
    await wait_for(pilot, lambda: app.dashboard is not None and app.dashboard.updates > 0)
    app.dashboard.now = NOW
    app.dashboard.apply_snapshot(app.last_snapshot)
    for widget in app.screen.query("Input"):
        widget.cursor_blink = False
    await pilot.pause()


async def test_a_region_going_down_is_announced_on_every_screen(make_app: Any) -> None:
    app = make_app(start="audit", snapshot=fixed_snapshot(down=None))
    async with app.run_test(size=(80, 24)) as pilot:
        await wait_for(pilot, lambda: app.health_updates > 0)
        app.health_feed.push(fixed_snapshot(down="sa-east-1"))
        await wait_for(pilot, lambda: any("sa-east-1" in n.message for n in app._notifications))


async def test_at_80x24_the_grid_keeps_every_row_with_banner_and_incidents(make_app: Any) -> None:
    from opsconsole.tui.incident_feed import incident_service

    app = make_app()
    svc = incident_service(app.ctx)
    for title in ("one", "two"):
        svc.declare(title, severity="SEV1", category="system-failure", regions=["sa-east-1"])
    async with app.run_test(size=(80, 24)) as pilot:
        await wait_for(pilot, lambda: app.dashboard is not None and app.dashboard.updates > 0)
        await wait_for(pilot, lambda: len(app.incidents) == 2)
        await pilot.pause(0.2)
        grid = app.dashboard.query_one("HealthGrid")
        assert app.dashboard.query_one("#down-banner").display
        assert len(grid.rows) == 16
        assert grid.size.height >= len(grid.rows) + 1  # header + every row


async def test_an_unchanged_snapshot_lays_nothing_out_again(
    make_app: Any, monkeypatch: Any
) -> None:
    """The feed repeats itself most seconds: panels with the same text are not updated
    (each Static.update lays the whole screen out again)."""
    from textual.widgets import Static

    app = make_app(snapshot=fixed_snapshot(down="sa-east-1"))
    async with app.run_test(size=(160, 48)) as pilot:
        await wait_for(pilot, lambda: app.dashboard is not None and app.dashboard.updates > 1)
        await pilot.pause()
        layouts: list[str] = []
        update = Static.update

        def counting(self: Static, content: Any = "", *, layout: bool = True) -> None:
            if layout:
                layouts.append(str(self.id))
            update(self, content, layout=layout)

        monkeypatch.setattr(Static, "update", counting)
        seen = app.dashboard.updates
        await wait_for(pilot, lambda: app.dashboard.updates >= seen + 3)
        assert "host-panel" not in layouts and "down-banner" not in layouts
        assert "side-detail" not in layouts and "event-tail" not in layouts
