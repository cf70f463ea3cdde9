"""The audit chain: intact chains verify; every kind of tampering is detected and named."""

from __future__ import annotations

import contextlib
import hashlib
import json
import sqlite3
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlite_utils

from opsconsole.audit import GENESIS, AuditLog, read_checkpoint, verify, write_checkpoint
from opsconsole.errors import AuditWriteError, ExitCode, StoreError
from opsconsole.redact import MASK, secrets
from opsconsole.store import immediate, open_db
from tests.helpers import SRC, acting_as, cli, drop_append_only, set_read_only


def _fill(db: sqlite_utils.Database, n: int, key: bytes | None = None) -> AuditLog:
    log = AuditLog(db, actor="alice", interface="test", key=key)
    for i in range(n):
        log.record("test.event", f"target-{i}", {"i": i})
    return log


def _untriggered(db: sqlite_utils.Database) -> None:
    """What an attacker with write access does first: drop the append-only triggers."""
    drop_append_only(db)


def _insert(db: sqlite_utils.Database, row: dict[str, object]) -> None:
    names = ", ".join(row)
    db.execute(
        f"INSERT INTO audit_events ({names}) VALUES ({', '.join('?' * len(row))})",
        list(row.values()),
    )


@pytest.fixture(autouse=True)
def _on_both_engines(store_engine: str) -> str:
    """Every test here runs on SQLite and on PostgreSQL (see ``store_engine``)."""
    return store_engine


@pytest.fixture
def db(db_path: Path) -> sqlite_utils.Database:
    return open_db(db_path)


def test_intact_chain_verifies(db: sqlite_utils.Database) -> None:
    _fill(db, 20)
    result = verify(db)
    assert result.ok
    assert result.events == 20
    assert result.head_seq == 20
    first = next(iter(db.query("SELECT prev_hash FROM audit_events WHERE seq = 1")))
    assert first["prev_hash"] == GENESIS


def test_triggers_refuse_update_and_delete(db: sqlite_utils.Database) -> None:
    _fill(db, 3)
    with pytest.raises(sqlite3.IntegrityError, match="append-only"):
        db.execute("UPDATE audit_events SET actor = 'mallory' WHERE seq = 2")
    with pytest.raises(sqlite3.IntegrityError, match="append-only"):
        db.execute("DELETE FROM audit_events WHERE seq = 2")


def test_edited_field_is_named_altered(db: sqlite_utils.Database) -> None:
    _fill(db, 10)
    _untriggered(db)
    db.execute("UPDATE audit_events SET actor = 'mallory' WHERE seq = 6")
    p = verify(db).problem
    assert p is not None and (p.kind, p.seq) == ("altered", 6)


def test_deleted_row_is_named_removed(db: sqlite_utils.Database) -> None:
    _fill(db, 10)
    _untriggered(db)
    db.execute("DELETE FROM audit_events WHERE seq = 4")
    p = verify(db).problem
    assert p is not None and (p.kind, p.seq) == ("removed", 4)


def test_deleted_and_renumbered_rows_are_named_removed(db: sqlite_utils.Database) -> None:
    _fill(db, 10)
    _untriggered(db)
    db.execute("DELETE FROM audit_events WHERE seq = 4")
    db.execute("UPDATE audit_events SET seq = seq - 1 WHERE seq > 4")
    p = verify(db).problem
    assert p is not None and p.kind == "removed" and p.seq == 4


def test_inserted_row_is_named_inserted(db: sqlite_utils.Database) -> None:
    _fill(db, 10)
    _untriggered(db)
    # Make room at seq 5 and insert a forged event with a correctly computed hash.
    for seq in range(10, 4, -1):
        db.execute("UPDATE audit_events SET seq = ? WHERE seq = ?", [seq + 1, seq])
    prev = db.execute("SELECT hash FROM audit_events WHERE seq = 4").fetchone()[0]
    forged = {
        "seq": 5,
        "ts": "2026-01-01T00:00:00.000000+00:00",
        "actor": "mallory",
        "interface": "cli",
        "action": "runbook.approve",
        "target": "x",
        "details": "{}",
        "outcome": "ok",
        "alg": "sha256",
    }
    payload = json.dumps(
        [
            forged[k]
            for k in (
                "seq",
                "ts",
                "actor",
                "interface",
                "action",
                "target",
                "details",
                "outcome",
                "alg",
            )
        ]
        + [prev],
        separators=(",", ":"),
    ).encode()
    forged |= {"prev_hash": prev, "hash": hashlib.sha256(payload).hexdigest()}
    _insert(db, forged)
    p = verify(db).problem
    assert p is not None and (p.kind, p.seq) == ("inserted", 5)


