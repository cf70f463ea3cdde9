from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
from datetime import timedelta
from pathlib import Path

import pytest

from opsconsole.drills.lock import SchedulerLock, SchedulerLocked, pid_alive
from opsconsole.store import open_db
from opsconsole.timeutil import isoformat, utcnow
from tests.drills.conftest import wait_for
from tests.helpers import SRC, cli_subprocess


def _plant(db, *, pid: int, host: str, proc_started: float | None, age: float = 0) -> None:
    when = isoformat(utcnow() - timedelta(seconds=age))
    db.execute(
        "INSERT OR REPLACE INTO scheduler_lock (id, token, pid, host, proc_started, since, "
        "heartbeat) VALUES (1, 'other', ?, ?, ?, ?, ?)",
        (pid, host, proc_started, when, when),
    )


def test_second_scheduler_refuses_naming_the_first(db_path: Path) -> None:
    first = SchedulerLock(open_db(db_path))
    assert first.acquire() is None
    second = SchedulerLock(open_db(db_path))
    with pytest.raises(SchedulerLocked) as err:
        second.acquire()
    msg = str(err.value)
    assert f"pid {os.getpid()}" in msg and socket.gethostname() in msg and "since 20" in msg
    first.release()
    assert second.acquire() is None


def test_lock_of_a_dead_process_is_taken_over(db_path: Path) -> None:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    assert not pid_alive(proc.pid)
    db = open_db(db_path)
    _plant(db, pid=proc.pid, host=socket.gethostname(), proc_started=None)
    lock = SchedulerLock(db)
    previous = lock.acquire()
    assert previous is not None and previous.pid == proc.pid
    assert lock.holder() is not None and lock.holder().pid == os.getpid()


def test_reused_pid_is_not_mistaken_for_the_holder(db_path: Path) -> None:
    # Same pid as a running process, but that process started at another time.
    db = open_db(db_path)
    _plant(db, pid=os.getpid(), host=socket.gethostname(), proc_started=12345.0)
    assert SchedulerLock(db).acquire() is not None


def test_lock_from_another_host_is_taken_over_only_when_its_heartbeat_is_stale(
    db_path: Path,
) -> None:
    db = open_db(db_path)
    _plant(db, pid=1, host="elsewhere.example", proc_started=None, age=5)
    with pytest.raises(SchedulerLocked, match=r"elsewhere\.example"):
        SchedulerLock(db, stale_after=60).acquire()
    _plant(db, pid=1, host="elsewhere.example", proc_started=None, age=120)
    assert SchedulerLock(db, stale_after=60).acquire() is not None


def test_real_scheduler_processes_lock_and_take_over_after_kill_9(
    drill_config: Path, db_path: Path
) -> None:
    (drill_config / "drills.yaml").write_text("drills: {}\n")
    env = dict(os.environ, PYTHONPATH=str(SRC))
    first = subprocess.Popen(
        [sys.executable, "-m", "opsconsole", "--config", str(drill_config), "scheduler"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )
    try:
        db = open_db(db_path)
        lock = SchedulerLock(db)
        wait_for(
            lambda: lock.holder() is not None and lock.holder().pid == first.pid,
            what="the first scheduler to take the lock",
        )
        second = cli_subprocess("--config", str(drill_config), "scheduler", "--once")
        assert second.returncode == 7, second.stdout + second.stderr
        assert f"pid {first.pid}" in second.stderr and "since" in second.stderr
        assert "Traceback" not in second.stderr
        first.send_signal(signal.SIGKILL)
        first.wait(timeout=30)
        third = cli_subprocess("--config", str(drill_config), "scheduler", "--once")
        assert third.returncode == 0, third.stdout + third.stderr
        assert '"event": "scheduler.lock_takeover"' in third.stdout
        assert f"pid {first.pid}" in third.stdout
        assert lock.holder() is None  # --once released it
    finally:
        if first.poll() is None:
            first.kill()
            first.wait()
