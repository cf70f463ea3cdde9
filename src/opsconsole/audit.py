"""The hash-chained, append-only audit log.

Every event stores ``prev_hash`` (the hash of the event before it) and ``hash``: SHA-256
over the canonical JSON of the event including ``prev_hash`` - or HMAC-SHA-256 when a
key is configured, so that whoever can write the database cannot rebuild the chain
without the key. ``verify`` walks the chain and names the first problem.

What verify detects (see README, "Audit log"):

* an edited field of any event (``altered``);
* an event deleted from the middle (``removed``), inserted (``inserted``), or moved
  (``reordered``);
* events removed from the end, and a rewritten tail, only against a checkpoint written
  earlier to a place the attacker cannot also change (``truncated``, ``rewritten``).

What it cannot detect: without a key, an attacker with write access can recompute a
whole consistent chain (only a checkpoint held elsewhere shows it); with a key, a chain
truncated to before the last checkpoint you kept is only caught with that checkpoint.
"""

from __future__ import annotations

import csv
import hashlib
import hmac
import io
import json
import os
import sqlite3
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any, Literal

import sqlite_utils

from opsconsole.errors import (
    AuditWriteError,
    ConfigError,
    OpsError,
    SourceLocation,
    StoreError,
)
from opsconsole.redact import redact
from opsconsole.store import immediate
from opsconsole.timeutil import isoformat, utcnow

__all__ = [
    "APPEND_HOOKS",
    "GENESIS",
    "AuditLog",
    "Checkpoint",
    "Problem",
    "VerifyResult",
    "export",
    "load_key",
    "os_user",
    "query",
    "read_checkpoint",
    "verify",
    "write_checkpoint",
]

GENESIS = "0" * 64
Interface = Literal["cli", "tui", "scheduler", "api", "test"]
# Called with (db, event row) inside the append's transaction, after the row is written,
# so what a hook writes (e.g. an outbox message, see opsconsole.outbox) commits together
# with the event and the action it records, or not at all. A hook that raises fails the
# append (fail closed). Hooks register themselves when their module is imported.
APPEND_HOOKS: list[Callable[[sqlite_utils.Database, dict[str, Any]], None]] = []
_FIELDS = ("seq", "ts", "actor", "interface", "action", "target", "details", "outcome", "alg")


def os_user() -> str:
    """The OS account of the process (effective uid), never $USER/$LOGNAME."""
    from opsconsole.identity import os_user as account

    return account()


def load_key(key_file: Path | None = None) -> bytes | None:
    """The HMAC key: ``OPSCONSOLE_AUDIT_KEY``, else the settings' key file, else none."""
    env = os.environ.get("OPSCONSOLE_AUDIT_KEY")
    if env:
        return env.encode()
    if key_file is not None:
        # A configuration problem (exit 3), named by the settings field that points here.
        where = SourceLocation(str(key_file))
        try:
            data = key_file.read_bytes().strip()
        except OSError as exc:
            reason = f"cannot read: {exc.strerror or exc}"
            raise ConfigError([(where, "settings.audit_key_file", reason)]) from None
        if not data:
            raise ConfigError([(where, "settings.audit_key_file", "the key file is empty")])
        return data
    return None


def _digest(row: dict[str, Any], prev_hash: str, key: bytes | None) -> str:
    # A JSON array in a fixed field order is canonical and cheap to build.
    payload = json.dumps(
        [row[f] for f in _FIELDS] + [prev_hash], ensure_ascii=False, separators=(",", ":")
    ).encode()
    if row["alg"] == "hmac-sha256":
        if key is None:
            raise OpsError(
                "this audit chain is keyed (HMAC); set OPSCONSOLE_AUDIT_KEY or the "
                "settings' audit_key_file to verify it"
            )
        return hmac.new(key, payload, hashlib.sha256).hexdigest()
    return hashlib.sha256(payload).hexdigest()