def test_inserted_row_with_bad_hash_is_named_inserted(db: sqlite_utils.Database) -> None:
    _fill(db, 6)
    _untriggered(db)
    for seq in range(6, 2, -1):
        db.execute("UPDATE audit_events SET seq = ? WHERE seq = ?", [seq + 1, seq])
    prev = db.execute("SELECT hash FROM audit_events WHERE seq = 2").fetchone()[0]
    _insert(
        db,
        {
            "seq": 3,
            "ts": "x",
            "actor": "m",
            "interface": "cli",
            "action": "a",
            "target": "",
            "details": "{}",
            "outcome": "ok",
            "alg": "sha256",
            "prev_hash": prev,
            "hash": "f" * 64,
        }
    )
    p = verify(db).problem
    assert p is not None and (p.kind, p.seq) == ("inserted", 3)


def test_swapped_rows_are_named_reordered(db: sqlite_utils.Database) -> None:
    _fill(db, 10)
    _untriggered(db)
    cols = "ts, actor, interface, action, target, details, outcome, alg, prev_hash, hash"
    a = db.execute(f"SELECT {cols} FROM audit_events WHERE seq = 5").fetchone()
    b = db.execute(f"SELECT {cols} FROM audit_events WHERE seq = 6").fetchone()
    sets = ", ".join(f"{c.strip()} = ?" for c in cols.split(","))
    db.execute(f"UPDATE audit_events SET {sets} WHERE seq = 5", list(b))
    db.execute(f"UPDATE audit_events SET {sets} WHERE seq = 6", list(a))
    p = verify(db).problem
    assert p is not None and (p.kind, p.seq) == ("reordered", 5)


def test_truncated_tail_is_caught_only_with_a_checkpoint(
    db: sqlite_utils.Database, tmp_path: Path
) -> None:
    log = _fill(db, 10)
    cp_file = tmp_path / "audit.checkpoint"
    cp = write_checkpoint(log, cp_file)
    assert cp.seq == 10  # the head when it was written; its own record (11) follows
    _untriggered(db)
    db.execute("DELETE FROM audit_events WHERE seq > 7")
    assert verify(db).ok  # without a checkpoint, a shortened chain looks whole
    p = verify(db, checkpoint=read_checkpoint(cp_file)).problem
    assert p is not None and (p.kind, p.seq) == ("truncated", 8)
    assert "8-10" in p.message


def test_rebuilt_chain_is_caught_by_checkpoint(db: sqlite_utils.Database, tmp_path: Path) -> None:
    log = _fill(db, 5)
    cp_file = tmp_path / "cp.json"
    write_checkpoint(log, cp_file)
    _untriggered(db)
    db.execute("DELETE FROM audit_events")
    _fill(db, 8)  # a fresh, internally consistent chain
    assert verify(db).ok
    p = verify(db, checkpoint=read_checkpoint(cp_file)).problem
    assert p is not None and p.kind == "rewritten"


def test_hmac_chain_cannot_be_rebuilt_without_the_key(db: sqlite_utils.Database) -> None:
    key = b"k" * 32
    _fill(db, 5, key=key)
    assert verify(db, key=key).ok
    _untriggered(db)
    # The attacker edits event 3 and recomputes every hash from there on - but
    # without the key, only plain SHA-256 (or a wrong key) is available to them.
    db.execute("UPDATE audit_events SET actor = 'mallory' WHERE seq = 3")
    rows = list(db.query("SELECT * FROM audit_events ORDER BY seq"))
    prev = rows[1]["hash"]
    for row in rows[2:]:
        fields = [
            row[k]
            for k in (
                "seq",
                "ts",
                "actor",
                "interface",
                "action",
                "target",
                "details",
                "outcome",
                "alg",
            )
        ]
        payload = json.dumps([*fields, prev], separators=(",", ":")).encode()
        import hmac as hmac_mod

        new = hmac_mod.new(b"wrong-key", payload, hashlib.sha256).hexdigest()
        db.execute(
            "UPDATE audit_events SET prev_hash = ?, hash = ? WHERE seq = ?", [prev, new, row["seq"]]
        )
        prev = new
    p = verify(db, key=key).problem
    assert p is not None and (p.kind, p.seq) == ("altered", 3)


def test_hmac_chain_downgraded_to_sha256_is_caught(db: sqlite_utils.Database) -> None:
    key = b"secret-key-material"
    _fill(db, 3, key=key)
    _untriggered(db)
    db.execute("DELETE FROM audit_events")
    _fill(db, 3)  # rebuilt unkeyed
    p = verify(db, key=key).problem
    assert p is not None and p.kind == "downgraded"


