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
