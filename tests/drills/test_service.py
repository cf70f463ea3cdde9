"""The scheduler service: real ``opsconsole scheduler`` processes, real runbook runs,
results awaited by polling the database (never by fixed sleeps)."""

from __future__ import annotations

import itertools
import json
import os
import signal
import subprocess
import sys
from collections.abc import Callable
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import sqlite_utils

from opsconsole import identity
from opsconsole.audit import AuditLog, query
from opsconsole.config import load_config
from opsconsole.drills import plans, store
from opsconsole.drills.service import DrillScheduler
from opsconsole.store import open_db
from opsconsole.timeutil import isoformat, utcnow
from tests.drills.conftest import wait_for
from tests.helpers import SRC, cli_subprocess

# Subprocess start-up on a busy CI machine can take tens of seconds: generous limits.
pytestmark = pytest.mark.timeout(600)

LIVE = """\
  {name}:
    plan: payments-bcp
    kind: live
    owner: sre
    runbook: {runbook}
    params: {{region: demo-a{extra}}}
    target: demo-a
    schedule: {schedule}
    objectives: {{rto_seconds: 60}}
"""


def drills_yaml(*drills: str, grace: float = 3600, reload: float = 0.3) -> str:
    head = f"scheduler:\n  misfire_grace_seconds: {grace}\n  reload_seconds: {reload}\n"
    return head + "drills:\n" + "".join(drills) if drills else head + "drills: {}\n"


def live(name: str, schedule: str, *, runbook: str = "quick-recovery", delay: float = 0) -> str:
    extra = f", delay: '{delay}'" if delay else ""
    return LIVE.format(name=name, runbook=runbook, schedule=schedule, extra=extra)


def at(seconds: float) -> str:
    return "{at: '" + isoformat(utcnow() + timedelta(seconds=seconds)) + "'}"


class Scheduler:
    """An ``opsconsole scheduler`` subprocess whose JSON log goes to a file."""

    def __init__(self, config: Path, log: Path, *args: str) -> None:
        self.log = log
        env = dict(os.environ, PYTHONPATH=str(SRC))
        self.out = log.open("w")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "opsconsole", "--config", str(config), "scheduler", *args],
            stdout=self.out,
            stderr=subprocess.STDOUT,
            text=True,
            env=env,
        )

    def events(self) -> list[dict[str, Any]]:
        out = []
        for line in self.log.read_text().splitlines():
            if line.startswith("{"):
                out.append(json.loads(line))
        return out

    def wait_event(self, name: str, timeout: float = 240) -> dict[str, Any]:
        def logged() -> dict[str, Any] | None:
            found = next((e for e in self.events() if e["event"] == name), None)
            if found is None and self.proc.poll() is not None:
                found = next((e for e in self.events() if e["event"] == name), None)
                if found is None:  # it will never come: fail now, not after the deadline
                    raise AssertionError(
                        f"scheduler exited {self.proc.returncode} before logging {name}: "
                        f"{self.log.read_text()[-2000:]}"
                    )
            return found

        return wait_for(logged, timeout=timeout, what=f"log event {name}: {self.log}")

    def stop(self, timeout: float = 240) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        code = self.proc.wait(timeout=timeout)
        self.out.close()
        return code

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        self.out.close()


@pytest.fixture
def scheduler(drill_config: Path, tmp_path: Path):  # type: ignore[no-untyped-def]
    started: list[Scheduler] = []

    def start(*args: str) -> Scheduler:
        s = Scheduler(drill_config, tmp_path / f"scheduler-{len(started)}.log", *args)
        started.append(s)
        return s

    yield start
    for s in started:
        s.kill()


def runs(db_path: Path, drill: str | None = None) -> list[store.DrillRun]:
    return store.history(open_db(db_path), drill)


def finished(db_path: Path, drill: str, status: str | None = None) -> list[store.DrillRun]:
    """Runs of ``drill`` that have a verdict (optionally only those with ``status``)."""
    return [
        r
        for r in runs(db_path, drill)
        if r.status not in ("running", "missed") and status in (None, r.status)
    ]


def test_scheduler_fires_a_due_cron_drill_and_records_measured_rto(
    drill_config: Path, db_path: Path, scheduler
) -> None:
    (drill_config / "drills.yaml").write_text(
        drills_yaml(live("every3s", "{cron: '*/3 * * * * *'}"))
    )
    s = scheduler()
    [run] = wait_for(lambda: finished(db_path, "every3s"), what="a scheduled drill result")[:1]
    assert run.status == "passed", run
    # The scheduler's identity: "scheduler" on SQLite, its own database role on PostgreSQL.
    assert run.actor == identity.service(db=open_db(db_path)).name
    assert run.kind == "live" and run.interface == "scheduler"
    assert run.trigger == "schedule" and run.scheduled_for is not None
    assert run.scheduled_for.second % 3 == 0
    assert run.rto_seconds is not None and 0 < run.rto_seconds < 60 and run.rto_met is True
    assert run.run_id and run.run_status == "succeeded"
    assert s.stop() == 0
    names = [e["event"] for e in s.events()]
    for expected in (
        "scheduler.started",
        "drill.scheduled",
        "drill.run.started",
        "drill.run.finished",
        "scheduler.stopping",
        "scheduler.stopped",
    ):
        assert expected in names, names
    db = open_db(db_path)
    audited = query(db, action="drill.run.")
    assert audited and {e["interface"] for e in audited} == {"scheduler"}
    assert [e["action"] for e in query(db, action="scheduler.")][:1] == ["scheduler.start"]
    assert db.execute("SELECT COUNT(*) FROM leases WHERE name = 'scheduler'").fetchone()[0] == 0