def test_secrets_never_reach_the_log(db: sqlite_utils.Database) -> None:
    secrets.add("hunter2-very-secret")
    log = AuditLog(db, actor="alice", interface="test")
    log.record(
        "runbook.step.finished",
        "db",
        {
            "api_key": "AKIA123",
            "nested": {"password": "pw", "note": "used hunter2-very-secret here"},
            "plain": "visible",
        },
    )
    row = next(iter(db.query("SELECT details FROM audit_events")))
    details = json.loads(row["details"])
    assert details["api_key"] == MASK
    assert details["nested"]["password"] == MASK
    assert "hunter2-very-secret" not in row["details"]
    assert details["plain"] == "visible"


def test_readonly_database_refuses_the_action(db: sqlite_utils.Database) -> None:
    _fill(db, 1)
    db.execute("CREATE TABLE IF NOT EXISTS side_effects (x TEXT)")
    set_read_only(db, True)
    log = AuditLog(db, actor="alice", interface="test")
    with pytest.raises(AuditWriteError, match="not performed"):
        log.record("thing.do", "x")
    with pytest.raises(StoreError, match="read-only"), immediate(db):
        db.execute("INSERT INTO side_effects VALUES ('never')")
    set_read_only(db, False)
    assert db.execute("SELECT count(*) FROM audit_events").fetchone()[0] == 1


@contextlib.contextmanager
def _full(db: sqlite_utils.Database) -> Iterator[None]:
    """No room for a large write: SQLite's file may not grow by a page; on PostgreSQL a
    large audit row fails as the server fails when its disk is full (SQLSTATE 53100)."""
    if db.engine == "postgresql":
        db.execute(
            "CREATE FUNCTION no_room() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN "
            "IF length(NEW.details) > 100000 THEN RAISE EXCEPTION 'could not extend file' "
            "USING ERRCODE = 'disk_full'; END IF; RETURN NEW; END $$"
        )
        db.execute(
            "CREATE TRIGGER no_room BEFORE INSERT ON audit_events "
            "FOR EACH ROW EXECUTE FUNCTION no_room()"
        )
        yield
        db.execute("DROP TRIGGER no_room ON audit_events")
        return
    pages = db.execute("PRAGMA page_count").fetchone()[0]
    db.execute(f"PRAGMA max_page_count = {pages}")
    yield
    db.execute("PRAGMA max_page_count = 1073741823")


def test_full_database_rolls_back_the_action_it_records(db: sqlite_utils.Database) -> None:
    _fill(db, 1)
    db.execute("CREATE TABLE side_effects (x TEXT)")
    log = AuditLog(db, actor="alice", interface="test")
    with _full(db), pytest.raises(AuditWriteError, match="full"), immediate(db):
        db.execute("INSERT INTO side_effects VALUES ('small')")
        log.record("thing.do", "x", {"blob": "y" * 200_000})
    assert db.execute("SELECT count(*) FROM side_effects").fetchone()[0] == 0
    assert verify(db).ok


_WORKER = """
import sys
from collections.abc import Iterator
from pathlib import Path
from opsconsole.store import open_db
from opsconsole.audit import AuditLog
db = open_db(sys.argv[1])
log = AuditLog(db, actor=f"w{sys.argv[2]}", interface="test")
for i in range(int(sys.argv[3])):
    log.record("load.append", str(i))
"""


def test_concurrent_appends_from_four_processes_lose_nothing(db_path: Path) -> None:
    open_db(db_path)  # migrate once, as the first process on a machine would
    env = {"PYTHONPATH": str(SRC), "PATH": "/usr/bin:/bin"}
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", _WORKER, str(db_path), str(w), "500"],
            env=env,
            stderr=subprocess.PIPE,
            text=True,
        )
        for w in range(4)
    ]
    for p in procs:
        _, err = p.communicate(timeout=300)
        assert p.returncode == 0, err
    db = open_db(db_path)
    assert db.execute("SELECT count(*) FROM audit_events").fetchone()[0] == 2000
    for w in range(4):
        assert (
            db.execute("SELECT count(*) FROM audit_events WHERE actor = ?", [f"w{w}"]).fetchone()[0]
            == 500
        )
    result = verify(db)
    assert result.ok and result.head_seq == 2000


def test_cli_verify_names_tampering_and_exits_nonzero(db_path: Path) -> None:
    db = open_db(db_path)
    _fill(db, 5)
    assert cli("audit", "verify").exit_code == 0
    _untriggered(db)
    db.execute("UPDATE audit_events SET target = 'other' WHERE seq = 2")
    result = cli("audit", "verify")
    assert result.exit_code == ExitCode.AUDIT_TAMPERED
    assert "altered at seq 2" in result.stderr


