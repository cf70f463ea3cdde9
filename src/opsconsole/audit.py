"""The hash-chained, append-only audit log: appending events, and the chain's key state.

Every event stores ``prev_hash`` (the hash of the event before it) and ``hash``: SHA-256
over the canonical JSON of the event including ``prev_hash`` - or HMAC-SHA-256 when a
key is configured, so that whoever can write the database cannot rebuild the chain
without the key.

The chain records its own mode: its first event is ``audit.genesis`` and every change
of key (enabled, rotated) or of the checkpoint signing key appends ``audit.key_change``;
their details hold ``log_id``, ``mode`` (plain | hmac), ``key_id`` and
``signing_key_id``. A chain rewritten as plain SHA-256, or verified with another key, is
therefore named for what it is (``downgraded``, ``wrong_key``, ``key_required``).

Verification, checkpoints, witnesses and export live in :mod:`opsconsole.auditing`; the
names are re-exported here so ``from opsconsole.audit import verify`` keeps working.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import sqlite3
import uuid
from collections.abc import Callable
from dataclasses import dataclass
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
from opsconsole.store import Migrations, append_only, immediate, pipelined
from opsconsole.timeutil import isoformat, utcnow

__all__ = [
    "APPEND_HOOKS",
    "CHAIN_ACTIONS",
    "GENESIS",
    "AuditLog",
    "ChainState",
    "chain_state",
    "key_id",
    "load_key",
    "os_user",
]

# The audit tables are the core set (its name predates the other capabilities' sets).
migrations = Migrations("opsconsole.core")


@migrations(name="0001_audit_events")
def _m0001(db: Any) -> None:
    db.execute(
        """
        CREATE TABLE audit_events (
            seq INTEGER PRIMARY KEY,
            ts TEXT NOT NULL,
            actor TEXT NOT NULL,
            interface TEXT NOT NULL,
            action TEXT NOT NULL,
            target TEXT NOT NULL DEFAULT '',
            details TEXT NOT NULL DEFAULT '{}',
            outcome TEXT NOT NULL DEFAULT 'ok',
            alg TEXT NOT NULL,
            prev_hash TEXT NOT NULL,
            hash TEXT NOT NULL
        )
        """
    )
    db.execute("CREATE INDEX audit_events_ts ON audit_events(ts)")
    db.execute("CREATE INDEX audit_events_action ON audit_events(action)")
    # The log is append-only: refuse edits and deletions at the database level. Someone
    # with write access can drop the triggers; the hash chain catches that.
    append_only(db, "audit_events", "audit_events is append-only")


@migrations(name="0002_audit_checkpoints")
def _m0002(db: Any) -> None:
    # The checkpoints this database wrote (the witnesses hold the copies that count):
    # chains each new checkpoint to the previous one, and tells a database whose tail
    # was cut (it knows a checkpoint beyond its head) from an older copy put back.
    db.execute(
        """
        CREATE TABLE audit_checkpoints (
            number INTEGER PRIMARY KEY,
            seq INTEGER NOT NULL,
            hash TEXT NOT NULL,
            digest TEXT NOT NULL,
            body TEXT NOT NULL,
            created_at TEXT NOT NULL
        )
        """
    )


@migrations(name="0003_pg_actor_is_session_user")
def _m0003(db: Any) -> None:
    """PostgreSQL: an event's actor is the authenticated session user, so a modified
    client cannot write in another person's name. Roles that own the schema (and
    superusers) are exempt: they could drop the trigger anyway. TRUNCATE is refused too
    (UPDATE and DELETE are, since 0001); writers also lack the grants (``db init``)."""
    if db.engine != "postgresql":
        return
    db.execute(
        """
        CREATE OR REPLACE FUNCTION audit_events_actor() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN
            IF NEW.actor IS DISTINCT FROM session_user::text AND NOT EXISTS (
                SELECT 1 FROM pg_roles r WHERE r.rolname = session_user
                AND (r.rolsuper OR pg_has_role(session_user,
                     (SELECT relowner FROM pg_class WHERE oid = TG_RELID), 'MEMBER'))
            ) THEN
                RAISE EXCEPTION 'audit actor % is not the session user %', NEW.actor,
                    session_user USING ERRCODE = 'insufficient_privilege',
                    HINT = 'an event is recorded under the database role that writes it';
            END IF;
            RETURN NEW;
        END $$
        """
    )
    db.execute(
        "CREATE TRIGGER audit_events_actor BEFORE INSERT ON audit_events "
        "FOR EACH ROW EXECUTE FUNCTION audit_events_actor()"
    )
    db.execute(
        "CREATE TRIGGER audit_events_no_truncate BEFORE TRUNCATE ON audit_events "
        "FOR EACH STATEMENT EXECUTE FUNCTION audit_events_append_only()"
    )


@migrations(name="0004_audit_events_action_seq")
def _m0004(db: Any) -> None:
    # "The newest event of this action" (the chain's mode on every append, the proven
    # policy and approvals) is an index lookup on (action, seq). With an index on action
    # alone PostgreSQL walks the primary key backwards through the whole log when the
    # action is rare or absent: every append cost O(events).
    db.execute("CREATE INDEX audit_events_action_seq ON audit_events(action, seq)")
    db.execute("DROP INDEX audit_events_action")


# Re-exported lazily from opsconsole.auditing (they import this module).
_MOVED = {
    "Checkpoint": "opsconsole.auditing.checkpoints",
    "read_checkpoint": "opsconsole.auditing.checkpoints",
    "write_checkpoint": "opsconsole.auditing.checkpoints",
    "Problem": "opsconsole.auditing.verify",
    "VerifyResult": "opsconsole.auditing.verify",
    "verify": "opsconsole.auditing.verify",
    "query": "opsconsole.auditing.export",
    "export": "opsconsole.auditing.export",
}


__all__ += list(_MOVED)


def __getattr__(name: str) -> Any:
    if name in _MOVED:
        import importlib

        return getattr(importlib.import_module(_MOVED[name]), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


GENESIS = "0" * 64
CHAIN_ACTIONS = ("audit.genesis", "audit.key_change")
Interface = Literal["cli", "tui", "scheduler", "api", "test"]
# Called with (db, event row) inside the append's transaction, after the row is written,
# so what a hook writes (e.g. an outbox message, see opsconsole.outbox) commits together
# with the event and the action it records, or not at all. A hook that raises fails the
# append (fail closed). Hooks register themselves when their module is imported.
# On PostgreSQL the append is pipelined: an error of a statement a hook runs may surface
# at a later read or at COMMIT (it still fails the append), and an append whose guessed
# head was taken by another writer is rolled back and run again, hooks included - so a
# hook writes to the database only.
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


def key_id(key: bytes) -> str:
    """A short public name for an HMAC key (derived with the key: reveals nothing of it)."""
    return hmac.new(key, b"opsconsole audit key id", hashlib.sha256).hexdigest()[:16]


@dataclass(frozen=True)
class ChainState:
    """What the newest genesis / key-change event says about the chain."""

    log_id: str
    mode: Literal["plain", "hmac"]
    key_id: str | None
    signing_key_id: str | None
    seq: int  # the event that said so

    @classmethod
    def from_details(cls, details: dict[str, Any], seq: int) -> ChainState:
        mode = details.get("mode")
        return cls(
            log_id=str(details.get("log_id") or ""),
            mode="hmac" if mode == "hmac" else "plain",
            key_id=details.get("key_id") if isinstance(details.get("key_id"), str) else None,
            signing_key_id=details.get("signing_key_id")
            if isinstance(details.get("signing_key_id"), str)
            else None,
            seq=seq,
        )


# The newest event of one action: one lookup on the (action, seq) index (migration 0004).
_NEWEST = "SELECT seq, details FROM audit_events WHERE action = ? ORDER BY seq DESC LIMIT 1"
# The head of the chain and the newest event of each chain action (CHAIN_ACTIONS, in that
# order), in one query: one round trip.
_HEADS = (
    "SELECT 0, seq, hash FROM (SELECT seq, hash FROM audit_events ORDER BY seq DESC LIMIT 1) "
    f"AS head UNION ALL SELECT 1, seq, details FROM ({_NEWEST}) AS genesis "
    f"UNION ALL SELECT 1, seq, details FROM ({_NEWEST}) AS key_change"
)


_COLUMNS = "seq, ts, actor, interface, action, target, details, outcome, alg, prev_hash, hash"
_VALUES = ":ts, :actor, :interface, :action, :target, :details, :outcome, :alg, :prev_hash, :hash"
_INSERT = f"INSERT INTO audit_events ({_COLUMNS}) VALUES (:seq, {_VALUES})"
# The seq is NULL (refused) unless the event after which it was hashed is the head.
# max(seq), not NOT EXISTS (seq >= ...): a generic plan may answer the latter with a scan
# of the whole log; max() is always one step down the primary key index.
_GUARDED_INSERT = (
    f"INSERT INTO audit_events ({_COLUMNS}) VALUES ((SELECT seq + 1 FROM audit_events "
    "WHERE seq = :seq - 1 AND hash = :prev_hash "
    f"AND seq = (SELECT max(seq) FROM audit_events)), {_VALUES})"
)


def _state(seq: int, text: str) -> ChainState:
    try:
        details = json.loads(text)
    except ValueError:
        details = {}
    return ChainState.from_details(details if isinstance(details, dict) else {}, seq)


def chain_state(db: sqlite_utils.Database) -> ChainState | None:
    """The chain's current mode and keys (None: an empty log, or one from before chains
    recorded their mode)."""
    found = [db.execute(_NEWEST, [action]).fetchone() for action in CHAIN_ACTIONS]
    row = max((r for r in found if r is not None), key=lambda r: int(r[0]), default=None)
    return None if row is None else _state(row[0], row[1])


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


AppendHook = Callable[[sqlite_utils.Database, dict[str, Any]], None]


class AuditLog:
    """Appends events for one actor and interface. Every write is its own commit
    unless it runs inside a caller's transaction (see :func:`store.immediate`), in which
    case the event and the action's own writes commit - or fail - together.

    ``on_append`` callables run inside the append's transaction, after the event row is
    inserted, with the database and the event (a dict of its columns): rows they write
    (a notification outbox, say) commit or roll back with the event.
    ``after_commit`` callables run once an event has been committed on its own (not
    inside a caller's transaction); the automatic checkpointer hangs there.

    ``previous_keys`` are older HMAC keys: with the chain's current key among them, a
    new ``key`` is a rotation (recorded as ``audit.key_change``). Without it a writer
    whose key differs from the chain's is refused, as is a writer without a key on a
    keyed chain: a misconfigured process must not silently re-key or downgrade the log.
    """

    def __init__(
        self,
        db: sqlite_utils.Database,
        *,
        actor: str | None = None,
        interface: Interface = "cli",
        key: bytes | None = None,
        on_behalf_of: str | None = None,
        previous_keys: list[bytes] | None = None,
        signing_key_id: str | None = None,
    ) -> None:
        from opsconsole.identity import session

        self.db = db
        self.actor = actor or os_user()
        # On PostgreSQL the actor is the authenticated session user: the database refuses
        # an event in another name (0003_pg_actor_is_session_user). A service or clock
        # label asked for here is kept in the details as ``agent`` instead.
        self.agent: str | None = None
        self._session = session(db)
        if self._session is not None:
            named = actor or self._session.user
            self.actor = named if self._session.privileged else self._session.user
            if named != self.actor:
                self.agent = named
        # An annotation only (``--as``): recorded beside the real actor, grants nothing.
        self.on_behalf_of = on_behalf_of
        self.interface: Interface = interface
        self.key = key
        self.previous_keys = list(previous_keys or [])
        self.signing_key_id = signing_key_id
        self.on_append: list[AppendHook] = []
        self.after_commit: list[Callable[[AuditLog, int], None]] = []
        self._unannounced: int | None = None
        # The last event this log committed in a transaction of its own, and whether it
        # may assume that event is still the head (see _append_on_own_head).
        self._mine: tuple[int, str] | None = None
        self._alone: tuple[bytes | None, str | None] | None = None

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
        det = dict(redact(details or {}))
        agent = self.agent
        if actor and actor != self.actor and self._session and not self._session.privileged:
            agent, actor = actor, self.actor  # e.g. the deadline clock: the session user acts
        actor = actor or self.actor
        if agent and "agent" not in det:
            det["agent"] = agent
        real_user = os_user()
        if actor != real_user and "os_user" not in det:
            det["os_user"] = real_user
        if self.on_behalf_of and "on_behalf_of" not in det:
            det["on_behalf_of"] = self.on_behalf_of
        row: dict[str, Any] = {
            "actor": actor,
            "interface": interface or self.interface,
            "action": action,
            "target": redact(target),
            "details": json.dumps(det, sort_keys=True, ensure_ascii=False, default=str),
            "outcome": outcome,
        }
        try:
            own = not self.db.conn.in_transaction
            seq = self._append_on_own_head(row) if own else None
            if seq is None:
                # On PostgreSQL, pipelined: BEGIN, the write lock and the head go out
                # together, the insert (and what the hooks write) with the COMMIT.
                with pipelined(self.db), immediate(self.db):
                    head, state = self._heads()
                    alone = head is not None and head == self._mine
                    head = self._key_state_events(row["actor"], row["interface"], state, head)
                    seq, digest = self._append(row, head)
                if own:
                    self._mine = (seq, digest)
                    self._alone = (self.key, self.signing_key_id) if alone else None
        except AuditWriteError:
            raise
        except (sqlite3.Error, OSError, StoreError) as exc:
            raise AuditWriteError(
                f"audit log not writable ({exc}); '{action}' was not performed"
            ) from None
        self._unannounced = seq
        self.run_after_commit()
        return seq

    def run_after_commit(self) -> None:
        """Run the ``after_commit`` hooks if events were appended since they last ran and
        no transaction is open (an event inside a caller's transaction is only known to
        be committed once it closes: the CLI calls this again at exit)."""
        if self._unannounced is None or self.db.conn.in_transaction:
            return
        seq, self._unannounced = self._unannounced, None
        for hook in list(self.after_commit):
            hook(self, seq)

    def _append_on_own_head(self, fields: dict[str, Any]) -> int | None:
        """The single writer's append on PostgreSQL in one round trip, or None.

        When the head this log read last time was its own previous event (nobody else
        wrote in between), it guesses that its newest event is still the head and sends
        BEGIN, the write lock, the event and COMMIT together. The chain state needs no
        reading: it changes only by an appended event. The guess is checked by the
        INSERT itself, under the lock: unless the head is that event, the new seq is
        NULL, the NOT NULL constraint refuses the row, and the append starts over,
        reading the head (a writer on another host costs one wasted round trip, then
        this log stops guessing until it is alone again)."""
        if (
            self.db.engine != "postgresql"
            or self._mine is None
            or self._alone != (self.key, self.signing_key_id)
        ):
            return None
        try:
            # BEGIN and COMMIT by hand, not through immediate(): a refused row is then
            # reported as what it is (IntegrityError) wherever the pipeline surfaces it,
            # even at COMMIT; pipelined() rolls back whatever failed.
            with pipelined(self.db):
                self.db.begin_write()
                seq, digest = self._append(fields, self._mine, guarded=True)
                self.db.execute("COMMIT")
        except sqlite3.IntegrityError:
            self._alone = None
            return None
        self._mine = (seq, digest)
        return seq

    def _heads(self) -> tuple[tuple[int, str] | None, ChainState | None]:
        """Inside the append transaction: the chain's head (seq, hash) and its state."""
        head, state = None, None
        for kind, seq, text in self.db.execute(_HEADS, list(CHAIN_ACTIONS)).fetchall():
            if kind == 0:
                head = (int(seq), str(text))
            elif state is None or int(seq) > state.seq:
                state = _state(int(seq), text)
        return head, state

    def _append(
        self, fields: dict[str, Any], last: tuple[int, str] | None, *, guarded: bool = False
    ) -> tuple[int, str]:
        """Write the event after ``last`` (the head read under the write lock, or with
        ``guarded`` the head guessed and checked by the INSERT); returns the new head."""
        row = {**fields, "ts": isoformat(utcnow()), "alg": "hmac-sha256" if self.key else "sha256"}
        row["seq"] = (last[0] + 1) if last else 1
        row["prev_hash"] = last[1] if last else GENESIS
        row["hash"] = _digest(row, row["prev_hash"], self.key)
        self.db.execute(_GUARDED_INSERT if guarded else _INSERT, row)
        for hook in [*APPEND_HOOKS, *self.on_append]:
            hook(self.db, row)
        return int(row["seq"]), str(row["hash"])

    def _key_state_events(
        self,
        actor: str,
        interface: str,
        state: ChainState | None,
        head: tuple[int, str] | None,
    ) -> tuple[int, str] | None:
        """Inside the append transaction: write the genesis event of a new log, or a
        key-change event when this writer's keys differ from what the chain records
        (``state``). Returns the chain's head afterwards."""
        mode = "hmac" if self.key else "plain"
        kid = key_id(self.key) if self.key else None
        if state is None:
            if self.key is None and self.signing_key_id is None:
                # A plain, unsigned log needs no genesis: no chain event means plain
                # (a keyed chain rewritten without its key is "downgraded" either way).
                return head
            action, previous = ("audit.genesis" if head is None else "audit.key_change"), None
            log_id = str(uuid.uuid4())
        else:
            if (state.mode, state.key_id, state.signing_key_id) == (
                mode,
                kid,
                self.signing_key_id or state.signing_key_id,
            ):
                return head
            if state.mode == "hmac" and self.key is None:
                raise AuditWriteError(
                    f"the audit chain is keyed (HMAC key {state.key_id}) but this process has "
                    "no key: set OPSCONSOLE_AUDIT_KEY or the settings' audit_key_file; "
                    "nothing was performed"
                )
            if (
                state.mode == "hmac"
                and kid != state.key_id
                and not any(key_id(k) == state.key_id for k in self.previous_keys)
            ):
                raise AuditWriteError(
                    f"the audit chain is keyed with key {state.key_id}, this process has key "
                    f"{kid}: to rotate, list the old key in audit_previous_key_files; "
                    "nothing was performed"
                )
            action, previous, log_id = "audit.key_change", state, state.log_id
        details: dict[str, Any] = {
            "log_id": log_id,
            "mode": mode,
            "key_id": kid,
            "signing_key_id": self.signing_key_id
            or (previous.signing_key_id if previous else None),
        }
        if previous is not None:
            details["previous"] = {
                "mode": previous.mode,
                "key_id": previous.key_id,
                "signing_key_id": previous.signing_key_id,
            }
        return self._append(
            {
                "actor": actor,
                "interface": interface,
                "action": action,
                "target": log_id,
                "details": json.dumps(details, sort_keys=True),
                "outcome": "ok",
            },
            head,
        )