class AuditLog:
    """Appends events for one actor and interface. Every write is its own commit
    unless it runs inside a caller's transaction (see :func:`store.immediate`), in which
    case the event and the action's own writes commit - or fail - together."""

    def __init__(
        self,
        db: sqlite_utils.Database,
        *,
        actor: str | None = None,
        interface: Interface = "cli",
        key: bytes | None = None,
        on_behalf_of: str | None = None,
    ) -> None:
        self.db = db
        self.actor = actor or os_user()
        # An annotation only (``--as``): recorded beside the real actor, grants nothing.
        self.on_behalf_of = on_behalf_of
        self.interface: Interface = interface
        self.key = key

    def record(
        self,
        action: str,
        target: str = "",
        details: dict[str, Any] | None = None,
        outcome: str = "ok",
        *,
        actor: str | None = None,
        interface: Interface | None = None,
    ) -> int:
        """Append one event and return its sequence number.

        Raises :class:`AuditWriteError` if it cannot be written: callers must then not
        perform (or must roll back) the action it describes.
        """
        actor = actor or self.actor
        det = dict(redact(details or {}))
        real_user = os_user()
        if actor != real_user and "os_user" not in det:
            det["os_user"] = real_user
        if self.on_behalf_of and "on_behalf_of" not in det:
            det["on_behalf_of"] = self.on_behalf_of
        row: dict[str, Any] = {
            "ts": isoformat(utcnow()),
            "actor": actor,
            "interface": interface or self.interface,
            "action": action,
            "target": redact(target),
            "details": json.dumps(det, sort_keys=True, ensure_ascii=False, default=str),
            "outcome": outcome,
            "alg": "hmac-sha256" if self.key else "sha256",
        }
        try:
            with immediate(self.db):
                last = self.db.execute(
                    "SELECT seq, hash FROM audit_events ORDER BY seq DESC LIMIT 1"
                ).fetchone()
                row["seq"] = (last[0] + 1) if last else 1
                row["prev_hash"] = last[1] if last else GENESIS
                row["hash"] = _digest(row, row["prev_hash"], self.key)
                self.db.execute(
                    "INSERT INTO audit_events (seq, ts, actor, interface, action, target, "
                    "details, outcome, alg, prev_hash, hash) VALUES (:seq, :ts, :actor, "
                    ":interface, :action, :target, :details, :outcome, :alg, :prev_hash, :hash)",
                    row,
                )
                for hook in APPEND_HOOKS:
                    hook(self.db, row)
        except (sqlite3.Error, OSError, StoreError) as exc:
            raise AuditWriteError(
                f"audit log not writable ({exc}); '{action}' was not performed"
            ) from None
        return int(row["seq"])


# --- verification -----------------------------------------------------------------

ProblemKind = Literal[
    "altered", "inserted", "removed", "reordered", "truncated", "rewritten", "checkpoint"
]


@dataclass
class Problem:
    seq: int
    kind: ProblemKind
    message: str


@dataclass
class VerifyResult:
    events: int
    head_seq: int
    head_hash: str
    problem: Problem | None = None
    checkpoint_seq: int | None = None

    @property
    def ok(self) -> bool:
        return self.problem is None


def _rows(db: sqlite_utils.Database) -> Iterator[dict[str, Any]]:
    cur = db.execute(
        "SELECT seq, ts, actor, interface, action, target, details, outcome, alg, prev_hash, "
        "hash FROM audit_events ORDER BY seq"
    )
    names = [d[0] for d in cur.description]
    for values in cur:
        yield dict(zip(names, values, strict=True))


