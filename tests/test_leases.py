"""Leases (``opsconsole.leases``) on both engines: compare-and-set, expiry judged by the
lease row's own timestamps (no sleeps), the same-host dead-pid fast path, heartbeats,
audited takeovers, and the migration of an existing SQLite database."""

from __future__ import annotations

import json
import os
import socket
import sqlite3
import subprocess
import sys
import time
from datetime import timedelta
from pathlib import Path

import pytest

from opsconsole import leases
from opsconsole.audit import AuditLog
from opsconsole.leases import Holder, LeaseHeld
from opsconsole.runbooks.procs import proc_start
from opsconsole.store import open_db

MICRO = timedelta(microseconds=1)


@pytest.fixture(autouse=True)
def _on_both_engines(store_engine: str) -> str:
    """Every test here runs on SQLite and on PostgreSQL (see ``store_engine``)."""
    return store_engine


@pytest.fixture
def db(db_path: Path):  # type: ignore[no-untyped-def]
    from opsconsole.capabilities import register_all

    register_all()
    database = open_db(db_path)
    yield database
    database.close()


def _audit(db, actor: str = "alice") -> AuditLog:  # type: ignore[no-untyped-def]
    return AuditLog(db, actor=actor, interface="cli")


def _takeovers(db) -> list[dict]:  # type: ignore[no-untyped-def]
    return [
        json.loads(r[0])
        for r in db.execute(
            "SELECT details FROM audit_events WHERE action = 'lease.taken_over' ORDER BY seq"
        ).fetchall()
    ]


def _dead_pid() -> tuple[int, int | None]:
    proc = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])
    start = proc_start(proc.pid)
    proc.kill()
    proc.wait()
    return proc.pid, start


def test_a_live_lease_is_refused_naming_its_holder(db) -> None:
    first = leases.acquire(db, _audit(db), "thing", Holder.me("alice"), seconds=600)
    with pytest.raises(LeaseHeld) as err:
        leases.acquire(db, _audit(db, "bob"), "thing", Holder.me("bob"))
    text = str(err.value)
    assert f"alice (pid {os.getpid()} on {socket.gethostname()})" in text and "since 20" in text
    assert err.value.exit_code == 7
    assert leases.get(db, "thing") == first.lease  # unchanged


def test_another_hosts_lease_is_taken_over_at_its_expiry_and_not_before(db) -> None:
    # A pid that is alive here (ours) and one that is not: from another host, neither counts.
    for pid in (os.getpid(), _dead_pid()[0]):
        db.execute("DELETE FROM leases")
        held = leases.acquire(
            db, _audit(db), "thing", Holder("alice", "host-a", pid, None), seconds=30
        ).lease
        b = Holder("bob", "host-b", os.getpid(), proc_start(os.getpid()))
        with pytest.raises(LeaseHeld, match="host-a"):
            leases.acquire(db, _audit(db, "bob"), "thing", b, now=held.expires_at - MICRO)
        taken = leases.acquire(db, _audit(db, "bob"), "thing", b, now=held.expires_at)
        assert taken.previous == held and "expired" in (taken.reason or "")
        assert leases.get(db, "thing") == taken.lease
    last = _takeovers(db)[-1]
    assert last["from"]["host"] == "host-a" and last["from"]["account"] == "alice"
    assert last["to"]["host"] == "host-b" and last["to"]["account"] == "bob"
    assert last["stale_for_seconds"] == 0 and last["silent_for_seconds"] == 30
    assert "expired" in last["reason"]


def test_on_its_host_a_dead_holder_is_taken_over_at_once(db) -> None:
    pid, start = _dead_pid()
    here = leases.local_host()
    held = leases.acquire(
        db, _audit(db), "thing", Holder("alice", here, pid, start), seconds=3600
    ).lease
    taken = leases.acquire(db, _audit(db, "bob"), "thing", Holder.me("bob"))
    assert taken.previous == held and taken.reason == "holder process is gone"
    (audited,) = _takeovers(db)
    assert audited["from"]["pid"] == pid and audited["reason"] == "holder process is gone"
    assert audited["stale_for_seconds"] == 0  # long before its expiry


