"""Every screen at 80x24 and 160x48 (snapshots), and the whole app under NO_COLOR=1.

Clocks are fixed (the console's clock, the audit log's timestamps, TZ=UTC), so the
snapshots show the same countdowns and times on every run.
"""

from __future__ import annotations

import time
from datetime import timedelta
from typing import Any

import pytest

from tests.tui.conftest import NOW, wait_for

SIZES = [(80, 24), (160, 48)]


@pytest.fixture
def frozen(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TZ", "UTC")
    time.tzset()
    monkeypatch.setattr("opsconsole.audit.utcnow", lambda: NOW)
    yield
    monkeypatch.undo()
    time.tzset()


def _seed(app: Any) -> dict[str, str]:
    """A SEV1 data breach decided notifiable (its clocks run) and a SEV2 outage."""
    from opsconsole.tui.incident_feed import incident_service

    svc = incident_service(app.ctx)
    breach = svc.declare(
        "card data exposed",
        severity="SEV1",
        category="data-breach",
        regions=["ap-southeast-1"],
        detected_at=NOW - timedelta(hours=1),
    )
    svc.decide(breach.id, "notifiable")
    svc.note(breach.id, "rotating keys now")
    outage = svc.declare(
        "payments down in Sao Paulo",
        severity="SEV2",
        category="system-failure",
        regions=["sa-east-1"],
    )
    return {"breach": breach.id, "outage": outage.id}


def _frozen_app(make_app: Any, **kw: Any) -> Any:
    app = make_app(**kw)
    app.ctx.clock = lambda: NOW
    return app


async def _settle(pilot: Any) -> None:
    app = pilot.app
    await wait_for(pilot, lambda: app.dashboard is not None and app.dashboard.updates > 0)
    await wait_for(pilot, lambda: app.changes_seen > 0)
    app.refresh_incidents()
    app.dashboard.now = NOW
    app.dashboard.apply_snapshot(app.last_snapshot)
    for widget in app.screen.query("Input"):
        widget.cursor_blink = False
    await pilot.pause()


def _visit(*keys: str, then: Any = None) -> Any:
    async def run_before(pilot: Any) -> None:
        app = pilot.app
        ids = _seed(app)
        await _settle(pilot)
        await pilot.press(*keys)
        if then is not None:
            await then(pilot, ids)
        await pilot.pause(0.2)
        for screen in app.screen_stack:
            for widget in screen.query("Input"):
                widget.cursor_blink = False
            if hasattr(screen, "now"):
                screen.now = NOW
        await pilot.pause()

    return run_before


async def _open_breach(pilot: Any, ids: dict[str, str]) -> None:
    from opsconsole.tui.screens.incident_view import IncidentScreen

    pilot.app.push_screen(IncidentScreen(ids["breach"]))
    await wait_for(
        pilot,
        lambda: isinstance(pilot.app.screen, IncidentScreen) and pilot.app.screen.view is not None,
    )
    pilot.app.screen.now = NOW
    pilot.app.screen.reload()


async def _status_picker(pilot: Any, ids: dict[str, str]) -> None:
    await _open_breach(pilot, ids)
    await pilot.press("m")
    await wait_for(pilot, lambda: type(pilot.app.screen).__name__ == "PickModal")


async def _run_view(pilot: Any, ids: dict[str, str]) -> None:
    from opsconsole.runbooks import find_runbook, load_runbook
    from opsconsole.runbooks.context import expand_steps
    from opsconsole.tui.run_control import open_run
    from opsconsole.tui.runs import RunHandle

    app = pilot.app
    book = load_runbook(find_runbook("tui-manual", app.ctx.config))
    handle = RunHandle(
        runbook=book.name, params={"region": "sa-east-1"}, run_id="20261128-140000-abc123"
    )
    handle.load_steps(expand_steps(book))
    for line in handle.steps.values():
        line.status, line.duration = "succeeded", 0.4
    handle.status = "succeeded"
    handle.add_log("── run 20261128-140000-abc123 of tui-manual started")
    handle.add_log("✔ hello succeeded in 0.4s")
    handle.add_log("── run succeeded")
    open_run(app, handle)
    await pilot.pause()


SCREENS = {
    "dashboard": _visit(),
    "runbooks": _visit("2"),
    "incidents": _visit("3"),
    "incident": _visit("3", then=_open_breach),
    "drills": _visit("4"),
    "audit": _visit("5"),
    "events": _visit("6"),
    "help": _visit("question_mark"),
    "run": _visit("2", then=_run_view),
    "declare": _visit("3", "n"),
    # dialogs and drill-downs are screens too
    "drill-down": _visit("enter"),
    "failover": _visit("f"),
    "plan": _visit("2", "p"),
    "status-picker": _visit("3", then=_status_picker),
    "command": _visit("colon"),
}


@pytest.mark.parametrize("size", SIZES, ids=lambda s: f"{s[0]}x{s[1]}")
@pytest.mark.parametrize("screen", list(SCREENS))
def test_screen_snapshot(
    screen: str, size: tuple[int, int], make_app: Any, snap_compare: Any, frozen: None
) -> None:
    app = _frozen_app(make_app, snapshot=None)
    assert snap_compare(app, terminal_size=size, run_before=SCREENS[screen])


async def test_the_whole_app_runs_without_colour(
    make_app: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """NO_COLOR=1: Textual's monochrome filter draws every screen (it crashed on the grid)."""
    from opsconsole.tui.screens.incident_view import IncidentScreen

    monkeypatch.setenv("NO_COLOR", "1")
    app = make_app()
    assert app.no_color
    ids = _seed(app)
    async with app.run_test(size=(80, 24)) as pilot:
        await wait_for(pilot, lambda: app.dashboard is not None and app.dashboard.updates > 0)
        for key in ("2", "3", "4", "5", "6", "1", "question_mark", "escape", "i"):
            await pilot.press(key)
            await pilot.pause(0.1)
        await wait_for(pilot, lambda: isinstance(app.screen, IncidentScreen))
        assert app.screen.incident_id in ids.values()
        await pilot.press("1", "f")
        await wait_for(pilot, lambda: type(app.screen).__name__ == "LaunchModal")
        await pilot.press("escape")
        await pilot.pause(0.2)
    assert not app.return_code
