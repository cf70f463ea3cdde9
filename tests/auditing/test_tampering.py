"""Every tampering kind, named by `verify` against signed, witnessed checkpoints."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest
import sqlite_utils

from opsconsole.audit import AuditLog, key_id
from opsconsole.auditing.checkpoints import generate_keypair, load_private_key, take_checkpoint
from opsconsole.auditing.service import AuditContext, verify_database
from opsconsole.auditing.verify import verify
from opsconsole.errors import AuditWriteError
from opsconsole.store import open_db
from tests.auditing.conftest import make_ctx
from tests.helpers import drop_append_only, put_back, save_copy

KEY = b"k" * 32


def _untrigger(db: sqlite_utils.Database) -> None:
    drop_append_only(db)


def _log(db: sqlite_utils.Database, ctx: AuditContext) -> AuditLog:
    return ctx.audit_log(db, actor="alice", interface="test")


def _events(log: AuditLog, n: int, prefix: str = "e") -> None:
    for i in range(n):
        log.record("thing.do", f"{prefix}{i}", {"i": i})


def _checkpoint(log: AuditLog, ctx: AuditContext) -> int:
    cp, delivered, failed = take_checkpoint(log, ctx.private_key(), witnesses=ctx.witnesses)
    assert delivered and not failed
    return cp.seq


def _outcome(db: sqlite_utils.Database, ctx: AuditContext) -> tuple[str, int]:
    r = verify_database(db, ctx)
    return r.outcome, r.problem.seq if r.problem else 0


@pytest.mark.parametrize("keyed", [False, True], ids=["plain", "hmac"])
def test_rollback_to_an_older_copy_is_named_rolled_back(
    db_path: Path, tmp_path: Path, signing_keys: tuple[Path, Path], witness_dir: Path, keyed: bool
) -> None:
    ctx = make_ctx(signing_keys, witness_dir, [KEY] if keyed else None)
    db = open_db(db_path)
    log = _log(db, ctx)
    _events(log, 5)
    _checkpoint(log, ctx)
    old = tmp_path / "old.db"
    save_copy(db_path, old)
    _events(log, 5, "later")
    seq = _checkpoint(log, ctx)
    assert _outcome(db, ctx) == ("intact", 0)
    db.conn.close()
    put_back(old, db_path)  # the older copy is put back
    outcome, at = _outcome(open_db(db_path), ctx)
    assert outcome == "rolled_back"
    assert at < seq


def test_events_cut_from_the_end_are_named_truncated(
    db: sqlite_utils.Database, signing_keys: tuple[Path, Path], witness_dir: Path
) -> None:
    ctx = make_ctx(signing_keys, witness_dir)
    log = _log(db, ctx)
    _events(log, 8)
    seq = _checkpoint(log, ctx)
    _untrigger(db)
    db.execute("DELETE FROM audit_events WHERE seq > 4")
    assert verify(db).ok  # the chain alone cannot tell
    assert _outcome(db, ctx) == ("truncated", 5)
    assert "5-" + str(seq) in verify_database(db, ctx).problem.message  # type: ignore[union-attr]


def test_emptied_table_is_named_emptied_with_and_without_a_witness(
    db: sqlite_utils.Database, signing_keys: tuple[Path, Path], witness_dir: Path
) -> None:
    ctx = make_ctx(signing_keys, witness_dir)
    log = _log(db, ctx)
    _events(log, 3)
    _checkpoint(log, ctx)
    _untrigger(db)
    db.execute("DELETE FROM audit_events")
    assert _outcome(db, ctx) == ("emptied", 1)
    # No witness reachable: the database's own record of checkpoints still gives it away.
    assert verify(db).outcome == "emptied"


def test_dropped_table_is_named_dropped(
    db: sqlite_utils.Database, signing_keys: tuple[Path, Path], witness_dir: Path
) -> None:
    ctx = make_ctx(signing_keys, witness_dir)
    log = _log(db, ctx)
    _events(log, 3)
    _checkpoint(log, ctx)
    db.execute("DROP TABLE audit_events")
    assert _outcome(db, ctx)[0] == "dropped"
    assert verify(db).outcome == "dropped"


def test_dropped_and_recreated_table_is_named_emptied(
    db: sqlite_utils.Database, signing_keys: tuple[Path, Path], witness_dir: Path
) -> None:
    ctx = make_ctx(signing_keys, witness_dir)
    log = _log(db, ctx)
    _events(log, 3)
    _checkpoint(log, ctx)
    from opsconsole.audit import migrations

    db.execute("DROP TABLE audit_events")
    create = next(m for m in migrations.steps if m.name == "0001_audit_events")
    create.fn(db)  # the same empty table again, triggers and all
    assert _outcome(db, ctx)[0] == "emptied"


def _rebuild(db: sqlite_utils.Database, key: bytes | None) -> None:
    """The attacker's rewrite: edit event 2, then recompute every hash (plain SHA-256,
    or HMAC with ``key`` if they hold it), keeping alg consistent with what they use."""
    _untrigger(db)
    db.execute("UPDATE audit_events SET target = 'forged' WHERE seq = 2")
    rows = list(db.query("SELECT * FROM audit_events ORDER BY seq"))
    prev = "0" * 64
    import hmac as hmac_mod

    alg = "hmac-sha256" if key else "sha256"
    for row in rows:
        details = row["details"]
        if row["action"] in ("audit.genesis", "audit.key_change") and not key:
            d = json.loads(details)
            d["mode"], d["key_id"] = "plain", None
            details = json.dumps(d, sort_keys=True)
        fields = [row["seq"], row["ts"], row["actor"], row["interface"], row["action"]]
        fields += [row["target"], details, row["outcome"], alg, prev]
        payload = json.dumps(fields, ensure_ascii=False, separators=(",", ":")).encode()
        new = (
            hmac_mod.new(key, payload, hashlib.sha256).hexdigest()
            if key
            else hashlib.sha256(payload).hexdigest()
        )
        db.execute(
            "UPDATE audit_events SET details = ?, alg = ?, prev_hash = ?, hash = ? WHERE seq = ?",
            [details, alg, prev, new, row["seq"]],
        )
        prev = new


def test_chain_rewritten_with_the_hmac_key_is_named_rewritten(
    db: sqlite_utils.Database, signing_keys: tuple[Path, Path], witness_dir: Path
) -> None:
    ctx = make_ctx(signing_keys, witness_dir, [KEY])
    log = _log(db, ctx)
    _events(log, 6)
    _checkpoint(log, ctx)
    _rebuild(db, KEY)  # an insider holding the HMAC key
    assert verify(db, key=KEY).ok  # consistent: only the witness shows it
    assert _outcome(db, ctx)[0] == "rewritten"


def test_keyed_chain_rewritten_without_the_key_is_named_downgraded(
    db: sqlite_utils.Database, signing_keys: tuple[Path, Path], witness_dir: Path
) -> None:
    ctx = make_ctx(signing_keys, witness_dir, [KEY])
    log = _log(db, ctx)
    _events(log, 6)
    _checkpoint(log, ctx)
    _rebuild(db, None)
    # With the key: the chain says plain although a key is configured.
    assert verify(db, key=KEY).outcome == "downgraded"
    # Without the key: the witnessed checkpoint recorded an HMAC chain.
    no_key = make_ctx(signing_keys, witness_dir)
    assert _outcome(db, no_key)[0] == "downgraded"


def test_plain_chain_rewritten_is_named_rewritten(
    db: sqlite_utils.Database, signing_keys: tuple[Path, Path], witness_dir: Path
) -> None:
    ctx = make_ctx(signing_keys, witness_dir)
    log = _log(db, ctx)
    _events(log, 6)
    _checkpoint(log, ctx)
    _rebuild(db, None)
    assert verify(db).ok
    assert _outcome(db, ctx) == ("rewritten", 7)


def test_keyed_log_without_the_key_says_which_key_no_traceback(db: sqlite_utils.Database) -> None:
    log = AuditLog(db, actor="a", interface="test", key=KEY)
    _events(log, 3)
    r = verify(db)
    assert (r.outcome, r.exit_code) == ("key_required", 3)
    assert key_id(KEY) in r.problem.message  # type: ignore[union-attr]


def test_wrong_key_is_named_wrong_key(db: sqlite_utils.Database) -> None:
    log = AuditLog(db, actor="a", interface="test", key=KEY)
    _events(log, 3)
    r = verify(db, key=b"other-key")
    assert (r.outcome, r.exit_code) == ("wrong_key", 3)
    assert key_id(KEY) in r.problem.message and key_id(b"other-key") in r.problem.message  # type: ignore[union-attr]


def test_key_enabled_mid_life_appends_a_key_change_and_verifies(db: sqlite_utils.Database) -> None:
    _events(AuditLog(db, actor="a", interface="test"), 4)
    _events(AuditLog(db, actor="a", interface="test", key=KEY), 3)
    actions = [r[0] for r in db.execute("SELECT action FROM audit_events ORDER BY seq")]
    assert actions[4] == "audit.key_change"
    assert verify(db, key=KEY).ok
    assert verify(db).outcome == "key_required"
    # A writer that lost the key cannot quietly continue the chain unkeyed.
    with pytest.raises(AuditWriteError, match="keyed"):
        AuditLog(db, actor="a", interface="test").record("thing.do")


def test_key_rotation_needs_the_old_key_and_verifies_with_both(db: sqlite_utils.Database) -> None:
    new = b"n" * 32
    _events(AuditLog(db, actor="a", interface="test", key=KEY), 2)
    with pytest.raises(AuditWriteError, match="rotate"):
        AuditLog(db, actor="a", interface="test", key=new).record("thing.do")
    rotated = AuditLog(db, actor="a", interface="test", key=new, previous_keys=[KEY])
    _events(rotated, 2)
    assert verify(db, keys=[new, KEY]).ok
    assert verify(db, key=new).outcome == "wrong_key"  # the old segment needs the old key


def test_row_edited_and_rehashed_is_named_altered_at_that_seq(db: sqlite_utils.Database) -> None:
    _events(AuditLog(db, actor="a", interface="test"), 8)
    _untrigger(db)
    row = dict(next(iter(db.query("SELECT * FROM audit_events WHERE seq = 5"))))
    row["target"] = "forged"
    fields = [row[k] for k in ("seq", "ts", "actor", "interface", "action", "target")]
    fields += [row["details"], row["outcome"], row["alg"], row["prev_hash"]]
    new = hashlib.sha256(
        json.dumps(fields, ensure_ascii=False, separators=(",", ":")).encode()
    ).hexdigest()
    db.execute("UPDATE audit_events SET target = 'forged', hash = ? WHERE seq = 5", [new])
    r = verify(db)
    assert (r.outcome, r.problem.seq) == ("altered", 5)  # type: ignore[union-attr]


def test_blob_value_is_named_altered_not_a_crash(db: sqlite_utils.Database) -> None:
    _events(AuditLog(db, actor="a", interface="test"), 4)
    _untrigger(db)
    if db.engine == "postgresql":
        # Column types hold on PostgreSQL: the owner retypes the column, every row's
        # details become bytes, and the first event is the first one named.
        db.execute("ALTER TABLE audit_events ALTER COLUMN details DROP DEFAULT")
        db.execute(
            "ALTER TABLE audit_events ALTER COLUMN details TYPE bytea "
            "USING convert_to(details, 'UTF8')"
        )
        expected = 1
    else:  # SQLite stores any value in any column
        db.execute("UPDATE audit_events SET details = X'00ff' WHERE seq = 3")
        expected = 3
    r = verify(db)
    assert (r.outcome, r.problem.seq) == ("altered", expected)  # type: ignore[union-attr]


def _tamper_witness(witness_dir: Path, change: dict[str, object] | None, drop: str | None) -> None:
    path = witness_dir / "latest.json"
    data = json.loads(path.read_text())
    if drop:
        data.pop(drop)
    data.update(change or {})
    path.write_text(json.dumps(data))


@pytest.mark.parametrize(
    "change,drop,says",
    [
        (None, "signature", "unsigned"),
        ({"signature": None}, None, "unsigned"),
        ({"seq": 2, "hash": None}, None, "signature does not match"),  # pointed earlier
        ({"seq": "9"}, None, "seq: expected int, found str"),
        ({"seq": True}, None, "seq: expected int, found bool"),
        ({"extra": 1}, None, "unknown field"),
        (None, "hash", "hash: missing"),
    ],
    ids=["stripped", "null-signature", "earlier-seq", "seq-string", "seq-bool", "extra", "no-hash"],
)
def test_bad_witnessed_checkpoint_is_rejected(
    db: sqlite_utils.Database,
    signing_keys: tuple[Path, Path],
    witness_dir: Path,
    change: dict[str, object] | None,
    drop: str | None,
    says: str,
) -> None:
    ctx = make_ctx(signing_keys, witness_dir)
    log = _log(db, ctx)
    _events(log, 4)
    _checkpoint(log, ctx)
    if change and change.get("hash", 1) is None:
        change["hash"] = db.execute("SELECT hash FROM audit_events WHERE seq = 2").fetchone()[0]
    _tamper_witness(witness_dir, change, drop)
    r = verify_database(db, ctx)
    assert (r.outcome, r.exit_code) == ("checkpoint_invalid", 6)
    assert says in r.problem.message  # type: ignore[union-attr]


def test_truncated_checkpoint_file_is_rejected(
    db: sqlite_utils.Database, signing_keys: tuple[Path, Path], witness_dir: Path
) -> None:
    ctx = make_ctx(signing_keys, witness_dir)
    log = _log(db, ctx)
    _events(log, 2)
    _checkpoint(log, ctx)
    latest = witness_dir / "latest.json"
    latest.write_bytes(latest.read_bytes()[:40])
    assert verify_database(db, ctx).outcome == "checkpoint_invalid"


def test_checkpoint_signed_with_another_key_is_rejected(
    db: sqlite_utils.Database, tmp_path: Path, signing_keys: tuple[Path, Path], witness_dir: Path
) -> None:
    ctx = make_ctx(signing_keys, witness_dir)
    log = _log(db, ctx)
    _events(log, 3)
    other = (tmp_path / "other.pem", tmp_path / "other.pub")
    generate_keypair(*other)
    take_checkpoint(log, load_private_key(other[0]), witnesses=ctx.witnesses)
    r = verify_database(db, ctx)
    assert r.outcome == "checkpoint_invalid" and "not the configured key" in r.problem.message  # type: ignore[union-attr]


def test_unsigned_checkpoint_is_rejected_when_the_chain_names_a_signing_key(
    db: sqlite_utils.Database, signing_keys: tuple[Path, Path], witness_dir: Path
) -> None:
    ctx = make_ctx(signing_keys, witness_dir)
    log = _log(db, ctx)  # records the signing key id in the genesis event
    _events(log, 2)
    take_checkpoint(log, None, witnesses=ctx.witnesses)  # unsigned
    assert verify_database(db, ctx).outcome == "checkpoint_invalid"
    no_public = AuditContext(witnesses=ctx.witnesses)
    assert verify_database(db, no_public).outcome == "key_required"


def test_witness_checkpoints_must_chain(
    db: sqlite_utils.Database, signing_keys: tuple[Path, Path], witness_dir: Path
) -> None:
    ctx = make_ctx(signing_keys, witness_dir)
    log = _log(db, ctx)
    _events(log, 2)
    _checkpoint(log, ctx)
    _events(log, 2)
    _checkpoint(log, ctx)
    assert verify_database(db, ctx).ok
    # Replace checkpoint 1 on the witness with another, validly signed one.
    db.execute("DELETE FROM audit_checkpoints")
    take_checkpoint(log, ctx.private_key(), out=witness_dir / "cp1.json")
    (witness_dir / "cp1.json").replace(witness_dir / "checkpoint-00000001.json")
    r = verify_database(db, ctx)
    assert r.outcome == "checkpoint_invalid" and "does not chain" in r.problem.message  # type: ignore[union-attr]


def test_two_witnesses_that_disagree_are_named_forked(
    db: sqlite_utils.Database, tmp_path: Path, signing_keys: tuple[Path, Path], witness_dir: Path
) -> None:
    second = tmp_path / "w2"
    second.mkdir()
    ctx = make_ctx(signing_keys, witness_dir)
    log = _log(db, ctx)
    _events(log, 3)
    _checkpoint(log, ctx)
    (second / "latest.json").write_bytes((witness_dir / "latest.json").read_bytes())
    _rebuild(db, None)  # a forged history...
    db.execute("DELETE FROM audit_checkpoints")
    take_checkpoint(log, ctx.private_key(), out=second / "x.json")  # ...checkpointed by a thief
    from opsconsole.auditing.checkpoints import parse_checkpoint
    from opsconsole.auditing.verify import verify as walk

    a = parse_checkpoint((witness_dir / "latest.json").read_bytes(), "w1")
    b = parse_checkpoint((second / "x.json").read_bytes(), "w2")
    b.seq, b.hash = (
        a.seq,
        db.execute("SELECT hash FROM audit_events WHERE seq = ?", [a.seq]).fetchone()[0],
    )
    assert walk(db, checkpoints=[a, b]).outcome == "forked"