def test_drill_missed_across_a_scheduler_restart_is_recorded_missed(
    drill_config: Path, db_path: Path, scheduler
) -> None:
    (drill_config / "drills.yaml").write_text(
        drills_yaml(live("every3s", "{cron: '*/3 * * * * *'}"), grace=1)
    )
    first = scheduler()
    wait_for(lambda: finished(db_path, "every3s"), what="a first scheduled run")
    assert first.stop() == 0
    last = max(r.scheduled_for for r in runs(db_path, "every3s") if r.scheduled_for)
    # While no scheduler runs, let at least one due date pass beyond the 1 s grace.
    wait_for(lambda: utcnow() > last + timedelta(seconds=3 + 1 + 0.5), what="time to pass")
    again = cli_subprocess("--config", str(drill_config), "scheduler", "--once", timeout=300)
    assert again.returncode == 0, again.stdout + again.stderr
    after = [r for r in runs(db_path, "every3s") if r.scheduled_for and r.scheduled_for > last]
    assert after, "the due dates after the restart were dropped"
    missed = [r for r in after if r.status == "missed"]
    assert missed and missed[0].scheduled_for == last + timedelta(seconds=3)
    assert "no scheduler ran it" in (missed[0].reason or "")
    # Every due date between is accounted for, each exactly once.
    dues = [r.scheduled_for for r in after]
    assert dues == sorted(set(dues))
    assert all(b - a == timedelta(seconds=3) for a, b in itertools.pairwise(dues))
    events = [json.loads(line) for line in again.stdout.splitlines() if line.startswith("{")]
    assert any(e["event"] == "drill.missed" for e in events)
    assert query(open_db(db_path), action="drill.missed")[0]["interface"] == "scheduler"


def test_drill_due_while_down_runs_once_at_start_if_within_grace(
    drill_config: Path, db_path: Path
) -> None:
    # Written by hand while no scheduler runs; due one second later.
    due = utcnow() + timedelta(seconds=1)
    (drill_config / "drills.yaml").write_text(
        drills_yaml(live("soon", "{at: '" + isoformat(due) + "'}"), grace=3600)
    )
    wait_for(lambda: utcnow() > due, what="the due date to pass")
    res = cli_subprocess("--config", str(drill_config), "scheduler", "--once", timeout=300)
    assert res.returncode == 0, res.stdout + res.stderr
    [run] = runs(db_path, "soon")
    assert run.status == "passed" and run.scheduled_for == due.replace(microsecond=due.microsecond)
    res = cli_subprocess("--config", str(drill_config), "scheduler", "--once", timeout=300)
    assert res.returncode == 0
    assert len(runs(db_path, "soon")) == 1, "a due date ran twice"


def test_jobs_are_rebuilt_when_drills_yaml_changes(
    drill_config: Path, db_path: Path, scheduler
) -> None:
    (drill_config / "drills.yaml").write_text(drills_yaml())
    s = scheduler()
    s.wait_event("scheduler.started")
    (drill_config / "drills.yaml").write_text(drills_yaml(live("added", at(2))))
    [run] = wait_for(lambda: finished(db_path, "added"), what="the added drill to run")
    assert run.status == "passed"
    assert "drills.reloaded" in [e["event"] for e in s.events()]
    (drill_config / "drills.yaml").write_text("drills: {broken\n")
    s.wait_event("drills.invalid")
    assert s.proc.poll() is None, "an invalid edit must not stop the scheduler"
    assert s.stop() == 0


def test_sigterm_lets_the_running_drill_finish(
    drill_config: Path, db_path: Path, scheduler
) -> None:
    (drill_config / "drills.yaml").write_text(drills_yaml(live("slow", at(1), delay=3)))
    s = scheduler()
    wait_for(
        lambda: [r for r in runs(db_path, "slow") if r.status == "running"],
        what="the drill to start",
    )
    s.proc.send_signal(signal.SIGTERM)
    assert s.proc.wait(timeout=240) == 0  # one signal only: the drill may finish
    [run] = runs(db_path, "slow")
    assert run.status == "passed", run


