"""Who executes a run, across hosts (real processes, both engines): the run's lease.

Two hosts are played by two values of ``OPSCONSOLE_LEASE_HOST`` (pids are only compared
between holders under the same host name). Expiry is controlled through the lease row's
own timestamps (settings ``lease_seconds: 3600``, then the row is aged), never by sleeps.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from datetime import timedelta
from pathlib import Path

import pytest

from opsconsole import leases
from opsconsole.store import open_db
from opsconsole.timeutil import isoformat
from tests.drills.conftest import wait_for
from tests.helpers import SRC, cli_subprocess

RUNBOOK = """\
name: slow-change
lock: slow-change
steps:
  - id: one
    shell: "echo ran >> {d}/one"
  - id: two
    shell: "echo start >> {d}/two; sleep $(cat {d}/delay); echo end >> {d}/two"
"""


@pytest.fixture(autouse=True)
def _on_both_engines(store_engine: str) -> str:
    """Every test here runs on SQLite and on PostgreSQL (see ``store_engine``)."""
    return store_engine


def _takeovers(db) -> list[dict]:  # type: ignore[no-untyped-def]
    return [
        json.loads(r[0])
        for r in db.execute(
            "SELECT details FROM audit_events WHERE action = 'lease.taken_over'"
        ).fetchall()
    ]


def _runbook(config_dir: Path, host: str, *args: str) -> subprocess.CompletedProcess[str]:
    return cli_subprocess(
        "--config", str(config_dir), "runbook", *args, env={"OPSCONSOLE_LEASE_HOST": host}
    )


def _step(db, name: str) -> str | None:  # type: ignore[no-untyped-def]
    row = db.execute("SELECT status FROM run_steps WHERE step_id = ?", [name]).fetchone()
    return row[0] if row else None


def _start_on_host_a(tmp_path: Path, config_dir: Path) -> tuple[Path, subprocess.Popen[str]]:
    """``runbook run`` as a process on "host-a", with leases that live an hour."""
    from opsconsole.capabilities import register_all

    register_all()  # the test process opens the same database
    (config_dir / "settings.yaml").write_text("lease_seconds: 3600\n")
    work = tmp_path / "work"
    work.mkdir()
    (work / "delay").write_text("600")  # shortened through this file before a resume
    rb = tmp_path / "slow.yaml"
    rb.write_text(RUNBOOK.format(d=work))
    argv = ["--config", str(config_dir), "runbook", "run", str(rb), "--yes"]
    engine = subprocess.Popen(
        [sys.executable, "-m", "opsconsole", *argv],
        env=dict(os.environ, PYTHONPATH=str(SRC), OPSCONSOLE_LEASE_HOST="host-a"),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        stdin=subprocess.DEVNULL,
        text=True,
        start_new_session=True,
    )
    return work, engine


def test_a_run_killed_on_one_host_is_resumed_from_another_after_expiry_and_not_before(
    tmp_path: Path, config_dir: Path, db_path: Path
) -> None:
    work, engine = _start_on_host_a(tmp_path, config_dir)
    try:
        db = open_db(db_path)
        wait_for(lambda: _step(db, "two") == "running", what="step two to run on host-a")
        (run_id,) = db.execute("SELECT id FROM runs").fetchone()
        os.kill(engine.pid, signal.SIGKILL)
        engine.wait(timeout=30)
        held = leases.get(db, f"run:{run_id}")
        assert held is not None and held.holder.host == "host-a"
        assert held.holder.pid == engine.pid

        # Not before expiry: host-b cannot judge host-a's pid, the lease is live for an hour.
        locks = json.loads(_runbook(config_dir, "host-b", "locks", "--json").stdout)
        assert [(lk["key"], lk["stale"]) for lk in locks] == [("slow-change", False)]
        refused = _runbook(config_dir, "host-b", "resume", run_id, "--yes")
        assert refused.returncode == 7, refused.stdout + refused.stderr
        assert f"is being resumed by pid {engine.pid} on host-a" in refused.stderr
        unlock = _runbook(config_dir, "host-b", "unlock", "slow-change")
        assert unlock.returncode == 7 and "--force" in unlock.stderr, unlock.stderr

        # After expiry: an hour and a second of silence, as the lease row tells it.
        back = timedelta(seconds=3601)
        db.execute(
            "UPDATE leases SET heartbeat_at = ?, expires_at = ? WHERE name = ?",
            [isoformat(held.heartbeat_at - back), isoformat(held.expires_at - back), held.name],
        )
        locks = json.loads(_runbook(config_dir, "host-b", "locks", "--json").stdout)
        assert [(lk["key"], lk["stale"]) for lk in locks] == [("slow-change", True)]
        (work / "delay").write_text("0")
        resumed = _runbook(config_dir, "host-b", "resume", run_id, "--yes")
        assert resumed.returncode == 0, resumed.stdout + resumed.stderr
        assert (work / "one").read_text() == "ran\n"
        assert (work / "two").read_text() == "start\nstart\nend\n"
        (audited,) = _takeovers(db)
        assert audited["from"]["host"] == "host-a" and audited["from"]["pid"] == engine.pid
        assert audited["to"]["host"] == "host-b"
        assert audited["stale_for_seconds"] >= 1 and "expired" in audited["reason"]
        assert leases.get(db, f"run:{run_id}") is None  # released when the run finished
        assert db.execute("SELECT status FROM runs").fetchone()[0] == "succeeded"
    finally:
        if engine.poll() is None:
            engine.kill()
            engine.wait()


def test_on_its_own_host_a_killed_runs_lease_is_taken_over_at_once(
    tmp_path: Path, config_dir: Path, db_path: Path
) -> None:
    """The fast path: same host name, the holder's pid is gone - no waiting for expiry."""
    work, engine = _start_on_host_a(tmp_path, config_dir)
    try:
        db = open_db(db_path)
        wait_for(lambda: _step(db, "two") == "running", what="step two to run")
        (run_id,) = db.execute("SELECT id FROM runs").fetchone()
        os.kill(engine.pid, signal.SIGKILL)
        engine.wait(timeout=30)
        (work / "delay").write_text("0")
        resumed = _runbook(config_dir, "host-a", "resume", run_id, "--yes")
        assert resumed.returncode == 0, resumed.stdout + resumed.stderr
        (audited,) = _takeovers(db)
        assert audited["reason"] == "holder process is gone"
        assert audited["from"]["pid"] == engine.pid and audited["stale_for_seconds"] == 0
    finally:
        if engine.poll() is None:
            engine.kill()
            engine.wait()
