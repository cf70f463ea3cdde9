"""Signed checkpoints of the chain head, and the Ed25519 keys that sign them.

A checkpoint says "at time T the log ``log_id`` had ``seq`` events, the last hashing to
``hash``, in mode ``mode`` with HMAC key ``key_id``". It is signed with an Ed25519 key
whose private half need not be on the writers' hosts (a file readable only by the
scheduler's account), and chained to the checkpoint before it (``previous`` is the
SHA-256 of that one's signed payload). A verifier needs only the public key.

When a public key is configured (or the chain records a signing key id), signatures
are mandatory: an unsigned checkpoint, or one signed by another key, is rejected. Every
field of a checkpoint file is type-checked; a bad file is an outcome
(``checkpoint_invalid``), not a traceback.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import json
import os
import sqlite3
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from opsconsole.audit import GENESIS, AuditLog, chain_state
from opsconsole.errors import AuditWriteError, ConfigError, OpsError, SourceLocation, StoreError
from opsconsole.store import immediate, store_failure
from opsconsole.timeutil import isoformat, utcnow

if TYPE_CHECKING:
    import sqlite_utils
    from cryptography.hazmat.primitives.asymmetric.ed25519 import (
        Ed25519PrivateKey,
        Ed25519PublicKey,
    )

    from opsconsole.auditing.verify import Problem
    from opsconsole.auditing.witnesses import Witness

__all__ = [
    "FORMAT",
    "Checkpoint",
    "CheckpointError",
    "check",
    "generate_keypair",
    "load_private_key",
    "load_public_key",
    "make_checkpoint",
    "parse_checkpoint",
    "read_checkpoint",
    "signing_key_id",
    "take_checkpoint",
    "write_checkpoint",
]

FORMAT = "opsconsole-checkpoint/2"


class CheckpointError(OpsError):
    """A checkpoint file that is not one (wrong type, missing field): exit 6."""

    exit_code = 6


# field -> (types accepted, nullable)
_SCHEMA: dict[str, tuple[tuple[type, ...], bool]] = {
    "format": ((str,), False),
    "number": ((int,), False),
    "seq": ((int,), False),
    "hash": ((str,), False),
    "ts": ((str,), False),
    "mode": ((str,), False),
    "key_id": ((str,), True),
    "log_id": ((str,), True),
    "previous": ((str,), True),
    "signing_key_id": ((str,), True),
    "signature": ((str,), True),
}


@dataclass
class Checkpoint:
    number: int
    seq: int
    hash: str
    ts: str
    mode: str = "plain"
    key_id: str | None = None
    log_id: str | None = None
    previous: str | None = None
    signing_key_id: str | None = None
    signature: str | None = None
    source: str | None = field(default=None, compare=False)

    def body(self) -> dict[str, Any]:
        return {
            "format": FORMAT,
            "number": self.number,
            "seq": self.seq,
            "hash": self.hash,
            "ts": self.ts,
            "mode": self.mode,
            "key_id": self.key_id,
            "log_id": self.log_id,
            "previous": self.previous,
            "signing_key_id": self.signing_key_id,
        }

    def payload(self) -> bytes:
        return json.dumps(self.body(), sort_keys=True, separators=(",", ":")).encode()

    def digest(self) -> str:
        """What the next checkpoint's ``previous`` holds."""
        return hashlib.sha256(self.payload()).hexdigest()

    def to_bytes(self) -> bytes:
        return (json.dumps({**self.body(), "signature": self.signature}, indent=2) + "\n").encode()

    def sign(self, private: Ed25519PrivateKey) -> None:
        self.signing_key_id = signing_key_id(private.public_key())
        self.signature = base64.b64encode(private.sign(self.payload())).decode()


# --- keys ---------------------------------------------------------------------------


def signing_key_id(public: Ed25519PublicKey) -> str:
    from cryptography.hazmat.primitives import serialization

    raw = public.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return hashlib.sha256(raw).hexdigest()[:16]


def _key_error(path: Path, field_name: str, reason: str) -> ConfigError:
    return ConfigError([(SourceLocation(str(path)), field_name, reason)])


def load_private_key(path: Path) -> Ed25519PrivateKey:
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    try:
        key = serialization.load_pem_private_key(path.read_bytes(), password=None)
    except OSError as exc:
        raise _key_error(path, "audit.signing_key_file", f"cannot read: {exc.strerror}") from None
    except (ValueError, TypeError) as exc:
        raise _key_error(path, "audit.signing_key_file", f"not a PEM private key ({exc})") from None
    if not isinstance(key, Ed25519PrivateKey):
        raise _key_error(path, "audit.signing_key_file", "not an Ed25519 key")
    return key


