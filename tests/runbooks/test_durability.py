"""kill -9 at any point, then resume: finished steps never re-run; an interrupted step
re-runs only if idempotent or the operator says so."""

from __future__ import annotations

import contextlib
import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

from opsconsole.errors import OpsError
from tests.helpers import SRC, cli_subprocess, opened

RUNBOOK = """\
name: durable
steps:
  - id: one
    shell: "echo ran >> {d}/one"
  - id: two
    idempotent: {idem}
    shell: >-
      echo $$ > {d}/two.pid; echo start >> {d}/two; sleep $(cat {d}/delay);
      echo end >> {d}/two
  - id: three
    shell: "echo ran >> {d}/three"
"""


def _wait_for(predicate, what: str, deadline: float = 30.0) -> None:  # type: ignore[no-untyped-def]
    end = time.monotonic() + deadline
    while time.monotonic() < end:
        if predicate():
            return
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


def _step_status(db: Path, step: str) -> str | None:
    try:
        with opened(db) as conn:
            row = conn.execute("SELECT status FROM run_steps WHERE step_id = ?", [step]).fetchone()
    except (sqlite3.Error, OpsError):
        return None
    return row[0] if row else None


def _start_and_kill(tmp_path: Path, config_dir: Path, db_path: Path, idem: bool) -> str:
    work = tmp_path / "work"
    work.mkdir()
    rb = tmp_path / "durable.yaml"
    rb.write_text(RUNBOOK.format(d=work, idem=str(idem).lower()))
    (work / "delay").write_text("60")  # shortened later through this file, not the run row
    env = dict(os.environ, PYTHONPATH=str(SRC), OPSCONSOLE_DB=str(db_path))
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "opsconsole",
            "--config",
            str(config_dir),
            "runbook",
            "run",
            str(rb),
            "--yes",
        ],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        _wait_for(
            lambda: _step_status(db_path, "two") == "running" and (work / "two.pid").exists(),
            "step two to be running",
        )
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=10)
    finally:
        if proc.poll() is None:
            proc.kill()
        # The step's shell was in its own session and outlives the killed runner; end it.
        with contextlib.suppress(OSError, ValueError):
            os.killpg(int((work / "two.pid").read_text()), signal.SIGKILL)
    with opened(db_path) as conn:
        run_id, status = conn.execute("SELECT id, status FROM runs").fetchone()
    assert status == "running"  # what the killed process left behind
    return run_id


@pytest.mark.slow
def test_kill_9_mid_step_then_resume_skips_finished_and_asks_about_interrupted(
    tmp_path: Path, config_dir: Path, db_path: Path
) -> None:
    run_id = _start_and_kill(tmp_path, config_dir, db_path, idem=False)
    work = tmp_path / "work"
    # "Run it again?" -> no; "Treat it as done?" -> yes.
    proc = cli_subprocess(
        "--config",
        str(config_dir),
        "runbook",
        "resume",
        run_id,
        input="n\ny\n",
        env={"OPSCONSOLE_DB": str(db_path)},
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "was interrupted while running" in proc.stderr
    assert (work / "one").read_text() == "ran\n"  # finished step: not re-run
    assert (work / "two").read_text() == "start\n"  # not re-run, as the operator chose
    assert (work / "three").read_text() == "ran\n"
    with opened(db_path) as conn:
        steps = dict(conn.execute("SELECT step_id, status FROM run_steps").fetchall())
        actions = [r[0] for r in conn.execute("SELECT action FROM audit_events ORDER BY seq")]
    assert steps == {"one": "succeeded", "two": "skipped", "three": "succeeded"}
    assert "runbook.step.interrupted" in actions
    assert "runbook.run.resumed" in actions


@pytest.mark.slow
def test_kill_9_then_resume_reruns_an_idempotent_step_without_asking(
    tmp_path: Path, config_dir: Path, db_path: Path
) -> None:
    run_id = _start_and_kill(tmp_path, config_dir, db_path, idem=True)
    work = tmp_path / "work"
    rb = tmp_path / "durable.yaml"
    # Shorten the step so the re-run finishes (the stored run itself cannot be edited:
    # a resume refuses a run whose text differs from what its start recorded).
    (work / "delay").write_text("0")
    assert rb.exists()
    proc = cli_subprocess(
        "--config",
        str(config_dir),
        "runbook",
        "resume",
        run_id,
        input="",
        env={"OPSCONSOLE_DB": str(db_path)},
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert (work / "one").read_text() == "ran\n"
    assert (work / "two").read_text() == "start\nstart\nend\n"
    assert (work / "three").read_text() == "ran\n"
    # Resuming a finished run is refused.
    again = cli_subprocess(
        "--config",
        str(config_dir),
        "runbook",
        "resume",
        run_id,
        env={"OPSCONSOLE_DB": str(db_path)},
    )
    assert again.returncode != 0
    assert "already finished" in again.stderr


async def test_resume_refuses_while_the_original_process_is_alive(env, operator, write_runbook):
    from opsconsole.runbooks import RunbookRunError, resume_run, start_run

    rb = write_runbook("""
        name: live
        steps:
          - {id: a, shell: "true"}
        """)
    result = await start_run(rb, {}, env=env, operator=operator)
    # Pretend it is still running in another live process (our parent), with that
    # process's start time (an owner is recognised by pid *and* start time).
    from opsconsole import leases
    from opsconsole.runbooks.procs import proc_start

    env.db.execute(
        "UPDATE runs SET status = 'running', pid = ?, pid_start = ? WHERE id = ?",
        [os.getppid(), proc_start(os.getppid()), result.run_id],
    )
    parent = leases.Holder("alice", leases.local_host(), os.getppid(), proc_start(os.getppid()))
    leases.acquire(env.db, env.audit, f"run:{result.run_id}", parent)  # the owner's lease
    with pytest.raises(RunbookRunError, match=f"being resumed by pid {os.getppid()} on "):
        await resume_run(result.run_id, env=env, operator=operator)
