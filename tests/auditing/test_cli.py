"""`opsconsole audit` commands: outcomes with names and exit codes, filters, usage."""

from __future__ import annotations

import json
from pathlib import Path

from opsconsole.audit import AuditLog
from opsconsole.auditing.checkpoints import take_checkpoint
from opsconsole.store import open_db
from tests.helpers import cli, drop_append_only


def _fill(db_path: Path) -> None:
    db = open_db(db_path)
    AuditLog(db, actor="alice", interface="test").record("runbook.run.started", "run-1")
    AuditLog(db, actor="bob", interface="test").record("incident.declare", "INC-1")


def test_verify_json_names_the_outcome_and_exit_code(db_path: Path) -> None:
    _fill(db_path)
    r = cli("audit", "verify", "--json")
    data = json.loads(r.stdout)
    assert r.exit_code == 0 and data["outcome"] == "intact" and data["exit_code"] == 0
    assert data["recorded"] is True


def test_checkpoint_file_with_a_string_seq_is_one_line_exit_6(
    db_path: Path, tmp_path: Path
) -> None:
    _fill(db_path)
    log = AuditLog(open_db(db_path), actor="a", interface="test")
    cp_file = tmp_path / "cp.json"
    take_checkpoint(log, None, out=cp_file)
    data = json.loads(cp_file.read_text())
    data["seq"] = str(data["seq"])
    cp_file.write_text(json.dumps(data))
    r = cli("audit", "verify", "--checkpoint", str(cp_file))
    assert r.exit_code == 6
    assert r.stderr.strip().count("\n") == 0 and "seq: expected int, found str" in r.stderr


def test_export_takes_the_filters_of_list(db_path: Path, tmp_path: Path) -> None:
    _fill(db_path)
    r = cli("audit", "export", "--actor", "bob")
    rows = [json.loads(x) for x in r.stdout.splitlines()]
    assert [x["target"] for x in rows] == ["INC-1"] and rows[0]["hash"]
    r = cli("audit", "export", "--action", "runbook.", "--format", "csv")
    assert len(r.stdout.splitlines()) == 2 and "run-1" in r.stdout
    r = cli("audit", "export", "--since", "1h")
    assert len(r.stdout.splitlines()) >= 2


def test_checkpoint_with_nowhere_to_go_is_a_usage_error(db_path: Path) -> None:
    _fill(db_path)
    r = cli("audit", "checkpoint")
    assert r.exit_code == 2 and "--out" in r.stderr


def test_keygen_creates_its_directory_private_to_the_signer(tmp_path: Path) -> None:
    """As the README shows it: `audit keygen --dir /etc/opsconsole` on a machine where
    that directory does not exist yet."""
    target = tmp_path / "etc" / "opsconsole"
    r = cli("audit", "keygen", "--dir", str(target))
    assert r.exit_code == 0, r.output
    assert (target / "audit-signing.pem").stat().st_mode & 0o777 == 0o600
    assert target.stat().st_mode & 0o777 == 0o700
    blocked = tmp_path / "a-file"
    blocked.write_text("x")
    r = cli("audit", "keygen", "--dir", str(blocked / "keys"))
    assert r.exit_code == 1 and f"cannot create {blocked / 'keys'}" in r.stderr, r.output


def test_keygen_refuses_to_overwrite_a_key(tmp_path: Path) -> None:
    assert cli("audit", "keygen", "--dir", str(tmp_path)).exit_code == 0
    assert (tmp_path / "audit-signing.pem").stat().st_mode & 0o777 == 0o600
    r = cli("audit", "keygen", "--dir", str(tmp_path))
    assert r.exit_code == 1 and "refusing to overwrite" in r.stderr


def test_cli_verify_names_a_dropped_and_an_emptied_table(db_path: Path) -> None:
    from opsconsole.store import immediate

    _fill(db_path)
    db = open_db(db_path)
    drop_append_only(db)
    with immediate(db):
        db.execute("DELETE FROM audit_events")
        db.execute("INSERT INTO audit_checkpoints VALUES (1, 2, 'x', 'y', '{}', 'now')")
    r = cli("audit", "verify")
    assert r.exit_code == 6 and "emptied" in r.stderr, r.output
    db.execute("DROP TABLE audit_events")
    db.close()
    r = cli("audit", "verify")
    assert r.exit_code == 6 and "dropped" in r.stderr, r.output
