"""Screen keys reuse the screens they built and draw them at once.

Latency itself is measured by ``bench/tui.py`` (timing has no place in a test on a busy
machine); these tests pin down the causes it found.
"""

from __future__ import annotations

from typing import Any

import pytest

from tests.tui.conftest import wait_for


async def test_a_screen_seen_before_is_drawn_without_textuals_switch_delay(
    make_app: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Textual holds all painting for 50 ms on every mode switch, to hide a screen still
    being built. Only a first visit has anything to hide."""
    from textual.app import App

    held: list[str] = []
    hold = App.delay_update

    def recording(self: App[Any], delay: float = 0.05) -> None:
        held.append(self.current_mode)
        hold(self, delay)

    monkeypatch.setattr(App, "delay_update", recording)
    app = make_app()
    async with app.run_test(size=(80, 24)) as pilot:
        await wait_for(pilot, lambda: app.dashboard is not None)
        held.clear()
        screens = {}
        for key, mode in [("5", "audit"), ("1", "dashboard"), ("5", "audit"), ("6", "events")]:
            await pilot.press(key)
            await wait_for(pilot, lambda m=mode: app.current_mode == m)
            screens.setdefault(mode, app.screen)
            assert app.screen is screens[mode]  # the same screen, not a new one
        for key in ("1", "5", "6", "1", "6"):
            await pilot.press(key)
            await pilot.pause()
        assert held == ["dashboard", "audit"]  # the first visits of audit and events only


async def test_c_copies_the_highlighted_id_on_every_list(make_app: Any, tui_db: Any) -> None:
    """``c`` copies what the cursor is on: region/service, runbook or run id, incident id,
    drill, an event's target, the open incident."""
    from opsconsole.audit import AuditLog
    from opsconsole.tui.incident_feed import incident_service
    from opsconsole.tui.screens.incident_view import IncidentScreen

    AuditLog(tui_db, actor="bob", interface="cli").record("runbook.run.started", "run-42")
    app = make_app()
    inc = incident_service(app.ctx).declare(
        "payments down", severity="SEV2", category="system-failure", regions=["sa-east-1"]
    )
    async with app.run_test(size=(80, 24)) as pilot:
        await wait_for(pilot, lambda: app.dashboard is not None and app.dashboard.updates > 0)
        await wait_for(pilot, lambda: app.changes_seen > 0)

        async def copied(*keys: str) -> str:
            app._clipboard = ""
            await pilot.press(*keys, "c")
            await wait_for(pilot, lambda: app.clipboard != "")
            return app.clipboard

        assert await copied("j") == "sa-east-1/gateway"  # worst first: the down region
        assert await copied("2") == app.screen.selected_book().name
        assert await copied("3") == inc.id
        await pilot.press("enter")
        await wait_for(pilot, lambda: isinstance(app.screen, IncidentScreen))
        assert await copied() == inc.id
        assert await copied("5", "slash", *"run-42", "enter") == "run-42"
        assert await copied("6", "slash", *"run-42", "enter") == "run-42"


async def test_a_click_on_a_log_row_highlights_it(
    make_app: Any, tui_db: Any
) -> None:
    """Mouse on the audit list: a click highlights the row (its details show below)."""
    from opsconsole.audit import AuditLog

    log = AuditLog(tui_db, actor="bob", interface="cli")
    for i in range(5):
        log.record("thing.done", f"t{i}")
    app = make_app(start="audit")
    async with app.run_test(size=(80, 24)) as pilot:
        screen = app.screen
        await wait_for(pilot, lambda: len(screen.rows) == 5)
        table = screen.query_one("#audit-table")
        await pilot.click(table, offset=(5, 3))  # line 0 is the header: row index 2
        await wait_for(pilot, lambda: table.cursor_row == 2)
        assert "t2" in str(screen.query_one("#audit-details").render())
        await pilot.click(table, offset=(5, 3))
        assert table.cursor_row == 2 and app.current_mode == "audit"
