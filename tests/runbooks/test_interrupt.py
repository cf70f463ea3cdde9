"""Ctrl-C during a step: the process group is killed, the operator is asked whether to
roll back, and the run ends in a known, recorded state."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from tests.helpers import SRC
from tests.runbooks.test_durability import _step_status, _wait_for

RUNBOOK = """\
name: ctrlc
steps:
  - {{id: first, shell: "echo first >> {d}/log"}}
  - {{id: long, shell: "echo $$ > {d}/long.pid; sleep 60"}}
  - {{id: never, shell: "echo never >> {d}/log"}}
rollback:
  - {{id: undo-first, undoes: first, shell: "echo undo-first >> {d}/log"}}
"""


@pytest.mark.slow
@pytest.mark.parametrize(
    ("answer", "code", "status"), [("y", 12, "rolled_back"), ("n", 14, "interrupted")]
)
def test_ctrl_c_asks_to_roll_back_and_leaves_a_known_state(
    tmp_path: Path, config_dir: Path, db_path: Path, answer: str, code: int, status: str
) -> None:
    from opsconsole.runbooks.locks import pid_alive

    (tmp_path / "rb.yaml").write_text(RUNBOOK.format(d=tmp_path))
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
            str(tmp_path / "rb.yaml"),
        ],
        env=env,
        # As in a terminal: SIGINT at its default, whatever earlier tests in this process
        # did to the disposition the child would otherwise inherit (an ignored SIGINT
        # stays ignored across exec, and Python then never raises KeyboardInterrupt).
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        _wait_for(
            lambda: _step_status(db_path, "long") == "running" and (tmp_path / "long.pid").exists(),
            "the long step to run",
        )
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(answer + "\n", timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == code, err
    assert "Roll back" in err
    child = int((tmp_path / "long.pid").read_text())
    assert not pid_alive(child), "the step's process group must be killed"
    with sqlite3.connect(db_path) as conn:
        run_status = conn.execute("SELECT status FROM runs").fetchone()[0]
        steps = dict(conn.execute("SELECT step_id, status FROM run_steps").fetchall())
    assert run_status == status
    assert steps["long"] == "interrupted" and steps["never"] == "pending"
    expected = ["first", "undo-first"] if answer == "y" else ["first"]
    assert (tmp_path / "log").read_text().split() == expected
