"""Ctrl-C quits the console, as in every terminal program (also from a text field)."""

from __future__ import annotations

from typing import Any

from tests.tui.conftest import wait_for


async def test_ctrl_c_quits_the_console(make_app: Any) -> None:
    app = make_app()
    async with app.run_test(size=(100, 30)) as pilot:
        await wait_for(pilot, lambda: app.dashboard is not None)
        await pilot.press("ctrl+c")
        await wait_for(pilot, lambda: app._exit)
    assert app.return_code == 0


async def test_ctrl_c_quits_from_the_filter_field(make_app: Any) -> None:
    app = make_app()
    async with app.run_test(size=(100, 30)) as pilot:
        await wait_for(pilot, lambda: app.dashboard is not None)
        app.screen.query_one("#dash-filter").focus()
        await pilot.press("s", "a", "ctrl+c")
        await wait_for(pilot, lambda: app._exit)
    assert app.return_code == 0