def _classify(rows: list[dict[str, Any]], i: int, key: bytes | None) -> Problem | None:
    """Look at position ``i`` (links to ``i-1``) and name what is wrong, if anything."""
    row = rows[i]
    prev_hash = rows[i - 1]["hash"] if i > 0 else GENESIS
    expected_seq = rows[i - 1]["seq"] + 1 if i > 0 else 1
    seq = row["seq"]
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
        if _digest(row, row["prev_hash"], key) == row["hash"]:
            return Problem(seq, "removed", f"the event(s) before seq {seq} were removed")
        # Deleted, and the later events renumbered to close the gap: the row's content
        # still hashes correctly under its original, higher sequence number.
        for offset in range(1, len(rows) + 1):
            if _digest({**row, "seq": seq + offset}, row["prev_hash"], key) == row["hash"]:
                return Problem(
                    seq,
                    "removed",
                    f"{offset} event(s) before seq {seq} were removed and later events renumbered",
                )
        return Problem(
            seq, "altered", f"event {seq} was altered (its link to the previous event is broken)"
        )
    if _digest(row, row["prev_hash"], key) != row["hash"]:
        nxt = rows[i + 1] if i + 1 < len(rows) else None
        if nxt is not None and nxt["prev_hash"] == prev_hash:
            return Problem(seq, "inserted", f"event {seq} was inserted into the chain")
        return Problem(seq, "altered", f"event {seq} was altered (hash does not match its content)")
    return None


def verify(
    db: sqlite_utils.Database, *, key: bytes | None = None, checkpoint: Checkpoint | None = None
) -> VerifyResult:
    """Walk the whole chain; stop at the first problem and name it."""
    # Fast path over plain tuples (no per-row dicts): the link, the sequence and the
    # digest are all right. Only when something is wrong are the rows loaded whole to
    # classify the problem. The column order is _FIELDS + prev_hash, then hash.
    encode = json.JSONEncoder(ensure_ascii=False, separators=(",", ":")).encode
    sha256 = hashlib.sha256
    result = VerifyResult(events=0, head_seq=0, head_hash=GENESIS)
    prev_hash = GENESIS
    prev_seq = 0
    broken_at: int | None = None
    cur = db.conn.execute(
        "SELECT seq, ts, actor, interface, action, target, details, outcome, alg, prev_hash, "
        "hash FROM audit_events ORDER BY seq"
    )
    for i, row in enumerate(cur):
        result.events += 1
        alg = row[8]
        if key is not None:
            if alg != "hmac-sha256":
                result.problem = Problem(
                    row[0],
                    "altered",
                    f"event {row[0]} is not HMAC-signed although a key is configured",
                )
                return result
            digest = hmac.new(key, encode(list(row[:10])).encode(), hashlib.sha256).hexdigest()
        elif alg == "hmac-sha256":
            _digest({"alg": alg}, "", None)  # raises the "keyed chain" error
            digest = ""
        else:
            digest = sha256(encode(list(row[:10])).encode()).hexdigest()
        if row[9] == prev_hash and row[0] == prev_seq + 1 and digest == row[10]:
            prev_hash, prev_seq = row[10], row[0]
            continue
        broken_at = i
        break
    if broken_at is not None:
        rows = list(_rows(db))
        result.events = len(rows)
        result.problem = _classify(rows, broken_at, key) or Problem(
            rows[broken_at]["seq"], "altered", f"event {rows[broken_at]['seq']} is inconsistent"
        )
        return result
    result.head_seq, result.head_hash = prev_seq, prev_hash
    if checkpoint is not None:
        result.checkpoint_seq = checkpoint.seq
        checkpoint.check_signature(key)
        if result.head_seq < checkpoint.seq:
            first = result.head_seq + 1
            span = f"{first}" if first == checkpoint.seq else f"{first}-{checkpoint.seq}"
            result.problem = Problem(
                first,
                "truncated",
                f"events {span} were removed from the end (checkpoint of {checkpoint.ts} "
                f"recorded seq {checkpoint.seq})",
            )
        else:
            at = db.execute(
                "SELECT hash FROM audit_events WHERE seq = ?", [checkpoint.seq]
            ).fetchone()
            if at is None or at[0] != checkpoint.hash:
                result.problem = Problem(
                    checkpoint.seq,
                    "rewritten",
                    f"the chain up to seq {checkpoint.seq} differs from the checkpoint of "
                    f"{checkpoint.ts}: it was rebuilt",
                )
    return result


# --- checkpoints ---------------------------------------------------------------------


