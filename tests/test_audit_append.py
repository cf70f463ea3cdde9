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
    log = _fill(db, 3)

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
    log = _fill(db, 2)

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
    log = _fill(db, 2)
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
    log = _fill(db, 1)
    other = open_db(location)
    db.execute(
        "SET lock_timeout = 200" if db.engine == "postgresql" else "PRAGMA busy_timeout = 200"
    )
    with immediate(other):
        other.execute("SELECT count(*) FROM audit_events").fetchone()
        with pytest.raises(AuditWriteError, match="locked"):
            log.record("thing.do", "x")
        assert not db.conn.in_transaction
    assert log.record("thing.do", "x") == 2 and verify(db).ok


def test_an_append_in_a_callers_transaction_commits_or_rolls_back_with_it(
    db: Database,
) -> None:
    log = _fill(db, 1)
    db.execute("CREATE TABLE side_effects (x TEXT)")
    with pytest.raises(RuntimeError), immediate(db):
        db.execute("INSERT INTO side_effects VALUES ('undone')")
        assert log.record("thing.do", "undone") == 2
        raise RuntimeError("the action failed after its event was written")
    assert _count(db) == 1
    with immediate(db):
        db.execute("INSERT INTO side_effects VALUES ('done')")
        assert log.record("thing.do", "done") == 2  # the rolled-back seq is free again
        assert log.record("thing.do", "done too") == 3
    assert [r[0] for r in db.execute("SELECT x FROM side_effects")] == ["done"]
    assert _count(db) == 3 and verify(db).ok
