"""A region already failed over: the dashboard says who serves it and `f` refuses."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from tests.tui.conftest import fixed_snapshot, plain, wait_for


class _Yes:
    """The person at the terminal: confirms the runbook's manual step."""

    name = "test"

    async def confirm(self, prompt: str, *, default: bool = False, auto_ok: bool = False) -> bool:
        return True

    async def ask(self, prompt: str, *, secret: bool = False, default: str | None = None) -> str:
        return default or ""

    async def show(self, text: str) -> None:
        return None


def _row_text(grid: Any, region: str) -> str:
    index = next(i for i, r in enumerate(grid.rows) if r.target is None and r.region.id == region)
    strip = grid.render_line(index - grid.offset_row + 1)
    return "".join(segment.text for segment in strip)


def _notes(app: Any) -> str:
    return "\n".join(n.message for n in app._notifications)


async def test_failed_over_region_shows_served_by_and_f_refuses_a_second_failover(
    demo: Any,
    demo_thread: Any,
    db_path: Path,
) -> None:
    """Real demo, real engine: after `regional-failover` succeeded, `f` points at fail back."""
    from opsconsole.audit import AuditLog
    from opsconsole.config import load_config
    from opsconsole.demo import DemoClient
    from opsconsole.runbooks import RunEnv, find_runbook, load_runbook, rollback_run, start_run
    from opsconsole.store import open_db
    from opsconsole.tui.app import create_app
    from opsconsole.tui.feed import StaticFeed
    from opsconsole.tui.run_control import start_runbook
    from opsconsole.tui.screens.launch import LaunchModal

    client = DemoClient(demo.router_url, demo.api_key_file)
    config = load_config(demo.config_dir)
    db = open_db(db_path)
    env = RunEnv(db=db, audit=AuditLog(db, actor="bo", interface="cli"), config=config)
    rb = load_runbook(find_runbook("regional-failover", config))
    client.fault("sa-east-1", None, "down")
    done = await start_run(rb, {"region": "sa-east-1"}, env=env, operator=_Yes())
    assert done.status == "succeeded", done.error

    feed = StaticFeed(fixed_snapshot(down="sa-east-1"))  # the primary itself is still down
    app = create_app(config=config, db=db, actor="ana", health_feed=feed, animate=False)
    async with app.run_test(size=(160, 40)) as pilot:
        await wait_for(pilot, lambda: app.dashboard is not None and app.dashboard.updates > 0)
        dash = app.dashboard
        await wait_for(pilot, lambda: "sa-east-1" in dash.failovers)
        banner = dash.query_one("#down-banner")
        await wait_for(pilot, lambda: "served by" in plain(banner, width=300))
        text = plain(banner, width=300)
        assert "DOWN" in text and "served by eu-central-1 since" in text
        assert done.run_id in text and "f: fail over" not in text
        grid = dash.query_one("HealthGrid")
        row = _row_text(grid, "sa-east-1")
        assert "DOWN" in row and "served by eu-central-1" in row and done.run_id in row

        await pilot.press("f")
        await wait_for(pilot, lambda: "already failed over" in _notes(app))
        assert not isinstance(app.screen, LaunchModal)
        assert f"opsconsole runbook rollback {done.run_id}" in _notes(app)
        app.run_command("failover sa-east-1")  # the `:failover` command refuses too
        await pilot.pause()
        assert not isinstance(app.screen, LaunchModal)
        # ...and so does a launch with the region typed in (Runbooks screen, `r`).
        assert start_runbook(app, "regional-failover", {"region": "sa-east-1"}) is None
        assert not app.active_runs

        # Failing back (the CLI's `runbook rollback`) ends it on the next refresh.
        client.fault("sa-east-1", None, "clear")
        back = await rollback_run(done.run_id, env=env, operator=_Yes())
        assert back.status == "rolled_back", back.error
        await wait_for(pilot, lambda: "f: fail over to eu-central-1" in plain(banner, width=300))
        assert "served by" not in _row_text(grid, "sa-east-1")
        await pilot.press("f")
        await wait_for(pilot, lambda: isinstance(app.screen, LaunchModal))
        assert app.screen.values()["region"] == "sa-east-1"