def test_second_signal_interrupts_the_drill_and_leaves_it_resumable(
    drill_config: Path, db_path: Path, scheduler
) -> None:
    (drill_config / "drills.yaml").write_text(drills_yaml(live("long", at(1), delay=120)))
    s = scheduler()
    db = open_db(db_path)
    wait_for(
        lambda: db.execute(
            "SELECT 1 FROM run_steps WHERE step_id = 'work' AND status = 'running'"
        ).fetchone(),
        what="the long step to run",
    )
    s.proc.send_signal(signal.SIGTERM)
    s.wait_event("scheduler.stopping")
    s.proc.send_signal(signal.SIGTERM)
    assert s.stop() == 0
    [run] = runs(db_path, "long")
    assert run.status == "interrupted", run
    assert run.run_id
    status, error = db.execute(
        "SELECT status, error FROM runs WHERE id = ?", [run.run_id]
    ).fetchone()
    assert status == "interrupted" and "resume" in error


def test_drill_needing_a_person_fails_with_the_step_named(
    drill_config: Path, db_path: Path, scheduler
) -> None:
    (drill_config / "drills.yaml").write_text(
        drills_yaml(live("person", at(1), runbook="needs-person"))
    )
    s = scheduler()
    [run] = wait_for(lambda: finished(db_path, "person"), what="the drill result")
    assert run.status == "failed"
    assert (run.reason or "").startswith("needs a person at step confirm"), run.reason
    followups = plans.followups(open_db(db_path), open_only=True)
    assert followups[0].owner == "sre" and "needs a person" in followups[0].action
    assert s.stop() == 0


def _in_process_scheduler(
    drill_config: Path,
    db_path: Path,
    drills_text: str,
    since: datetime,
    log: Callable[..., None] = lambda *a, **k: None,
) -> tuple[sqlite_utils.Database, DrillScheduler]:
    """A scheduler driven by hand through ``claim``, its drills counted from ``since``."""
    (drill_config / "drills.yaml").write_text(drills_text)
    db = open_db(db_path)
    svc = DrillScheduler(
        db=db,
        audit=AuditLog(db, actor="scheduler", interface="scheduler"),
        load_config=lambda: load_config(drill_config),
        log=log,
    )
    svc.load()
    db.execute("UPDATE drill_anchors SET since = ?", [isoformat(since)])
    return db, svc


def test_claim_accounts_for_every_due_date_once(drill_config: Path, db_path: Path) -> None:
    t0 = utcnow().replace(minute=0, second=0, microsecond=0) - timedelta(days=1)
    db, svc = _in_process_scheduler(
        drill_config, db_path, drills_yaml(live("hourly", "{cron: '0 * * * *'}"), grace=600), t0
    )
    # Three due dates passed; the last one 5 minutes ago (within the 10-minute grace).
    run = svc.claim("hourly", now=t0 + timedelta(hours=3, minutes=5))
    assert run is not None and run.status == "running"
    assert run.scheduled_for == t0 + timedelta(hours=3)
    missed = [r for r in store.history(db, "hourly") if r.status == "missed"]
    assert [r.scheduled_for for r in missed] == [t0 + timedelta(hours=1), t0 + timedelta(hours=2)]
    # Nothing new is due: a second claim does nothing.
    assert svc.claim("hourly", now=t0 + timedelta(hours=3, minutes=6)) is None
    # Far beyond grace: recorded missed, not run.
    assert svc.claim("hourly", now=t0 + timedelta(hours=4, minutes=30)) is None
    by_due = {r.scheduled_for: r.status for r in store.history(db, "hourly")}
    assert by_due == {
        t0 + timedelta(hours=1): "missed",
        t0 + timedelta(hours=2): "missed",
        t0 + timedelta(hours=3): "running",
        t0 + timedelta(hours=4): "missed",
    }


def test_claim_of_a_tabletop_drill_only_reminds(drill_config: Path, db_path: Path) -> None:
    logged: list[tuple[str, dict[str, Any]]] = []
    t0 = utcnow().replace(hour=0, minute=0, second=0, microsecond=0) - timedelta(days=2)
    db, svc = _in_process_scheduler(
        drill_config,
        db_path,
        "drills:\n  tt:\n    plan: p\n    kind: tabletop\n    owner: ana\n"
        "    schedule: {cron: '0 10 * * *'}\n",
        t0,
        log=lambda event, **fields: logged.append((event, fields)),
    )
    assert svc.claim("tt", now=t0 + timedelta(days=1, hours=11)) is None
    assert store.history(db, "tt") == []
    assert [e for e, _ in logged] == ["drill.due"]
    assert "drill record tt" in logged[0][1]["hint"]
    assert query(db, action="drill.due")[0]["interface"] == "scheduler"
    # Reminded once per due date.
    assert svc.claim("tt", now=t0 + timedelta(days=1, hours=12)) is None
    assert len(logged) == 1


def test_due_date_while_the_previous_run_is_still_going_is_missed(
    drill_config: Path, db_path: Path
) -> None:
    t0 = utcnow().replace(minute=0, second=0, microsecond=0) - timedelta(days=1)
    db, svc = _in_process_scheduler(
        drill_config, db_path, drills_yaml(live("hourly", "{cron: '0 * * * *'}"), grace=600), t0
    )
    assert svc.claim("hourly", now=t0 + timedelta(hours=1, minutes=1), busy=True) is None
    [run] = store.history(db, "hourly")
    assert run.status == "missed" and "still running" in (run.reason or "")
