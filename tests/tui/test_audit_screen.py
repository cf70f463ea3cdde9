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


def _seed(db: Any, count: int, *, every: int = 0, word: str = "needle") -> None:
    """``count`` events in one transaction; every ``every``-th names ``word`` in details."""
    from opsconsole.audit import AuditLog
    from opsconsole.store import immediate

    log = AuditLog(db, actor="bob", interface="cli")
    with immediate(db):
        for i in range(count):
            details = {"text": word} if every and i % every == 0 else {"n": i}
            log.record("thing.done", f"t{i}", details)


async def test_new_events_are_added_on_top_without_reloading_the_log(
    make_app: Any, tui_db: Any, db_path: Any
) -> None:
    """Another process's event shows within the change feed's delay; the rows already
    shown stay (no re-read), and the cursor stays on the event it was on."""
    from opsconsole.audit import AuditLog
    from opsconsole.store import open_db

    _seed(tui_db, 50)
    app = make_app(start="audit")
    async with app.run_test(size=(80, 24)) as pilot:
        screen = app.screen
        await wait_for(pilot, lambda: len(screen.rows) == 50)
        await pilot.press("j", "j", "j")
        table = screen.query_one("#audit-table")
        await wait_for(pilot, lambda: table.cursor_row == 3)
        looked_at = screen.rows[3]["seq"]
        assert screen.loads == 1
        other = open_db(db_path)  # another process's connection
        seq = AuditLog(other, actor="carol", interface="cli").record("incident.note", "INC-9")
        await wait_for(pilot, lambda: screen.rows[0]["seq"] == seq)
        assert screen.loads == 1  # added, not reloaded
        assert [r["seq"] for r in screen.rows] == sorted(
            (r["seq"] for r in screen.rows), reverse=True
        )
        assert table.seqs == [r["seq"] for r in screen.rows]
        assert screen.rows[table.cursor_row]["seq"] == looked_at
        # A cursor on the newest row follows the newest, as tail -f does.
        await pilot.press("home")
        await wait_for(pilot, lambda: table.cursor_row == 0)
        seq1 = AuditLog(other, actor="carol", interface="cli").record("incident.note", "INC-11")
        await wait_for(pilot, lambda: screen.rows[0]["seq"] == seq1)
        assert table.cursor_row == 0
        assert "INC-11" in str(screen.query_one("#audit-details").render())
        # Away and back: the event written meanwhile is there, and nothing was re-read.
        await pilot.press("1")
        await wait_for(pilot, lambda: app.current_mode == "dashboard")
        seen = app.changes_seen
        seq2 = AuditLog(other, actor="carol", interface="cli").record("incident.note", "INC-10")
        await wait_for(pilot, lambda: app.changes_seen > seen)
        await pilot.press("5")
        await wait_for(pilot, lambda: screen.rows[0]["seq"] == seq2)
        assert screen.loads == 1


async def test_the_log_is_read_a_page_at_a_time_as_the_cursor_goes_down(
    make_app: Any, tui_db: Any
) -> None:
    from opsconsole.tui.screens.audit import PAGE

    _seed(tui_db, PAGE * 2 + 30)
    app = make_app(start="audit")
    async with app.run_test(size=(80, 24)) as pilot:
        screen = app.screen
        await wait_for(pilot, lambda: len(screen.rows) == PAGE)
        assert screen.rows[0]["seq"] == PAGE * 2 + 30  # the newest first
        for _ in range(3):
            await pilot.press("ctrl+end")
            await pilot.pause()
        await wait_for(pilot, lambda: len(screen.rows) == PAGE * 2 + 30)
        assert [r["seq"] for r in screen.rows] == list(range(PAGE * 2 + 30, 0, -1))
        assert screen.loads == 1


async def test_a_word_filter_finds_matches_beyond_the_first_page(
    make_app: Any, tui_db: Any
) -> None:
    """Words are matched after the read: the screen reads on until a page is full."""
    from opsconsole.tui.screens.audit import PAGE

    _seed(tui_db, PAGE * 3, every=100)  # 6 matches, spread over three pages
    app = make_app(start="audit")
    async with app.run_test(size=(80, 24)) as pilot:
        screen = app.screen
        await wait_for(pilot, lambda: len(screen.rows) == PAGE)
        await pilot.press("slash", *"needle")
        await wait_for(pilot, lambda: len(screen.rows) == 6)
        assert all(r["details"].get("text") == "needle" for r in screen.rows)
        await pilot.press("escape")
        await wait_for(pilot, lambda: len(screen.rows) == PAGE)
