from __future__ import annotations

from typing import Any

from tests.tui.conftest import wait_for


async def test_audit_filter_and_verify_records_with_interface_tui(
    make_app: Any, tui_db: Any
) -> None:
    from opsconsole.audit import AuditLog, query

    cli = AuditLog(tui_db, actor="bob", interface="cli")
    cli.record("runbook.run.started", "regional-failover")
    cli.record("incident.declare", "INC-2026-0001")
    app = make_app(start="audit")
    async with app.run_test(size=(80, 24)) as pilot:
        screen = app.screen
        await wait_for(pilot, lambda: len(screen.rows) == 2)
        await pilot.press("slash", *"action:incident.")
        await wait_for(pilot, lambda: [r["action"] for r in screen.rows] == ["incident.declare"])
        await pilot.press("escape")  # clears the filter, keeps the screen
        await wait_for(pilot, lambda: len(screen.rows) == 2 and app.current_mode == "audit")
        await pilot.press("v")
        await wait_for(pilot, lambda: "INTACT" in str(screen.query_one("#verify-result").render()))
    verified = query(tui_db, action="audit.verify")
    assert len(verified) == 1 and verified[0]["interface"] == "tui"
    assert verified[0]["actor"] == "ana"


async def test_verify_names_the_tampered_event(make_app: Any, tui_db: Any) -> None:
    from opsconsole.audit import AuditLog

    log = AuditLog(tui_db, actor="bob", interface="cli")
    for i in range(3):
        log.record("thing.done", f"t{i}")
    tui_db.execute("DROP TRIGGER audit_events_no_update")
    tui_db.execute("UPDATE audit_events SET target = 'forged' WHERE seq = 2")
    app = make_app(start="audit")
    async with app.run_test(size=(80, 24)) as pilot:
        screen = app.screen
        await pilot.press("v")
        await wait_for(
            pilot, lambda: "TAMPERED" in str(screen.query_one("#verify-result").render())
        )
        assert "seq 2" in str(screen.query_one("#verify-result").render())


async def test_every_screen_has_a_key_and_a_palette_entry(make_app: Any) -> None:
    from opsconsole.tui.app import SCREENS_ORDER

    app = make_app()
    async with app.run_test(size=(80, 24)) as pilot:
        for mode, (key, _title, _) in SCREENS_ORDER.items():
            await pilot.press(key)
            await wait_for(pilot, lambda m=mode: app.current_mode == m)
        titles = [c.title for c in app.get_system_commands(app.screen)]
        for _, (key, title, _) in SCREENS_ORDER.items():
            assert f"{title} [{key}]" in titles
        await pilot.press("q")
        await wait_for(pilot, lambda: app.return_code is not None or not app.is_running)


async def test_a_store_change_arriving_after_the_screens_are_gone_is_ignored(
    make_app: Any, tui_db: Any
) -> None:
    """The change watcher can deliver one last message while the app shuts down."""
    from opsconsole.changes import Change
    from opsconsole.tui.app import StoreChanged

    app = make_app(start="audit")
    async with app.run_test(size=(80, 24)):
        pass
    assert not app.screen_stack
    change = Change(99, "2026-11-29T00:00:00+00:00", "bob", "cli", "incident.note", "INC-1", "ok")
    app.on_store_changed(StoreChanged([change]))  # must not raise ScreenStackError
