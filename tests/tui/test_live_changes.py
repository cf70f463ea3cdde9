"""Other operators' changes appear on the console as they are committed (SQLite change
counter), with a note of who changed what; the header shows the nearest clock."""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

from tests.tui.conftest import plain, wait_for


def test_watcher_yields_changes_after_the_cursor_from_another_connection(
    db_path: Path, tui_db: Any
) -> None:
    from opsconsole.audit import AuditLog
    from opsconsole.changes import ChangeWatcher, describe
    from opsconsole.store import open_db

    watcher = ChangeWatcher(db_path)
    stop = threading.Event()
    try:
        cursor = watcher.cursor_now()
        assert watcher.wait(cursor, stop, timeout=0.3) == []  # nothing new
        other = open_db(db_path)  # another connection, as another process has
        AuditLog(other, actor="bob", interface="cli").record(
            "incident.note", "INC-2026-0001", {"text": "rotating keys now"}
        )
        found = watcher.wait(cursor, stop, timeout=10)
        assert [(c.actor, c.interface, c.action) for c in found] == [
            ("bob", "cli", "incident.note")
        ]
        assert describe(found[0]) == ("bob (cli) added a note to INC-2026-0001: rotating keys now")
        assert watcher.wait(found[-1].seq, stop, timeout=0.3) == []
    finally:
        watcher.close()


def test_a_health_change_says_from_which_state_to_which() -> None:
    """The dashboard's tail and the events screen read "sa-east-1: ok → down", not only
    that something changed."""
    from opsconsole.changes import Change, describe

    change = Change(
        7,
        "2026-11-29T18:25:24+00:00",
        "monitor",
        "tui",
        "health.state_changed",
        "sa-east-1",
        "down",
        {"level": "region", "old": "ok", "new": "down"},
    )
    assert describe(change, who=False) == "saw a health change: sa-east-1: ok → down"


async def test_a_second_operators_note_appears_on_the_open_incident(
    make_app: Any, db_path: Path
) -> None:
    from opsconsole.audit import AuditLog
    from opsconsole.incidents import IncidentService
    from opsconsole.store import open_db
    from opsconsole.tui.incident_feed import incident_service
    from opsconsole.tui.screens.incident_view import IncidentScreen

    app = make_app(start="incidents")
    breach = incident_service(app.ctx).declare(
        "card data exposed", severity="SEV1", category="data-breach", regions=["ap-south-1"]
    )
    async with app.run_test(size=(80, 24)) as pilot:
        await wait_for(pilot, lambda: app.changes_seen > 0)
        # The header line names the incident and its nearest clock; i jumps to it.
        bar = app.screen.query_one("IncidentBar")
        await wait_for(pilot, lambda: breach.id in str(bar.render()))
        assert "SEV1" in str(bar.render()) and "left" in str(bar.render())
        await pilot.press("i")
        await wait_for(pilot, lambda: isinstance(app.screen, IncidentScreen))
        screen = app.screen
        # bob, in another process (his own connection and audit log), adds a note.
        bob_db = open_db(db_path)
        IncidentService(
            bob_db, AuditLog(bob_db, actor="bob", interface="cli"), app.ctx.config
        ).note(breach.id, "legal informed, drafting the PDPC notice")
        await wait_for(
            pilot, lambda: "drafting the PDPC notice" in plain(screen.query_one("#inc-timeline"))
        )
        assert any(
            "bob (cli) added a note to " + breach.id in n.message for n in app._notifications
        )
        # The console's own changes get no "changed elsewhere" note.
        before = len(app._notifications)
        incident_service(app.ctx).note(breach.id, "my own note")
        await wait_for(pilot, lambda: "my own note" in plain(screen.query_one("#inc-timeline")))
        assert not any("my own note" in n.message for n in list(app._notifications)[before:])