def test_cli_checkpoint_then_truncation_is_reported(db_path: Path, tmp_path: Path) -> None:
    db = open_db(db_path)
    _fill(db, 4)
    cp = tmp_path / "cp.json"
    assert cli("audit", "checkpoint", "--out", str(cp)).exit_code == 0
    assert cli("audit", "verify", "--checkpoint", str(cp)).exit_code == 0
    _untriggered(db)
    db.execute("DELETE FROM audit_events WHERE seq >= 4")
    result = cli("audit", "verify", "--checkpoint", str(cp))
    assert result.exit_code == ExitCode.AUDIT_TAMPERED
    assert "truncated at seq 4" in result.stderr


def test_cli_list_filters_and_json(db_path: Path) -> None:
    db = open_db(db_path)
    log = AuditLog(db, actor="alice", interface="test")
    log.record("runbook.run.started", "regional-failover")
    log.record("incident.declared", "INC-2026-0001")
    AuditLog(db, actor="bob", interface="test").record("runbook.approve", "run-1")
    result = cli("audit", "list", "--action", "runbook.", "--json")
    rows = json.loads(result.stdout)
    assert [r["action"] for r in rows] == ["runbook.run.started", "runbook.approve"]
    rows = json.loads(cli("audit", "list", "--actor", "bob", "--json").stdout)
    assert [r["target"] for r in rows] == ["run-1"]
    rows = json.loads(cli("audit", "list", "--limit", "1", "--json").stdout)
    assert [r["actor"] for r in rows] == ["bob"]


def test_cli_export_jsonl_and_csv(db_path: Path, tmp_path: Path) -> None:
    db = open_db(db_path)
    _fill(db, 3)
    out = tmp_path / "audit.jsonl"
    assert cli("audit", "export", "--format", "jsonl", "--out", str(out)).exit_code == 0
    lines = out.read_text().splitlines()
    assert len(lines) == 3  # the export's own record follows the export
    assert json.loads(lines[0])["hash"]
    csv_out = cli("audit", "export", "--format", "csv").stdout.splitlines()
    assert csv_out[0].startswith("seq,ts,actor")
    assert len(csv_out) == 5  # header + 3 + the first export's record


def test_cli_export_to_an_unwritable_path_is_one_error_line(tmp_path: Path) -> None:
    result = cli("audit", "export", "--out", str(tmp_path))  # a directory
    assert result.exit_code == ExitCode.FAILED
    assert result.stderr.strip() == f"error: cannot write {tmp_path}: Is a directory"
    result = cli("audit", "export", "--out", str(tmp_path / "missing" / "audit.jsonl"))
    assert result.exit_code == ExitCode.FAILED
    assert "No such file or directory" in result.stderr


def test_as_is_only_an_on_behalf_of_annotation(db_path: Path) -> None:
    cli("--as", "incident-commander", "audit", "export", env={"LOGNAME": "ceo", "USER": "ceo"})
    row = next(iter(open_db(db_path).query("SELECT actor, details FROM audit_events")))
    assert row["actor"] == acting_as(db_path) != "ceo"
    assert json.loads(row["details"])["on_behalf_of"] == "incident-commander"


@pytest.mark.parametrize("content", [None, b"  \n"], ids=["missing", "empty"])
def test_unreadable_audit_key_file_is_a_config_error(tmp_path: Path, content: bytes | None) -> None:
    import shutil

    cfg = tmp_path / "cfg"
    shutil.copytree(Path(SRC).parent / "config", cfg)
    key = tmp_path / "audit.key"
    if content is not None:
        key.write_bytes(content)
    with (cfg / "settings.yaml").open("a") as fh:
        fh.write(f"audit_key_file: {key}\n")
    for args in (["config", "check"], ["audit", "export"]):
        result = cli("--config", str(cfg), *args)
        assert result.exit_code == ExitCode.CONFIG, result.output
        assert f"error: {key}: settings.audit_key_file: " in result.stderr


def test_verify_and_export_walk_the_log_a_page_at_a_time(
    db: sqlite_utils.Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The whole log is read in pages (never all of it in memory): across page boundaries
    nothing is skipped or read twice, and a problem on a later page is still named."""
    from opsconsole.auditing import export as export_mod

    monkeypatch.setattr(export_mod, "PAGE", 3)
    log = _fill(db, 10)
    AuditLog(db, actor="bob", interface="test").record("other.event", "b")
    log.record("test.event", "last")
    result = verify(db)
    assert result.ok and (result.events, result.head_seq) == (12, 12)
    lines = list(export_mod.export(db, "jsonl"))
    assert [json.loads(x)["seq"] for x in lines] == list(range(1, 13))
    alices = list(export_mod.export(db, "jsonl", actor="alice"))
    assert [json.loads(x)["seq"] for x in alices] == [*range(1, 11), 12]
    _untriggered(db)
    db.execute("UPDATE audit_events SET target = 'forged' WHERE seq = 8")
    p = verify(db).problem
    assert p is not None and (p.kind, p.seq) == ("altered", 8)
