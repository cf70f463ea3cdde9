"""Walking the chain and naming what is wrong with it.

Every outcome has a name and an exit code (:data:`OUTCOMES`); ``verify`` never raises
for a broken database - a dropped table, a BLOB where text belongs, a keyed chain
without its key are outcomes, not tracebacks.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import sqlite3
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal

import sqlite_utils

from opsconsole.audit import _FIELDS, CHAIN_ACTIONS, GENESIS, ChainState, key_id
from opsconsole.auditing.export import in_pages

if TYPE_CHECKING:
    from opsconsole.auditing.checkpoints import Checkpoint

__all__ = ["OUTCOMES", "Problem", "ProblemKind", "VerifyResult", "verify"]

ProblemKind = Literal[
    "altered",
    "inserted",
    "removed",
    "reordered",
    "truncated",
    "rewritten",
    "rolled_back",
    "emptied",
    "dropped",
    "downgraded",
    "checkpoint_invalid",
    "forked",
    "key_required",
    "wrong_key",
    "witness_unreachable",
]

# outcome -> (exit code, what it means). "intact" is the only 0.
OUTCOMES: dict[str, tuple[int, str]] = {
    "intact": (0, "every event links and hashes; matches the newest checkpoint if any"),
    "altered": (6, "an event's content or hash was changed"),
    "inserted": (6, "an event was added into the middle of the chain"),
    "removed": (6, "events were deleted from the middle (with or without renumbering)"),
    "reordered": (6, "events were moved"),
    "truncated": (6, "events after a checkpoint were deleted from this database"),
    "rewritten": (6, "the chain up to a checkpoint differs from it: rebuilt"),
    "rolled_back": (6, "the database is an older copy than the newest checkpoint"),
    "emptied": (6, "every event was deleted"),
    "dropped": (6, "the audit_events table is gone"),
    "downgraded": (6, "a keyed chain was rewritten as plain SHA-256"),
    "checkpoint_invalid": (6, "a checkpoint is unsigned, wrongly signed or malformed"),
    "forked": (6, "witnesses hold checkpoints that contradict each other"),
    "key_required": (3, "the chain is keyed: give its HMAC key (or the public key)"),
    "wrong_key": (3, "the key given is not the chain's key"),
    "witness_unreachable": (1, "intact, but no configured witness could be read"),
}

_COLUMNS = "seq, ts, actor, interface, action, target, details, outcome, alg, prev_hash, hash"
_SELECT = f"SELECT {_COLUMNS} FROM audit_events ORDER BY seq"
# Tables whose rows are always written with an audit event: rows there and none in the
# audit log means the log was emptied.
_AUDITED_TABLES = ("audit_checkpoints", "incidents", "runs", "drill_runs")


@dataclass
class Problem:
    seq: int
    kind: ProblemKind
    message: str

    @property
    def exit_code(self) -> int:
        return OUTCOMES[self.kind][0]


@dataclass
class VerifyResult:
    events: int
    head_seq: int
    head_hash: str
    problem: Problem | None = None
    checkpoint_seq: int | None = None
    checkpoint_source: str | None = None
    mode: str = "plain"
    key_id: str | None = None
    log_id: str | None = None
    notes: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return self.problem is None

    @property
    def outcome(self) -> str:
        return self.problem.kind if self.problem else "intact"

    @property
    def exit_code(self) -> int:
        return OUTCOMES[self.outcome][0]

    def to_json(self) -> dict[str, Any]:
        return {
            "ok": self.ok,
            "outcome": self.outcome,
            "exit_code": self.exit_code,
            "events": self.events,
            "head_seq": self.head_seq,
            "head_hash": self.head_hash,
            "mode": self.mode,
            "key_id": self.key_id,
            "log_id": self.log_id,
            "checkpoint_seq": self.checkpoint_seq,
            "checkpoint_source": self.checkpoint_source,
            "notes": self.notes,
            "problem": None
            if self.problem is None
            else {
                "seq": self.problem.seq,
                "kind": self.problem.kind,
                "message": self.problem.message,
            },
        }


_encode = json.JSONEncoder(ensure_ascii=False, separators=(",", ":")).encode


def _payload(values: Sequence[Any]) -> bytes | None:
    """The canonical bytes of an event's fields + prev_hash, None if a value is not one
    the log ever writes (a BLOB or a float slipped in by hand)."""
    for v in values:
        if v is not None and not isinstance(v, str | int):
            return None
    return _encode(list(values)).encode()


def _hash(values: Sequence[Any], alg: str, key: bytes | None) -> str | None:
    payload = _payload(values)
    if payload is None:
        return None
    if alg == "hmac-sha256":
        return hmac.new(key or b"", payload, hashlib.sha256).hexdigest()
    return hashlib.sha256(payload).hexdigest()


def _values(row: dict[str, Any], seq: int | None = None) -> list[Any]:
    return [seq if (f == "seq" and seq is not None) else row[f] for f in _FIELDS] + [
        row["prev_hash"]
    ]


def _rows(db: sqlite_utils.Database) -> Iterator[dict[str, Any]]:
    cur = db.execute(_SELECT)
    names = [d[0] for d in cur.description]
    for values in cur:
        yield dict(zip(names, values, strict=True))


class _Keys:
    """The HMAC keys a verifier holds, by key id, and which one the chain uses now."""

    def __init__(self, keys: Sequence[bytes]) -> None:
        self.ring = {key_id(k): k for k in keys}
        self.primary = keys[0] if keys else None
        self.current: str | None = None  # key id the chain says is in use
        self.mode = "plain"
        self.log_id: str | None = None

    def for_row(self) -> bytes | None:
        if self.current is None:  # a keyed log from before genesis events
            return self.primary
        return self.ring.get(self.current)


def verify(
    db: sqlite_utils.Database,
    *,
    key: bytes | None = None,
    keys: Sequence[bytes] = (),
    checkpoint: Checkpoint | None = None,
    checkpoints: Sequence[Checkpoint] = (),
) -> VerifyResult:
    """Walk the whole chain; stop at the first problem and name it.

    ``key`` / ``keys`` are the HMAC keys held (current first, then older ones).
    ``checkpoints`` must already have passed their signature check (see
    :func:`opsconsole.auditing.checkpoints.check`); the newest one is compared with the
    database: truncation, rollback to an older copy, an emptied or dropped table, a
    rebuilt or downgraded chain are named against it.
    """
    all_keys = ([key] if key else []) + [k for k in keys if k != key]
    cps = ([checkpoint] if checkpoint is not None else []) + list(checkpoints)
    result = VerifyResult(events=0, head_seq=0, head_hash=GENESIS)
    try:
        problem = _walk(db, _Keys(all_keys), result)
    except sqlite3.OperationalError as exc:
        if "no such table" in str(exc) or "no such column" in str(exc):
            newest = max(cps, key=lambda c: c.seq, default=None)
            since = (
                f" (the checkpoint of {newest.ts} recorded {newest.seq} events)" if newest else ""
            )
            result.problem = Problem(0, "dropped", f"the audit_events table is gone{since}")
            return result
        raise
    if problem is not None:
        result.problem = problem
        return result
    if result.events == 0:
        result.problem = _empty(db, cps)
        if result.problem is not None:
            return result
    if all_keys and result.mode == "plain" and result.events:
        result.problem = Problem(
            result.head_seq,
            "downgraded",
            f"an HMAC key is configured (key {key_id(all_keys[0])}) but the chain is plain "
            "SHA-256: it was rebuilt without the key (if the key is new, any audited "
            "action appends the key-change event that enables it)",
        )
        return result
    if cps:
        result.problem = _against_checkpoints(db, result, cps)
    return result


def _walk(db: sqlite_utils.Database, keys: _Keys, result: VerifyResult) -> Problem | None:
    # Fast path over plain tuples: link, sequence and digest all right. Only when
    # something is wrong are the rows loaded whole to classify the problem. Locals, not
    # attributes, in the loop: this walk runs over every event of the log.
    sha256 = hashlib.sha256
    new_hmac = hmac.new
    encode = _encode
    chain_actions = CHAIN_ACTIONS
    prev_hash, prev_seq = GENESIS, 0
    keyed = False  # the chain has declared an HMAC key
    key = keys.for_row()
    broken_at: int | None = None
    n = 0
    for row in in_pages(db, _COLUMNS):
        n += 1
        seq = row[0]
        alg = row[8]
        if row[4] in chain_actions:
            problem = _chain_event(row, keys)
            if problem is not None:
                result.events = n
                return problem
            keyed, key = keys.mode == "hmac", keys.for_row()
        try:
            payload = encode(list(row[:10])).encode()
        except (TypeError, ValueError):  # a BLOB: classified below
            payload = b""
        if alg == "sha256":
            if keyed:
                result.events = n
                return Problem(
                    seq,
                    "downgraded",
                    f"event {seq} is plain SHA-256 but the chain is keyed (key "
                    f"{keys.current}): the chain was rewritten without the key",
                )
            digest = sha256(payload).hexdigest()
        elif alg == "hmac-sha256":
            if key is None:
                result.events = n
                return _missing_key(seq, keys)
            digest = new_hmac(key, payload, sha256).hexdigest()
        else:
            result.events = n
            return Problem(seq, "altered", f"event {seq} has an unknown hash algorithm {alg!r}")
        if row[9] == prev_hash and seq == prev_seq + 1 and digest == row[10] and payload:
            prev_hash, prev_seq = row[10], seq
            continue
        broken_at = n - 1
        break
    result.events = n
    if broken_at is not None:
        rows = list(_rows(db))
        result.events = len(rows)
        return _classify(rows, broken_at, keys) or Problem(
            rows[broken_at]["seq"], "altered", f"event {rows[broken_at]['seq']} is inconsistent"
        )
    result.head_seq, result.head_hash = prev_seq, prev_hash
    result.mode, result.key_id, result.log_id = keys.mode, keys.current, keys.log_id
    return None


def _chain_event(row: Sequence[Any], keys: _Keys) -> Problem | None:
    """A genesis / key-change event: switch to the mode and key it declares."""
    seq = row[0]
    try:
        details = json.loads(row[6])
        state = ChainState.from_details(details, seq)
    except (TypeError, ValueError, AttributeError):
        return Problem(seq, "altered", f"event {seq} (chain mode) has unreadable details")
    declared = "hmac-sha256" if state.mode == "hmac" else "sha256"
    if row[8] != declared:
        return Problem(
            seq, "altered", f"event {seq} declares mode {state.mode} but is hashed with {row[8]}"
        )
    if state.mode == "hmac" and state.key_id not in keys.ring:
        keys.current = state.key_id
        return None  # _missing_key names it when the row is checked
    keys.mode, keys.current = state.mode, state.key_id
    keys.log_id = keys.log_id or state.log_id or None
    return None


def _missing_key(seq: int, keys: _Keys) -> Problem:
    kid = keys.current or "(unnamed: a log from before key ids)"
    if not keys.ring:
        return Problem(
            seq,
            "key_required",
            f"the chain is keyed with HMAC key {kid} from seq {seq}: provide it "
            "(OPSCONSOLE_AUDIT_KEY or the settings' audit_key_file)",
        )
    given = ", ".join(sorted(keys.ring))
    return Problem(
        seq,
        "wrong_key",
        f"the chain is keyed with HMAC key {kid} from seq {seq}; the key(s) given are {given}",
    )


def _classify(rows: list[dict[str, Any]], i: int, keys: _Keys) -> Problem | None:
    """Look at position ``i`` (links to ``i-1``) and name what is wrong, if anything."""
    key = keys.for_row()

    def digest(r: dict[str, Any], seq: int | None = None) -> str | None:
        return _hash(_values(r, seq), r["alg"], key)

    row = rows[i]
    prev_hash = rows[i - 1]["hash"] if i > 0 else GENESIS
    expected_seq = rows[i - 1]["seq"] + 1 if i > 0 else 1
    seq = row["seq"]
    if not isinstance(seq, int):
        return Problem(expected_seq, "altered", f"event {expected_seq} has a non-integer seq")
    if _payload(_values(row)) is None:
        return Problem(seq, "altered", f"event {seq} holds a value of a type the log never writes")
    if seq > expected_seq:
        missing = f"{expected_seq}" if seq - expected_seq == 1 else f"{expected_seq}-{seq - 1}"
        return Problem(
            expected_seq, "removed", f"event(s) {missing} removed (gap before seq {seq})"
        )
    if row["prev_hash"] != prev_hash:
        if i >= 2 and row["prev_hash"] == rows[i - 2]["hash"]:
            return Problem(
                rows[i - 1]["seq"],
                "inserted",
                f"event {rows[i - 1]['seq']} was inserted into the chain",
            )
        for j, other in enumerate(rows):
            if j != i - 1 and other["hash"] == row["prev_hash"]:
                return Problem(
                    seq,
                    "reordered",
                    f"event at seq {seq} belongs after seq {other['seq']}: events were reordered",
                )
        if digest(row) == row["hash"]:
            if i > 0 and digest(rows[i - 1]) == rows[i - 1]["hash"]:
                # The previous event hashes correctly yet is not the one this event was
                # chained to: it was edited and its hash recomputed.
                p = rows[i - 1]["seq"]
                return Problem(
                    p,
                    "altered",
                    f"event {p} was altered and its hash recomputed (event "
                    f"{seq} still links to the original)",
                )
            return Problem(seq, "removed", f"the event(s) before seq {seq} were removed")
        # Deleted, and the later events renumbered to close the gap: the row's content
        # still hashes correctly under its original, higher sequence number.
        for offset in range(1, len(rows) + 1):
            if digest(row, seq + offset) == row["hash"]:
                return Problem(
                    seq,
                    "removed",
                    f"{offset} event(s) before seq {seq} were removed and later events renumbered",
                )
        return Problem(
            seq, "altered", f"event {seq} was altered (its link to the previous event is broken)"
        )
    if digest(row) != row["hash"]:
        nxt = rows[i + 1] if i + 1 < len(rows) else None
        if nxt is not None and nxt["prev_hash"] == prev_hash:
            return Problem(seq, "inserted", f"event {seq} was inserted into the chain")
        if row["alg"] == "hmac-sha256" and keys.current is None and _all_fail(rows, i, digest):
            return Problem(
                seq,
                "wrong_key",
                f"no keyed event from seq {seq} on matches the key given "
                f"({key_id(key) if key else 'none'}): it is not this chain's key",
            )
        return Problem(seq, "altered", f"event {seq} was altered (hash does not match its content)")
    return None


def _all_fail(rows: list[dict[str, Any]], i: int, digest: Any) -> bool:
    """Every keyed event from ``i`` fails while the links between them hold: the key is
    wrong (a log from before key ids could not say which key it wants)."""
    tail = rows[i : i + 20]
    if len(tail) < 2:
        return False
    links = all(tail[n]["prev_hash"] == tail[n - 1]["hash"] for n in range(1, len(tail)))
    return links and all(digest(r) != r["hash"] for r in tail)


def _empty(db: sqlite_utils.Database, cps: Sequence[Checkpoint]) -> Problem | None:
    newest = max(cps, key=lambda c: c.seq, default=None)
    if newest is not None and newest.seq > 0:
        return Problem(
            1,
            "emptied",
            f"the audit log is empty, but the checkpoint of {newest.ts} from "
            f"{newest.source or 'a witness'} recorded {newest.seq} events: they were deleted",
        )
    tables = set(db.table_names())
    for table in _AUDITED_TABLES:
        if table in tables and db.execute(f"SELECT 1 FROM {table} LIMIT 1").fetchone():
            return Problem(
                1,
                "emptied",
                f"the audit log is empty but table {table} holds rows that were recorded in "
                "it: the events were deleted",
            )
    return None


def _against_checkpoints(
    db: sqlite_utils.Database, result: VerifyResult, cps: Sequence[Checkpoint]
) -> Problem | None:
    # Two signed checkpoints that disagree about the same sequence number: a fork.
    by_seq: dict[int, Checkpoint] = {}
    for cp in cps:
        other = by_seq.get(cp.seq)
        if other is not None and other.hash != cp.hash:
            return Problem(
                cp.seq,
                "forked",
                f"checkpoints from {other.source} and {cp.source} disagree at seq {cp.seq}",
            )
        by_seq[cp.seq] = cp
    newest = max(cps, key=lambda c: (c.seq, c.number))
    result.checkpoint_seq, result.checkpoint_source = newest.seq, newest.source
    for cp in sorted(cps, key=lambda c: -c.seq):
        problem = _against(db, result, cp)
        if problem is not None:
            return problem
    return None


def _against(db: sqlite_utils.Database, result: VerifyResult, cp: Checkpoint) -> Problem | None:
    where = f"the checkpoint of {cp.ts} ({cp.source or 'file'})"
    if cp.mode == "hmac" and result.mode == "plain":
        return Problem(
            cp.seq,
            "downgraded",
            f"{where} recorded an HMAC chain (key {cp.key_id}) but the chain is now plain "
            "SHA-256: it was rewritten without the key",
        )
    if result.head_seq < cp.seq:
        first = result.head_seq + 1
        span = f"{first}" if first == cp.seq else f"{first}-{cp.seq}"
        if _knows_checkpoint(db, cp):
            return Problem(
                first,
                "truncated",
                f"events {span} were removed from the end ({where} recorded seq {cp.seq})",
            )
        return Problem(
            first,
            "rolled_back",
            f"the database is an older copy: its newest event is seq {result.head_seq}, "
            f"{where} recorded seq {cp.seq} (events {span} are missing)",
        )
    at = db.execute("SELECT hash FROM audit_events WHERE seq = ?", [cp.seq]).fetchone()
    if at is None or at[0] != cp.hash:
        return Problem(
            cp.seq,
            "rewritten",
            f"the chain up to seq {cp.seq} differs from {where}: it was rebuilt",
        )
    return None


def _knows_checkpoint(db: sqlite_utils.Database, cp: Checkpoint) -> bool:
    """Whether this database itself recorded ``cp`` (or a later one): then events were cut
    from it; if it never heard of it, the whole file is older (a restored copy)."""
    try:
        row = db.execute(
            "SELECT 1 FROM audit_checkpoints WHERE seq >= ? LIMIT 1", [cp.seq]
        ).fetchone()
    except sqlite3.OperationalError:
        return False
    return row is not None