def load_public_key(path: Path) -> Ed25519PublicKey:
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

    try:
        data = path.read_bytes()
    except OSError as exc:
        raise _key_error(path, "audit.public_key_file", f"cannot read: {exc.strerror}") from None
    try:
        key = (
            serialization.load_ssh_public_key(data)
            if data.startswith(b"ssh-ed25519")
            else serialization.load_pem_public_key(data)
        )
    except (ValueError, TypeError) as exc:
        raise _key_error(path, "audit.public_key_file", f"not a public key ({exc})") from None
    if not isinstance(key, Ed25519PublicKey):
        raise _key_error(path, "audit.public_key_file", "not an Ed25519 key")
    return key


def generate_keypair(private_path: Path, public_path: Path) -> str:
    """Write a new Ed25519 key pair (private 0600, refusing to overwrite); its key id."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    private = Ed25519PrivateKey.generate()
    pem = private.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    pub = private.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    for path, data, mode in ((private_path, pem, 0o600), (public_path, pub, 0o644)):
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
        except FileExistsError:
            raise OpsError(f"{path} exists: refusing to overwrite a key") from None
        except OSError as exc:
            raise OpsError(f"cannot write {path}: {exc.strerror}") from None
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
    return signing_key_id(private.public_key())


# --- reading and checking -------------------------------------------------------------


def parse_checkpoint(data: bytes, source: str) -> Checkpoint:
    """Type-check every field; :class:`CheckpointError` names the first bad one."""
    try:
        obj = json.loads(data.decode("utf-8"))
    except (UnicodeDecodeError, ValueError) as exc:
        raise CheckpointError(f"{source}: not a checkpoint file (not JSON: {exc})") from None
    if not isinstance(obj, dict):
        raise CheckpointError(f"{source}: not a checkpoint file (not a JSON object)")
    if obj.get("format") != FORMAT:
        raise CheckpointError(f"{source}: format: expected {FORMAT!r}, found {obj.get('format')!r}")
    unknown = sorted(set(obj) - set(_SCHEMA))
    if unknown:
        raise CheckpointError(f"{source}: unknown field(s) {', '.join(unknown)}")
    for name, (types, nullable) in _SCHEMA.items():
        if name not in obj:
            if nullable:
                continue
            raise CheckpointError(f"{source}: {name}: missing")
        value = obj[name]
        if value is None and nullable:
            continue
        # bool is an int in Python; a checkpoint never holds one.
        if isinstance(value, bool) or not isinstance(value, types):
            want = " or ".join(t.__name__ for t in types)
            raise CheckpointError(
                f"{source}: {name}: expected {want}, found {type(value).__name__} {value!r}"
            )
    if obj["seq"] < 0 or obj["number"] < 1:
        raise CheckpointError(f"{source}: seq/number out of range")
    if len(obj["hash"]) != 64 or any(c not in "0123456789abcdef" for c in obj["hash"]):
        raise CheckpointError(f"{source}: hash: expected 64 hex digits")
    if obj["mode"] not in ("plain", "hmac"):
        raise CheckpointError(f"{source}: mode: expected plain or hmac, found {obj['mode']!r}")
    try:
        from opsconsole.timeutil import parse_when

        parse_when(obj["ts"])
    except ValueError:
        raise CheckpointError(f"{source}: ts: not an ISO-8601 time: {obj['ts']!r}") from None
    obj.pop("format")
    return Checkpoint(**obj, source=source)


def read_checkpoint(path: Path) -> Checkpoint:
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise OpsError(f"checkpoint file not found: {path}", exit_code=4) from None
    except OSError as exc:
        raise OpsError(f"cannot read checkpoint {path}: {exc.strerror}") from None
    return parse_checkpoint(data, str(path))


def check(
    cp: Checkpoint, public: Ed25519PublicKey | None, *, required_signer: str | None = None
) -> Problem | None:
    """Whether ``cp`` may be trusted: signed by ``public`` when one is given (or when the
    chain says its checkpoints are signed by ``required_signer``)."""
    from cryptography.exceptions import InvalidSignature

    from opsconsole.auditing.verify import Problem

    src = cp.source or "checkpoint"
    if public is None:
        if required_signer is not None:
            return Problem(
                cp.seq,
                "key_required",
                f"the chain's checkpoints are signed with key {required_signer}: give its "
                "public key (settings audit.public_key_file or --public-key)",
            )
        return None
    expected = signing_key_id(public)
    if cp.signature is None:
        return Problem(
            cp.seq,
            "checkpoint_invalid",
            f"{src} is unsigned: rejected (checkpoints must be signed with key {expected})",
        )
    if cp.signing_key_id != expected:
        return Problem(
            cp.seq,
            "checkpoint_invalid",
            f"{src} is signed with key {cp.signing_key_id}, not the configured key {expected}",
        )
    try:
        public.verify(base64.b64decode(cp.signature, validate=True), cp.payload())
    except (InvalidSignature, ValueError):
        return Problem(
            cp.seq,
            "checkpoint_invalid",
            f"{src}: the signature does not match its content: it was altered or forged",
        )
    return None


# --- writing --------------------------------------------------------------------------


def make_checkpoint(db: sqlite_utils.Database, private: Ed25519PrivateKey | None) -> Checkpoint:
    """A checkpoint of the current head, chained to the last one this database wrote."""
    head = db.execute("SELECT seq, hash FROM audit_events ORDER BY seq DESC LIMIT 1").fetchone()
    last = db.execute(
        "SELECT number, digest FROM audit_checkpoints ORDER BY number DESC LIMIT 1"
    ).fetchone()
    state = chain_state(db)
    alg = db.execute("SELECT alg FROM audit_events ORDER BY seq DESC LIMIT 1").fetchone()
    cp = Checkpoint(
        number=(last[0] + 1) if last else 1,
        seq=head[0] if head else 0,
        hash=head[1] if head else GENESIS,
        ts=isoformat(utcnow()),
        mode="hmac" if alg and alg[0] == "hmac-sha256" else "plain",
        key_id=state.key_id if state else None,
        log_id=state.log_id if state else None,
        previous=last[1] if last else None,
    )
    if private is not None:
        cp.sign(private)
    return cp


def _write_file(out: Path, data: bytes) -> None:
    """Write atomically beside ``out``; the parent directory must already exist."""
    if not out.parent.is_dir():
        raise OpsError(f"cannot write checkpoint {out}: directory {out.parent} does not exist")
    tmp = out.with_name(f".{out.name}.tmp{os.getpid()}")
    try:
        with open(tmp, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, out)
    except OSError as exc:
        with contextlib.suppress(OSError):
            tmp.unlink()
        failure = store_failure(exc)
        msg = f"cannot write checkpoint {out}: {exc.strerror or exc}"
        raise (type(failure)(msg) if failure else OpsError(msg)) from None


def take_checkpoint(
    log: AuditLog,
    private: Ed25519PrivateKey | None,
    *,
    out: Path | None = None,
    witnesses: list[Witness] | None = None,
) -> tuple[Checkpoint, list[str], list[str]]:
    """Write a checkpoint to ``out`` and/or ship it to ``witnesses``, then record it.

    The ``audit.checkpoint`` event and the database's own copy are written only after
    the file / at least one witness holds it; if that record cannot be written, the
    file written here is removed again. Returns (checkpoint, delivered, failures).
    """
    cp = make_checkpoint(log.db, private)
    data = cp.to_bytes()
    delivered: list[str] = []
    failures: list[str] = []
    if out is not None:
        _write_file(out, data)
        delivered.append(str(out))
    for w in witnesses or []:
        try:
            w.put(f"checkpoint-{cp.number:08d}.json", data)
            w.put("latest.json", data)
            delivered.append(w.name)
        except OpsError as exc:
            failures.append(str(exc))
    if not delivered:
        raise OpsError("checkpoint not written: " + ("; ".join(failures) or "nowhere to write it"))
    try:
        with immediate(log.db):
            log.db.execute(
                "INSERT INTO audit_checkpoints (number, seq, hash, digest, body, created_at) "
                "VALUES (?, ?, ?, ?, ?, ?)",
                (cp.number, cp.seq, cp.hash, cp.digest(), data.decode(), cp.ts),
            )
            log.record(
                "audit.checkpoint",
                ", ".join(delivered),
                {
                    "number": cp.number,
                    "seq": cp.seq,
                    "hash": cp.hash,
                    "signing_key_id": cp.signing_key_id,
                    "failed": failures,
                },
                "ok" if not failures else "partial",
            )
    except (AuditWriteError, StoreError, sqlite3.IntegrityError) as exc:
        if out is not None:
            with contextlib.suppress(OSError):
                out.unlink()
        if isinstance(exc, sqlite3.IntegrityError):
            raise OpsError(
                "another checkpoint was taken at the same moment; run it again"
            ) from None
        raise
    return cp, delivered, failures


def write_checkpoint(
    log: AuditLog, out: Path, private: Ed25519PrivateKey | None = None
) -> Checkpoint:
    """Write the chain head to ``out`` (kept for callers of the old API)."""
    return take_checkpoint(log, private, out=out)[0]
