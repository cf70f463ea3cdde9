"""The audit append path on both engines: what it costs does not grow with the log, and
every way it can fail leaves nothing half-written and the connection usable.

On PostgreSQL an append is pipelined (``store.pipelined``): errors surface when a later
result is read or at COMMIT rather than at the statement, so each failure is pinned here.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pytest

from opsconsole.audit import _HEADS, _NEWEST, CHAIN_ACTIONS, AuditLog, verify
from opsconsole.errors import AuditWriteError
from opsconsole.store import Database, immediate, open_db
from tests.helpers import refuse_inserts


@pytest.fixture(autouse=True)
def _on_both_engines(store_engine: str) -> str:
    """Every test here runs on SQLite and on PostgreSQL (see ``store_engine``)."""
    return store_engine


@pytest.fixture
def location(store_engine: str, tmp_path: Path) -> Path | str:
    if store_engine == "postgresql":
        return os.environ["OPSCONSOLE_DB"]
    return tmp_path / "audit.db"


@pytest.fixture
def db(location: Path | str) -> Database:
    return open_db(location)


def _count(db: Database) -> int:
    return int(db.execute("SELECT count(*) FROM audit_events").fetchone()[0])


def _fill(db: Database, n: int) -> AuditLog:
    log = AuditLog(db, actor="alice", interface="test")
    with immediate(db):  # one transaction: a long log quickly
        for i in range(n):
            log.record("test.event", f"target-{i}", {"i": i})
    return log


def _warm(db: Database, n: int) -> AuditLog:
    """A log that appended ``n`` events each in its own transaction: on PostgreSQL its
    next append takes the one-round-trip path (see AuditLog._append_on_own_head)."""
    log = AuditLog(db, actor="alice", interface="test")
    for i in range(n):
        log.record("test.event", f"target-{i}", {"i": i})
    return log


def _plan_rows(node: dict[str, Any]) -> int:
    """Rows a PostgreSQL plan read from tables: returned by scans plus filtered away."""
    own = 0
    if "Scan" in node["Node Type"] and "Relation Name" in node:
        own = int(node.get("Actual Rows", 0)) + int(node.get("Rows Removed by Filter", 0))
    return own + sum(_plan_rows(child) for child in node.get("Plans", []))


def test_finding_the_chain_state_does_not_read_the_whole_log(db: Database) -> None:
    # A plain log has no genesis event: a lookup that walks the log backwards looking for
    # one reads every event on every append (it did on PostgreSQL: 4 ms at 20,000).
    _fill(db, 3000)
    if db.engine == "postgresql":
        raw = db.conn.raw
        queries = (("newest", _NEWEST, CHAIN_ACTIONS[:1]), ("heads", _HEADS, CHAIN_ACTIONS))
        for name, sql, args in queries:
            for i in range(1, len(args) + 1):
                sql = sql.replace("?", f"${i}", 1)
            raw.execute(f"PREPARE {name}({', '.join(['text'] * len(args))}) AS {sql}")
            # Both plans the server may pick for a prepared statement.
            for mode in ("force_custom_plan", "force_generic_plan"):
                raw.execute(f"SET plan_cache_mode = {mode}")
                values = ", ".join(f"'{a}'" for a in args)
                (plan,) = raw.execute(
                    f"EXPLAIN (ANALYZE, FORMAT JSON) EXECUTE {name}({values})"
                ).fetchone()
                plan = plan if isinstance(plan, list) else json.loads(plan)
                assert _plan_rows(plan[0]["Plan"]) < 10, (name, mode, plan)
    else:
        for action in CHAIN_ACTIONS:
            steps = [r[3] for r in db.execute(f"EXPLAIN QUERY PLAN {_NEWEST}", [action])]
            assert any("INDEX audit_events_action_seq" in s for s in steps), steps
            assert not any(s.startswith("SCAN audit_events") for s in steps), steps


def test_an_append_hook_that_fails_rolls_the_event_back(db: Database) -> None:
    log = _warm(db, 3)

    def broken(db: Any, row: dict[str, Any]) -> None:
        db.execute("INSERT INTO no_such_table VALUES (1)")

    log.on_append.append(broken)
    with pytest.raises(AuditWriteError, match="not performed"):
        log.record("thing.do", "x")
    assert not db.conn.in_transaction
    log.on_append.remove(broken)
    assert log.record("thing.do", "x") == 4
    assert _count(db) == 4 and verify(db).ok


def test_an_append_hook_bug_propagates_and_writes_nothing(db: Database) -> None:
    log = _warm(db, 2)

    def buggy(db: Any, row: dict[str, Any]) -> None:
        db.execute("SELECT 1")
        raise ValueError("bug in a hook")

    log.on_append.append(buggy)
    with pytest.raises(ValueError, match="bug in a hook"):
        log.record("thing.do", "x")
    assert not db.conn.in_transaction
    log.on_append.remove(buggy)
    assert log.record("thing.do", "x") == 3 and verify(db).ok


def test_a_refused_event_insert_fails_closed(db: Database) -> None:
    log = _warm(db, 2)
    refuse_inserts(db, "audit_events")
    with pytest.raises(AuditWriteError, match="disk full"):
        log.record("thing.do", "x")
    assert not db.conn.in_transaction
    db.execute(
        "DROP TRIGGER refuse ON audit_events"
        if db.engine == "postgresql"
        else "DROP TRIGGER refuse"
    )
    assert log.record("thing.do", "x") == 3
    assert _count(db) == 3 and verify(db).ok


def test_a_write_lock_held_elsewhere_is_an_audit_write_error(
    db: Database, location: Path | str
) -> None:
    log = _warm(db, 2)
    other = open_db(location)
    db.execute(
        "SET lock_timeout = 200" if db.engine == "postgresql" else "PRAGMA busy_timeout = 200"
    )
    with immediate(other):
        other.execute("SELECT count(*) FROM audit_events").fetchone()
        with pytest.raises(AuditWriteError, match="locked"):
            log.record("thing.do", "x")
        assert not db.conn.in_transaction
    assert log.record("thing.do", "x") == 3 and verify(db).ok


def test_an_append_in_a_callers_transaction_commits_or_rolls_back_with_it(
    db: Database,
) -> None:
    log = _warm(db, 2)
    db.execute("CREATE TABLE side_effects (x TEXT)")
    with pytest.raises(RuntimeError), immediate(db):
        db.execute("INSERT INTO side_effects VALUES ('undone')")
        assert log.record("thing.do", "undone") == 3
        raise RuntimeError("the action failed after its event was written")
    assert _count(db) == 2
    with immediate(db):
        db.execute("INSERT INTO side_effects VALUES ('done')")
        assert log.record("thing.do", "done") == 3  # the rolled-back seq is free again
        assert log.record("thing.do", "done too") == 4
    assert log.record("thing.do", "on its own") == 5
    assert [r[0] for r in db.execute("SELECT x FROM side_effects")] == ["done"]
    assert _count(db) == 5 and verify(db).ok


def _drop_append_only(db: Database) -> None:
    """What a restore from an older backup amounts to, for a running writer."""
    on = " ON audit_events" if db.engine == "postgresql" else ""
    db.execute(f"DROP TRIGGER audit_events_no_delete{on}")


def test_a_lone_writer_appends_without_reading_the_head(db: Database) -> None:
    log = AuditLog(db, actor="alice", interface="test")
    reads = []
    heads = log._heads
    log._heads = lambda: reads.append(1) or heads()  # type: ignore[method-assign]
    for i in range(5):
        assert log.record("thing.do", str(i)) == i + 1
    # PostgreSQL: the first two appends read the head (the second finds its own event
    # there), the rest guess it in one round trip. SQLite always reads (no round trips).
    assert len(reads) == (2 if db.engine == "postgresql" else 5)
    assert verify(db).ok


def test_two_writers_interleaving_keep_one_chain(db: Database, location: Path | str) -> None:
    a = AuditLog(db, actor="alice", interface="test")
    b = AuditLog(open_db(location), actor="bob", interface="test")
    order = "aaaabaabbbaaba"
    for i, who in enumerate(order):
        log = a if who == "a" else b
        assert log.record("thing.do", f"{who}{i}") == i + 1
    rows = db.execute("SELECT seq, actor FROM audit_events ORDER BY seq").fetchall()
    assert [(r[0], r[1][0]) for r in rows] == [(i + 1, w) for i, w in enumerate(order)]
    assert verify(db).ok


def test_a_head_that_went_back_is_read_again(db: Database) -> None:
    log = AuditLog(db, actor="alice", interface="test")
    for i in range(4):
        log.record("thing.do", str(i))
    # The event this writer remembers as the head is gone (a restore, say); an event
    # whose seq is still free must not be chained to it.
    _drop_append_only(db)
    db.execute("DELETE FROM audit_events WHERE seq = 4")
    assert log.record("thing.do", "after") == 4
    with pytest.raises(RuntimeError), immediate(db):  # an append that is rolled back
        log.record("thing.do", "undone")
        raise RuntimeError
    assert log.record("thing.do", "last") == 5
    assert _count(db) == 5 and verify(db).ok
