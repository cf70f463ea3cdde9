"""One scheduler per database, on both engines and across "hosts" (``--lock-host``)."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
from datetime import timedelta
from pathlib import Path

import pytest

from opsconsole.audit import AuditLog
from opsconsole.drills.lock import LEASE, SchedulerLock, SchedulerLocked
from opsconsole.leases import get
from opsconsole.store import open_db
from opsconsole.timeutil import isoformat, utcnow
from tests.drills.conftest import wait_for
from tests.helpers import SRC, cli_subprocess


@pytest.fixture(autouse=True)
def _on_both_engines(store_engine: str) -> str:
    """Every test here runs on SQLite and on PostgreSQL (see ``store_engine``)."""
    return store_engine


def _audit(db) -> AuditLog:  # type: ignore[no-untyped-def]
    return AuditLog(db, actor="scheduler", interface="scheduler")


def _plant_args(db, pid: int, host: str, pid_start: int | None, age: float = 0) -> None:  # type: ignore[no-untyped-def]
    beat = utcnow() - timedelta(seconds=age)
    db.execute("DELETE FROM leases WHERE name = 'scheduler'")
    db.execute(
        "INSERT INTO leases (name, token, account, host, pid, pid_start, acquired_at, "
        "heartbeat_at, expires_at, seconds) VALUES ('scheduler', 'other', 'scheduler', ?, ?, ?, "
        "?, ?, ?, 60)",
        (
            host,
            pid,
            pid_start,
            isoformat(beat),
            isoformat(beat),
            isoformat(beat + timedelta(seconds=60)),
        ),
    )


def test_second_scheduler_refuses_naming_the_first(db_path: Path) -> None:
    first_db = open_db(db_path)
    first = SchedulerLock(first_db)
    assert first.acquire(_audit(first_db)) is None
    second_db = open_db(db_path)
    second = SchedulerLock(second_db)
    with pytest.raises(SchedulerLocked) as err:
        second.acquire(_audit(second_db))
    msg = str(err.value)
    assert f"pid {os.getpid()}" in msg and socket.gethostname() in msg and "since 20" in msg
    first.release()
    assert second.acquire(_audit(second_db)) is None
    second.release()


def test_lock_of_a_dead_process_is_taken_over_at_once_on_its_host(db_path: Path) -> None:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    db = open_db(db_path)
    _plant_args(db, proc.pid, socket.gethostname(), None)
    lock = SchedulerLock(db)
    previous = lock.acquire(_audit(db))
    assert previous is not None and previous.holder.pid == proc.pid
    holder = lock.holder()
    assert holder is not None and holder.holder.pid == os.getpid()
    lock.release()


def test_reused_pid_is_not_mistaken_for_the_holder(db_path: Path) -> None:
    # Same pid as a running process (this one), but that process started at another time.
    db = open_db(db_path)
    _plant_args(db, os.getpid(), socket.gethostname(), 12345)
    lock = SchedulerLock(db)
    assert lock.acquire(_audit(db)) is not None
    lock.release()


def test_lock_from_another_host_is_taken_over_only_when_it_has_expired(db_path: Path) -> None:
    db = open_db(db_path)
    # pid 1 is alive here, but a pid from another host means nothing here either way.
    _plant_args(db, 1, "elsewhere.example", None, age=5)
    with pytest.raises(SchedulerLocked, match=r"elsewhere\.example"):
        SchedulerLock(db).acquire(_audit(db))
    _plant_args(db, 999_999, "elsewhere.example", None, age=5)  # no such pid here: still live
    with pytest.raises(SchedulerLocked, match=r"elsewhere\.example"):
        SchedulerLock(db).acquire(_audit(db))
    _plant_args(db, 1, "elsewhere.example", None, age=120)
    lock = SchedulerLock(db)
    previous = lock.acquire(_audit(db))
    assert previous is not None and previous.holder.host == "elsewhere.example"
    (details,) = [
        json.loads(r[0])
        for r in db.execute(
            "SELECT details FROM audit_events WHERE action = 'lease.taken_over'"
        ).fetchall()
    ]
    assert details["from"]["host"] == "elsewhere.example"
    assert details["to"]["host"] == socket.gethostname()
    assert details["stale_for_seconds"] >= 59 and "expired" in details["reason"]
    lock.release()


def _scheduler(config: Path, *args: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "opsconsole", "--config", str(config), "scheduler", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=dict(os.environ, PYTHONPATH=str(SRC)),
    )


def _holds(lock: SchedulerLock, proc: subprocess.Popen[str]) -> bool:
    """``proc`` holds the scheduler lease (fails at once, with its output, if it ended)."""
    if proc.poll() is not None:
        out, err = proc.communicate()
        pytest.fail(f"the scheduler exited {proc.returncode}: {out}{err}")
    holder = lock.holder()
    return holder is not None and holder.holder.pid == proc.pid


def test_real_scheduler_processes_lock_and_take_over_after_kill_9(
    drill_config: Path, db_path: Path
) -> None:
    (drill_config / "drills.yaml").write_text("drills: {}\n")
    first = _scheduler(drill_config)
    try:
        db = open_db(db_path)
        lock = SchedulerLock(db)
        wait_for(
            lambda: _holds(lock, first),
            what="the first scheduler to take the lock",
        )
        second = cli_subprocess("--config", str(drill_config), "scheduler", "--once")
        assert second.returncode == 7, second.stdout + second.stderr
        assert f"pid {first.pid}" in second.stderr and "since" in second.stderr
        assert "Traceback" not in second.stderr
        first.send_signal(signal.SIGKILL)
        first.wait(timeout=30)
        # Same host, holder gone: taken over at once, long before the lease expires.
        third = cli_subprocess("--config", str(drill_config), "scheduler", "--once")
        assert third.returncode == 0, third.stdout + third.stderr
        assert '"event": "scheduler.lock_takeover"' in third.stdout
        assert f"pid {first.pid}" in third.stdout
        assert lock.holder() is None  # --once released it
    finally:
        if first.poll() is None:
            first.kill()
            first.wait()


def test_lease_of_a_scheduler_stopped_by_the_heartbeat_is_lost_and_it_stops(
    drill_config: Path, db_path: Path
) -> None:
    """A scheduler whose lease was taken over (it looked dead) stops at its next beat."""
    (drill_config / "drills.yaml").write_text("drills: {}\nscheduler:\n  heartbeat_seconds: 0.2\n")
    first = _scheduler(drill_config)
    try:
        db = open_db(db_path)
        wait_for(lambda: get(db, LEASE) is not None, what="the first scheduler's lease")
        # What a takeover by another host leaves behind: the row holds someone else's token.
        db.execute("UPDATE leases SET token = 'theirs' WHERE name = 'scheduler'")
        out, err = first.communicate(timeout=60)
        assert first.returncode == 7, err
        assert '"event": "scheduler.lock_lost"' in out
    finally:
        if first.poll() is None:
            first.kill()
            first.wait()


def _age(db, name: str, seconds: float) -> None:  # type: ignore[no-untyped-def]
    """Move a lease's timestamps ``seconds`` into the past: as if its holder had been
    silent that much longer (the clock is the lease row's, so no test sleeps)."""
    lease = get(db, name)
    assert lease is not None
    back = timedelta(seconds=seconds)
    db.execute(
        "UPDATE leases SET acquired_at = ?, heartbeat_at = ?, expires_at = ? WHERE name = ?",
        [
            isoformat(lease.acquired_at - back),
            isoformat(lease.heartbeat_at - back),
            isoformat(lease.expires_at - back),
            name,
        ],
    )


def test_two_schedulers_on_two_hosts_against_one_database_run_once(
    drill_config: Path, db_path: Path
) -> None:
    (drill_config / "drills.yaml").write_text("drills: {}\n")
    racers = {host: _scheduler(drill_config, "--lock-host", host) for host in ("host-a", "host-b")}
    try:
        db = open_db(db_path)
        wait_for(
            lambda: any(p.poll() is not None for p in racers.values()),
            what="one of the two schedulers to give up",
        )
        (loser,) = [h for h, p in racers.items() if p.poll() is not None]
        (winner,) = [h for h in racers if h != loser]
        out, err = racers[loser].communicate()
        assert racers[loser].returncode == 7, out + err
        assert "another scheduler is running on this database" in err
        assert f"pid {racers[winner].pid} on {winner}" in err and "Traceback" not in err
        lease = get(db, LEASE)
        assert lease is not None and lease.holder.host == winner
        assert lease.holder.pid == racers[winner].pid
        starts = db.execute(
            "SELECT COUNT(*) FROM audit_events WHERE action = 'scheduler.start'"
        ).fetchone()[0]
        assert starts == 1
        racers[winner].send_signal(signal.SIGTERM)
        _, err = racers[winner].communicate(timeout=60)
        assert racers[winner].returncode == 0, err
        assert get(db, LEASE) is None
    finally:
        for proc in racers.values():
            if proc.poll() is None:
                proc.kill()
                proc.wait()


def test_killed_scheduler_on_another_host_is_taken_over_after_expiry_and_not_before(
    drill_config: Path, db_path: Path
) -> None:
    from opsconsole.leases import Holder, LeaseHeld, acquire

    (drill_config / "drills.yaml").write_text("drills: {}\n")
    first = _scheduler(drill_config, "--lock-host", "host-a", "--lock-stale-after", "3600")
    try:
        db = open_db(db_path)
        lock = SchedulerLock(db)
        wait_for(lambda: _holds(lock, first), what="the first scheduler to take the lease")
        first.send_signal(signal.SIGKILL)
        first.wait(timeout=30)
        held = get(db, LEASE)
        assert held is not None and held.holder.host == "host-a"
        # Not before expiry: its pid is dead, but it was held on another host, where pids
        # here mean nothing; its lease runs for an hour after its last heartbeat.
        second = cli_subprocess(
            "--config", str(drill_config), "scheduler", "--once", "--lock-host", "host-b"
        )
        assert second.returncode == 7, second.stdout + second.stderr
        assert f"pid {first.pid} on host-a" in second.stderr
        b = Holder("scheduler", "host-b", os.getpid(), None)
        with pytest.raises(LeaseHeld):  # one microsecond before its expiry, still live
            acquire(db, _audit(db), LEASE, b, now=held.expires_at - timedelta(microseconds=1))
        assert get(db, LEASE) == held
        # After expiry (an hour and a second of silence): host-b takes over, audited.
        _age(db, LEASE, 3601)
        third = cli_subprocess(
            "--config", str(drill_config), "scheduler", "--once", "--lock-host", "host-b"
        )
        assert third.returncode == 0, third.stdout + third.stderr
        assert '"event": "scheduler.lock_takeover"' in third.stdout
        (audited,) = [
            json.loads(r[0])
            for r in db.execute(
                "SELECT details FROM audit_events WHERE action = 'lease.taken_over'"
            ).fetchall()
        ]
        assert audited["from"]["host"] == "host-a" and audited["from"]["pid"] == first.pid
        assert audited["to"]["host"] == "host-b"
        assert audited["stale_for_seconds"] >= 1 and "expired" in audited["reason"]
    finally:
        if first.poll() is None:
            first.kill()
            first.wait()