async def test_events_screen_lists_and_filters_what_changed(make_app: Any, tui_db: Any) -> None:
    from opsconsole.audit import AuditLog

    AuditLog(tui_db, actor="bob", interface="cli").record("runbook.run.started", "r-1")
    app = make_app(start="dashboard")
    async with app.run_test(size=(80, 24)) as pilot:
        await wait_for(pilot, lambda: app.changes_seen > 0)
        await pilot.press("6")
        await wait_for(pilot, lambda: app.current_mode == "events")
        screen = app.screen
        await wait_for(pilot, lambda: len(screen.rows) == 1)
        rebuilds = screen.rebuilds
        AuditLog(tui_db, actor="carol", interface="tui").record(
            "incident.note", "INC-2026-0009", {"text": "hello"}
        )
        await wait_for(pilot, lambda: len(screen.rows) == 2)
        assert screen.rows[0].actor == "carol"  # newest first
        assert screen.rebuilds == rebuilds  # added on top, the list not rebuilt
        assert screen.query_one("#events-table").seqs == [c.seq for c in screen.rows]
        await pilot.press("slash", *"actor:bob")
        await wait_for(pilot, lambda: [c.actor for c in screen.rows] == ["bob"])
        await pilot.press("escape")
        await wait_for(pilot, lambda: len(screen.rows) == 2)


async def test_audit_marks_outcomes_by_meaning_and_export_is_audited(
    make_app: Any, tui_db: Any, db_path: Path, tmp_path: Path, monkeypatch: Any
) -> None:
    from opsconsole.audit import AuditLog, query
    from opsconsole.tui.incident_feed import incident_service
    from opsconsole.tui.screens.incident_view import IncidentScreen
    from opsconsole.tui.widgets.common import outcome_text

    assert str(outcome_text("passed")).startswith("✔")
    assert str(outcome_text("succeeded")).startswith("✔")
    assert str(outcome_text("failed")).startswith("✖")
    assert str(outcome_text("denied")).startswith("✖")
    cwd = tmp_path / "cwd"
    cwd.mkdir()
    monkeypatch.chdir(cwd)
    AuditLog(tui_db, actor="bob").record("drill.run.finished", "d1", outcome="passed")
    app = make_app(start="incidents")
    inc = incident_service(app.ctx).declare(
        "x", severity="SEV2", category="system-failure", regions=[]
    )
    async with app.run_test(size=(80, 24)) as pilot:
        app.push_screen(IncidentScreen(inc.id))
        await wait_for(pilot, lambda: isinstance(app.screen, IncidentScreen))
        await pilot.press("e")
        report = db_path.parent / "reports" / f"{inc.id}-report.md"
        await wait_for(pilot, lambda: report.exists())
        await pilot.press("5")
        await wait_for(pilot, lambda: app.current_mode == "audit")
        await wait_for(pilot, lambda: app.screen.loads > 0)  # read just after first paint
        table = app.screen.query_one("#audit-table")
        cells = [str(table.get_row_at(i)[2]) for i in range(table.row_count)]
        assert "✔ passed" in cells and not any(c.startswith("✖") for c in cells)
    assert not list(cwd.iterdir())  # nothing written to the current directory
    exported = query(tui_db, action="incident.report")
    assert exported and exported[0]["actor"] == "ana" and exported[0]["interface"] == "tui"
    assert exported[0]["details"]["out"] == str(report)


def test_automatic_health_changes_are_recorded_as_the_monitor(
    demo: Any, demo_thread: Any, db_path: Path
) -> None:
    """The console's monitor audits state changes as ``monitor``, not as the person."""
    from opsconsole.audit import query
    from opsconsole.config import load_config
    from opsconsole.demo import DemoClient
    from opsconsole.store import open_db
    from opsconsole.tui.monitor_feed import MonitorFeed

    db = open_db(db_path)
    feed = MonitorFeed(load_config(demo.config_dir), db_path, actor="ana")
    stop = threading.Event()
    try:
        feed.poll(stop)
        DemoClient(demo.router_url, demo.api_key_file).fault("sa-east-1", None, "down")
        for _ in range(60):
            feed.poll(stop)
            if query(db, action="health.state_changed"):
                break
        changes = query(db, action="health.state_changed")
    finally:
        stop.set()
        feed.close()
    assert changes, "no health change recorded"
    assert {c["actor"] for c in changes} == {"monitor"}
    assert all(c["interface"] == "tui" for c in changes)
