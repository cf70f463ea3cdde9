"""Other processes' changes reach a follower: PostgreSQL ``LISTEN/NOTIFY`` and SQLite's
change counter, through the one factory :func:`opsconsole.changes.open_changes`."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from tests.helpers import SRC

pytestmark = pytest.mark.usefixtures("store_engine")

# Another process that records ``count`` audited changes, ``gap`` s apart, and prints
# "seq wall-clock-time" right after each commit.
WRITER = textwrap.dedent(
    """
    import sys, time
    from opsconsole.audit import AuditLog
    from opsconsole.store import open_db
    db = open_db(sys.argv[1])
    log = AuditLog(db, actor="bob", interface="cli")
    print("ready", flush=True)
    sys.stdin.readline()
    for i in range(int(sys.argv[2])):
        seq = log.record("incident.note", "INC-2026-0042", {"text": f"note {i}"})
        print(seq, time.time(), flush=True)
        time.sleep(float(sys.argv[3]))
    """
)


def _writer(location: object, count: int, gap: float) -> subprocess.Popen[str]:
    env = {**os.environ, "PYTHONPATH": str(SRC)}
    proc = subprocess.Popen(
        [sys.executable, "-c", WRITER, str(location), str(count), str(gap)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
        env=env,
    )
    assert proc.stdout is not None and proc.stdout.readline().strip() == "ready"
    return proc


def _source(db_path: object, store_engine: str) -> Any:
    from opsconsole.changes import open_changes
    from opsconsole.store import open_db

    db = open_db(db_path)  # creates and migrates, as the console does at start
    db.close()
    source = open_changes(db_path)
    if store_engine == "postgresql":
        # No safety read and no polling: within this test a change can only arrive
        # through its notification.
        source.safety_read = source.poll = 3600.0
    return source


def test_a_change_in_another_process_reaches_the_follower_at_once(
    db_path: Path, store_engine: str
) -> None:
    source = _source(db_path, store_engine)
    stop = threading.Event()
    try:
        cursor = source.cursor_now()
        assert source.wait(cursor, stop, timeout=0.3) == []  # nothing new, and no error
        count = 5
        writer = _writer(db_path, count, 0.3)
        assert writer.stdin is not None and writer.stdout is not None
        writer.stdin.write("go\n")
        writer.stdin.flush()
        received: dict[int, float] = {}
        deadline = time.monotonic() + 60
        while len(received) < count and time.monotonic() < deadline:
            for change in source.wait(cursor, stop, timeout=10):
                received[change.seq] = time.time()
                cursor = change.seq
        committed = {}
        for line in writer.stdout:
            seq, at = line.split()
            committed[int(seq)] = float(at)
        assert writer.wait(timeout=30) == 0
    finally:
        source.close()
    assert sorted(received) == sorted(committed)
    latency = sorted(received[s] - committed[s] for s in committed)
    print(
        f"\n{store_engine}: commit-to-follower latency over {count} changes: "
        f"min {latency[0] * 1000:.1f} ms, median {latency[count // 2] * 1000:.1f} ms, "
        f"max {latency[-1] * 1000:.1f} ms"
    )
    assert latency[-1] < 5.0  # the issue asks for 1 s; generous for a loaded machine
    if store_engine == "postgresql":
        assert source.notifications >= count  # woken by NOTIFY, not by a poll


@pytest.mark.postgresql
def test_the_listener_reconnects_and_reads_what_it_missed(db_path: str, store_engine: str) -> None:
    if store_engine != "postgresql":
        pytest.skip("a PostgreSQL connection")
    import psycopg

    from opsconsole.audit import AuditLog
    from opsconsole.store import open_db

    source = _source(db_path, store_engine)
    stop = threading.Event()
    db = open_db(db_path)
    try:
        cursor = source.cursor_now()
        assert source.wait(cursor, stop, timeout=0.2) == []
        pid = source.backend_pid()
        assert pid is not None
        # The server drops the listener (a restart, a failover, an admin's kill), and a
        # change is committed while nobody listens: its notification is lost for good.
        with psycopg.connect(db_path, autocommit=True) as admin:
            admin.execute("SELECT pg_terminate_backend(%s)", [pid])
        AuditLog(db, actor="bob", interface="cli").record("drill.run.finished", "d-1")
        found = source.wait(cursor, stop, timeout=30)
        assert [(c.action, c.target) for c in found] == [("drill.run.finished", "d-1")]
        assert source.connects == 2 and source.backend_pid() != pid
        # And it listens again on the new connection.
        AuditLog(db, actor="bob", interface="cli").record("drill.run.finished", "d-2")
        found = source.wait(found[-1].seq, stop, timeout=30)
        assert [c.target for c in found] == ["d-2"]
    finally:
        source.close()
        db.close()


@pytest.mark.postgresql
def test_a_long_target_cannot_make_the_change_fail(db_path: str, store_engine: str) -> None:
    """NOTIFY refuses payloads of 8,000 bytes or more; the trigger cuts what it sends."""
    if store_engine != "postgresql":
        pytest.skip("NOTIFY payloads")
    from opsconsole.audit import AuditLog
    from opsconsole.store import open_db

    source = _source(db_path, store_engine)
    stop = threading.Event()
    db = open_db(db_path)
    try:
        cursor = source.cursor_now()
        target = "ü" * 20_000
        AuditLog(db, actor="bob", interface="cli").record("incident.note", target)
        found = source.wait(cursor, stop, timeout=30)
        assert [c.target for c in found] == [target]  # the table has it whole
    finally:
        source.close()
        db.close()


@pytest.mark.postgresql
def test_without_the_trigger_the_listener_polls(db_path: str, store_engine: str) -> None:
    """A database whose trigger is missing (or a standby, where LISTEN is refused) still
    delivers every change, by polling."""
    if store_engine != "postgresql":
        pytest.skip("the PostgreSQL trigger")
    from opsconsole.audit import AuditLog
    from opsconsole.changes import open_changes
    from opsconsole.store import open_db

    db = open_db(db_path)
    db.execute("DROP TRIGGER audit_events_notify ON audit_events")
    source = open_changes(db_path)
    stop = threading.Event()
    try:
        cursor = source.cursor_now()
        assert source.notifying is False
        AuditLog(db, actor="bob", interface="cli").record("incident.note", "INC-1")
        found = source.wait(cursor, stop, timeout=30)
        assert [c.target for c in found] == ["INC-1"]
    finally:
        source.close()
        db.close()


def test_the_factory_picks_the_engine_from_the_store(db_path: Any, store_engine: str) -> None:
    from opsconsole.changes import ChangeWatcher, open_changes
    from opsconsole.changes_pg import PgChangeListener
    from opsconsole.store import open_db

    db = open_db(db_path)
    try:
        for where in (db, db_path):
            source = open_changes(where)
            try:
                expected = PgChangeListener if store_engine == "postgresql" else ChangeWatcher
                assert isinstance(source, expected)
                assert source.cursor_now() == source.cursor_now()
            finally:
                source.close()
    finally:
        db.close()


@pytest.mark.postgresql
def test_a_follower_that_cannot_connect_fails_in_one_line(db_path: str, store_engine: str) -> None:
    if store_engine != "postgresql":
        pytest.skip("a PostgreSQL login")
    from opsconsole.changes import open_changes
    from opsconsole.errors import StoreError

    url = db_path.replace("owner@", "nobody:s3cret@")
    source = open_changes(url)
    with pytest.raises(StoreError) as err:
        source.cursor_now()
    text = str(err.value)
    assert "cannot follow changes" in text and "nobody" in text
    assert "s3cret" not in text and "\n" not in text
    source.close()


@pytest.mark.postgresql
def test_a_change_by_one_role_reaches_a_listener_logged_in_as_another(
    db_path: str, store_engine: str, request: pytest.FixtureRequest
) -> None:
    """Two people, two database roles, password logins over TCP: LISTEN needs no grant,
    and the trigger fires for a writer that may only INSERT and SELECT."""
    if store_engine != "postgresql":
        pytest.skip("database roles")
    from opsconsole.audit import AuditLog
    from opsconsole.changes import open_changes
    from opsconsole.store import open_db

    cluster = request.getfixturevalue("pg_cluster")
    name = db_path.split("?", 1)[0].rsplit("/", 1)[1]
    for role in ("live_ana", "live_bob"):
        cluster.role(role, f"{role}-pw")
    cluster.sql("GRANT SELECT, INSERT ON ALL TABLES IN SCHEMA public TO live_ana, live_bob", name)
    cluster.sql("GRANT USAGE ON ALL SEQUENCES IN SCHEMA public TO live_ana, live_bob", name)
    ana_url = cluster.url(name, user="live_ana", password="live_ana-pw")
    bob_url = cluster.url(name, user="live_bob", password="live_bob-pw")
    source = open_changes(ana_url)
    source.safety_read = source.poll = 3600.0  # only the notification can deliver it
    stop = threading.Event()
    bob_db = open_db(bob_url, migrate=False)
    try:
        cursor = source.cursor_now()
        assert source.wait(cursor, stop, timeout=0.2) == []  # read: from now on, only NOTIFY
        AuditLog(bob_db, actor="live_bob", interface="cli").record("incident.note", "INC-7")
        found = source.wait(cursor, stop, timeout=30)
        assert [(c.actor, c.target) for c in found] == [("live_bob", "INC-7")]
        assert source.notifications >= 1
    finally:
        source.close()
        bob_db.close()


def test_more_changes_than_one_batch_all_arrive_without_a_new_commit(
    db_path: Any, store_engine: str
) -> None:
    from opsconsole.audit import AuditLog
    from opsconsole.store import open_db

    source = _source(db_path, store_engine)
    source.batch = 5
    stop = threading.Event()
    db = open_db(db_path)
    try:
        cursor = source.cursor_now()
        assert source.wait(cursor, stop, timeout=0.2) == []
        log = AuditLog(db, actor="bob", interface="cli")
        for i in range(12):
            log.record("incident.note", f"INC-{i}")
        got: list[str] = []
        for _ in range(3):  # 5 + 5 + 2, the last two without anything new committed
            found = source.wait(cursor, stop, timeout=10)
            got += [c.target for c in found]
            cursor = found[-1].seq if found else cursor
        assert got == [f"INC-{i}" for i in range(12)]
    finally:
        source.close()
        db.close()