@dataclass
class Checkpoint:
    seq: int
    hash: str
    ts: str
    alg: str
    signature: str | None = field(default=None)

    def _payload(self) -> bytes:
        return json.dumps([self.seq, self.hash, self.ts, self.alg], separators=(",", ":")).encode()

    def sign(self, key: bytes | None) -> None:
        self.signature = hmac.new(key, self._payload(), hashlib.sha256).hexdigest() if key else None

    def check_signature(self, key: bytes | None) -> None:
        if self.signature is None:
            return
        if key is None:
            raise OpsError("the checkpoint is signed; set OPSCONSOLE_AUDIT_KEY to check it")
        good = hmac.new(key, self._payload(), hashlib.sha256).hexdigest()
        if not hmac.compare_digest(good, self.signature):
            raise OpsError(
                "the checkpoint's signature is invalid: it was altered or made with another key"
            )


def write_checkpoint(log: AuditLog, out: Path) -> Checkpoint:
    """Record the checkpoint action, then write the chain head (which is that record)."""
    log.record("audit.checkpoint", str(out))
    row = log.db.execute(
        "SELECT seq, hash, alg FROM audit_events ORDER BY seq DESC LIMIT 1"
    ).fetchone()
    cp = Checkpoint(seq=row[0], hash=row[1], ts=isoformat(utcnow()), alg=row[2])
    cp.sign(log.key)
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps(asdict(cp), indent=2) + "\n", encoding="utf-8")
    except OSError as exc:
        raise OpsError(f"cannot write checkpoint {out}: {exc}") from None
    return cp


def read_checkpoint(path: Path) -> Checkpoint:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        return Checkpoint(
            **{k: data[k] for k in ("seq", "hash", "ts", "alg")}, signature=data.get("signature")
        )
    except FileNotFoundError:
        raise OpsError(f"checkpoint file not found: {path}") from None
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise OpsError(f"{path}: not a checkpoint file ({exc})") from None


# --- queries and export ----------------------------------------------------------------


def query(
    db: sqlite_utils.Database,
    *,
    since: datetime | None = None,
    until: datetime | None = None,
    actor: str | None = None,
    action: str | None = None,
    target: str | None = None,
    limit: int | None = None,
    newest_first: bool = False,
) -> list[dict[str, Any]]:
    """Events matching every given filter. ``action`` and ``target`` match a prefix
    (``runbook.`` finds every runbook event); a trailing ``*`` is allowed too."""
    where: list[str] = []
    params: list[Any] = []
    if since is not None:
        where.append("ts >= ?")
        params.append(isoformat(since))
    if until is not None:
        where.append("ts <= ?")
        params.append(isoformat(until))
    if actor:
        where.append("actor = ?")
        params.append(actor)
    if action:
        where.append("action LIKE ? ESCAPE '\\'")
        params.append(_prefix_like(action))
    if target:
        where.append("target LIKE ? ESCAPE '\\'")
        params.append(_prefix_like(target))
    sql = "SELECT seq, ts, actor, interface, action, target, details, outcome FROM audit_events"
    if where:
        sql += " WHERE " + " AND ".join(where)
    sql += " ORDER BY seq DESC" if newest_first else " ORDER BY seq"
    if limit:
        if not newest_first:
            newest = sql.replace("ORDER BY seq", "ORDER BY seq DESC")
            sql = f"SELECT * FROM ({newest} LIMIT {int(limit)}) ORDER BY seq"
        else:
            sql += f" LIMIT {int(limit)}"
    rows = [dict(r) for r in db.query(sql, params)]
    for r in rows:
        r["details"] = json.loads(r["details"])
    return rows


def _prefix_like(text: str) -> str:
    escaped = text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return escaped.removesuffix("*") + "%"


def export(db: sqlite_utils.Database, fmt: Literal["jsonl", "csv"]) -> Iterator[str]:
    """The full log, with hashes, as JSON lines or CSV (one string per line)."""
    if fmt == "jsonl":
        for row in _rows(db):
            yield json.dumps(row, ensure_ascii=False) + "\n"
        return
    columns = [*_FIELDS, "prev_hash", "hash"]
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=columns)
    writer.writeheader()
    yield buf.getvalue()
    for row in _rows(db):
        buf.seek(0)
        buf.truncate()
        writer.writerow(row)
        yield buf.getvalue()