def test_a_reused_pid_does_not_keep_a_dead_holders_lease(db) -> None:
    # Our pid, but the holder started at another time: not us, so the holder is gone.
    me = Holder("alice", leases.local_host(), os.getpid(), 12345)
    leases.acquire(db, _audit(db), "thing", me, seconds=3600)
    assert leases.acquire(db, _audit(db, "bob"), "thing", Holder.me("bob")).previous is not None
    # The same process, recorded with its real start time, is alive: refused.
    with pytest.raises(LeaseHeld):
        leases.acquire(db, _audit(db, "carol"), "thing", Holder("carol", "host-b", 1, None))


def test_heartbeat_moves_the_expiry_and_only_the_holder_can_renew_or_release(db) -> None:
    lease = leases.acquire(db, _audit(db), "thing", Holder.me("alice"), seconds=30).lease
    later = lease.heartbeat_at + timedelta(seconds=100)
    assert leases.heartbeat(db, "thing", lease.token, now=later)
    row = leases.get(db, "thing")
    assert row is not None and row.heartbeat_at == later
    assert row.expires_at == later + timedelta(seconds=30)
    assert not leases.heartbeat(db, "thing", "not-the-token")
    assert not leases.release(db, "thing", "not-the-token")
    assert leases.get(db, "thing") is not None
    assert leases.release(db, "thing", lease.token)
    assert leases.get(db, "thing") is None


def test_the_keeper_heartbeats_from_its_thread_and_reports_a_lost_lease(db) -> None:
    lease = leases.acquire(db, _audit(db), "kept", Holder.me("alice"), seconds=0.3).lease
    lost: list[str] = []
    keeper = leases.keeper(db)
    keeper.keep(lease, on_lost=lambda gone: lost.append(gone.name))
    try:
        deadline = time.monotonic() + 60
        while (
            row := leases.get(db, "kept")
        ) is not None and row.heartbeat_at == lease.heartbeat_at:
            assert time.monotonic() < deadline, "the keeper never renewed the lease"
            time.sleep(0.05)
        assert row is not None and row.expires_at > lease.expires_at
        # Someone else takes it over (what a takeover leaves): the keeper notices and stops.
        db.execute("UPDATE leases SET token = 'theirs' WHERE name = 'kept'")
        while not lost:
            assert time.monotonic() < deadline, "the keeper never noticed the lost lease"
            time.sleep(0.05)
        assert lost == ["kept"] and keeper.holds("kept") is None
    finally:
        keeper.drop("kept")


@pytest.mark.sqlite_only
def test_an_existing_sqlite_database_is_migrated_to_leases(tmp_path: Path) -> None:
    """A database made before leases: the scheduler's lock row and a run left running
    become leases (and the old table goes)."""
    from opsconsole.capabilities import register_all

    register_all()
    path = tmp_path / "old.db"
    open_db(path).close()
    # Put the database back to how the previous version left it.
    conn = sqlite3.connect(path)
    conn.executescript(
        """
        DROP TABLE leases;
        DELETE FROM _sqlite_migrations WHERE migration_set = 'opsconsole.leases'
            OR name IN ('0002_scheduler_lease', '0003_run_leases');
        CREATE TABLE scheduler_lock (id INTEGER PRIMARY KEY CHECK (id = 1), token TEXT NOT NULL,
            pid INTEGER NOT NULL, host TEXT NOT NULL, proc_started REAL, since TEXT NOT NULL,
            heartbeat TEXT NOT NULL);
        INSERT INTO scheduler_lock VALUES (1, 'tok', 4242, 'host-a', 1.5,
            '2026-01-01T00:00:00.000000+00:00', '2026-01-01T00:00:10.000000+00:00');
        INSERT INTO runs (id, runbook, path, source, status, actor, started_at, updated_at, pid,
            hostname, pid_start, owner) VALUES ('r1', 'x', 'p', 's', 'running', 'alice',
            '2026-01-01T00:00:00.000000+00:00', '2026-01-01T00:00:05.000000+00:00', 4343,
            'host-b', 77, 'alice');
        """
    )
    conn.commit()
    conn.close()
    db = open_db(path)
    assert "scheduler_lock" not in db.table_names()
    scheduler = leases.get(db, "scheduler")
    assert scheduler is not None and scheduler.holder == Holder("scheduler", "host-a", 4242, None)
    assert scheduler.expires_at - scheduler.heartbeat_at == timedelta(seconds=60)
    run = leases.get(db, "run:r1")
    assert run is not None and run.holder == Holder("alice", "host-b", 4343, 77)
    assert run.expires_at - run.heartbeat_at == timedelta(seconds=leases.DEFAULT_SECONDS)
