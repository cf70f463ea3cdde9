"""Two operators on one store, on both engines: what one commits shows on the other's
console (PostgreSQL: LISTEN/NOTIFY; SQLite: the change counter)."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from tests.helpers import SRC
from tests.tui.conftest import plain, wait_for

pytestmark = pytest.mark.usefixtures("store_engine")


async def test_another_connections_note_appears_on_the_open_incident(
    make_app: Any, db_path: Any, store_engine: str
) -> None:
    from opsconsole.audit import AuditLog
    from opsconsole.incidents import IncidentService
    from opsconsole.store import open_db
    from opsconsole.tui.incident_feed import incident_service
    from opsconsole.tui.screens.incident_view import IncidentScreen

    app = make_app(start="incidents")
    inc = incident_service(app.ctx).declare(
        "card data exposed", severity="SEV1", category="data-breach", regions=["ap-south-1"]
    )
    async with app.run_test(size=(80, 24)) as pilot:
        await wait_for(pilot, lambda: app.changes_seen > 0)
        app.push_screen(IncidentScreen(inc.id))
        await wait_for(
            pilot,
            lambda: (
                isinstance(app.screen, IncidentScreen) and bool(app.screen.query("#inc-timeline"))
            ),
        )
        screen = app.screen
        bob_db = open_db(db_path)  # bob's own connection, as his console has
        bob = IncidentService(bob_db, AuditLog(bob_db, actor="bob", interface="cli"), None)
        t0 = time.monotonic()
        bob.note(inc.id, "legal informed, drafting the PDPC notice")
        await wait_for(
            pilot, lambda: "drafting the PDPC notice" in plain(screen.query_one("#inc-timeline"))
        )
        print(
            f"\n{store_engine}: bob's note on the open incident after {time.monotonic() - t0:.3f} s"
        )
        assert any("bob (cli) added a note to " + inc.id in n.message for n in app._notifications)
        bob_db.close()


RUNBOOK = """\
name: live-gate
description: Waits for a file, so that another console can watch it.
steps:
  - id: hello
    name: Say hello
    shell: ["echo", "hello from the other host"]
  - id: gate
    name: Wait for the go file
    shell: ["sh", "-c", "while [ ! -e {go} ]; do sleep 0.05; done; echo released"]
  - id: bye
    name: Say goodbye
    shell: ["echo", "bye"]
"""


async def test_a_run_driven_by_another_process_updates_the_open_run_view(
    make_app: Any, tui_db: Any, tmp_path: Path
) -> None:
    from opsconsole.runbooks.state import get_steps, list_runs
    from opsconsole.tui.run_control import _stored_handle, open_run
    from opsconsole.tui.screens.run_view import RunScreen

    go = tmp_path / "go"
    book = tmp_path / "gate.yaml"
    book.write_text(RUNBOOK.format(go=go))
    env = dict(os.environ, PYTHONPATH=str(SRC))
    runner = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "opsconsole",
            "--config",
            str(tmp_path / "config"),
            "runbook",
            "run",
            str(book),
        ],
        env=env,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        app = make_app(start="runbooks")
        async with app.run_test(size=(120, 30)) as pilot:

            def gate_running() -> bool:
                runs = list_runs(tui_db, limit=5)
                return bool(runs) and any(
                    s.step_id == "gate" and s.status == "running"
                    for s in get_steps(tui_db, runs[0]["id"])
                )

            await wait_for(pilot, gate_running, timeout=60)
            run_id = list_runs(tui_db, limit=5)[0]["id"]
            # The runs list of this console already shows the other host's run.
            await wait_for(pilot, lambda: any(r["id"] == run_id for r in app.screen.runs))
            handle = _stored_handle(app, run_id)
            open_run(app, handle)
            await wait_for(
                pilot,
                lambda: isinstance(app.screen, RunScreen) and bool(app.screen.query("#run-status")),
            )
            screen = app.screen
            assert handle.status == "running"
            go.touch()
            await wait_for(pilot, lambda: handle.status == "succeeded", timeout=60)
            log = "\n".join(handle.log)
            assert "released" in log and "bye" in log
            await wait_for(pilot, lambda: "✔ done" in plain(screen.query_one("#run-status")))
            assert [s.status for s in handle.steps.values()] == ["succeeded"] * 3
        assert runner.wait(timeout=60) == 0
    finally:
        if runner.poll() is None:
            runner.kill()


async def test_an_approval_from_another_connection_shows_on_the_waiting_run(
    make_app: Any, db_path: Any
) -> None:
    from opsconsole.audit import AuditLog
    from opsconsole.runbooks import decide_approval
    from opsconsole.store import open_db
    from opsconsole.tui.run_control import start_runbook
    from opsconsole.tui.screens.run_view import RunScreen

    app = make_app(start="runbooks")
    async with app.run_test(size=(120, 40)) as pilot:
        handle = start_runbook(app, "tui-approval", {})
        assert handle is not None and handle.run_id is not None
        await wait_for(pilot, lambda: handle.status == "waiting_approval")
        screen = app.screen
        assert isinstance(screen, RunScreen)
        bob_db = open_db(db_path)  # bob approves from his own terminal
        decide_approval(
            bob_db, AuditLog(bob_db, actor="bob", interface="cli"), handle.run_id, approve=True
        )
        note = f"bob (cli) approved {handle.run_id}/gate"
        await wait_for(pilot, lambda: any(note in line for line in handle.log))
        assert any(note in n.message for n in app._notifications)
        await wait_for(
            pilot, lambda: "approved by bob: u resumes" in plain(screen.query_one("#run-status"))
        )
        bob_db.close()
        await pilot.press("u")  # ana resumes: the approval is there
        await wait_for(pilot, lambda: handle.status == "succeeded")


DRILLS = """\
plans:
  payments-bcp:
    min_drills_per_year: 2
drills:
  quarterly-failover:
    plan: payments-bcp
    kind: live
    runbook: tui-manual
    params: {region: sa-east-1}
    target: sa-east-1
    owner: ana
    schedule: {cron: "0 3 1 */3 *", timezone: UTC}
    objectives: {rto_seconds: 120, rpo_seconds: 10}
"""


async def test_a_drill_recorded_in_another_process_shows_on_the_drills_screen(
    make_app: Any, tui_config: Any, tui_db: Any
) -> None:
    import sqlite3

    from opsconsole.drills.store import history
    from tests.helpers import cli_subprocess

    try:
        history(tui_db)
    except sqlite3.Error as exc:  # drills/store.py on PostgreSQL is another branch's work
        pytest.xfail(f"the drills history does not read on this engine yet: {exc}")
    (tui_config.directory / "drills.yaml").write_text(DRILLS, encoding="utf-8")
    app = make_app(start="drills")
    async with app.run_test(size=(120, 40)) as pilot:
        screen = app.screen
        await wait_for(pilot, lambda: [r["name"] for r in screen.rows] == ["quarterly-failover"])
        assert "no drills recorded yet" in plain(screen.query_one("#drill-history"))
        done = cli_subprocess(
            "--config",
            str(tui_config.directory),
            "drill",
            "record",
            "quarterly-failover",
            "--participants",
            "ana,bob",
            "--notes",
            "walked through the failover",
        )
        assert done.returncode == 0, done.stderr
        await wait_for(
            pilot, lambda: "no drills recorded yet" not in plain(screen.query_one("#drill-history"))
        )
        assert "quarterly-failover" in plain(screen.query_one("#drill-history"))
