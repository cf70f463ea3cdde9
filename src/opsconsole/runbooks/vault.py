"""Secrets a run needs again after a resume, encrypted at rest for the run's lifetime.

A secret parameter and the real value of a step result that held a secret (a rotated
API key a later step uses) are sealed with Fernet (AES-128-CBC + HMAC-SHA-256) under a
key kept in ``run-secrets.key`` beside the database, created with mode 0600. The
database alone is not enough to read them. They are deleted when the run can no longer
need them (rolled back or aborted). Losing the key file only means a resume asks for
secret parameters again, and refuses to use a step result it cannot decrypt.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import sqlite_utils
    from cryptography.fernet import Fernet

__all__ = ["forget_secrets", "load_secrets", "seal", "seal_secret", "unseal"]

KEY_FILE = "run-secrets.key"
_fernets: dict[Path, Fernet] = {}


def _key_path(db: sqlite_utils.Database) -> Path:
    from opsconsole.paths import state_dir

    location = db.location
    if isinstance(location, Path):
        return location.parent / KEY_FILE
    # PostgreSQL: the key stays on this host, in the account's state directory, one per
    # database. A run resumed on another host asks for its secrets again.
    import hashlib

    from opsconsole.store.postgres import without_password

    digest = hashlib.sha256(without_password(location).encode()).hexdigest()[:16]
    return state_dir() / f"{digest}-{KEY_FILE}"


def _fernet(db: sqlite_utils.Database) -> Fernet:
    from cryptography.fernet import Fernet

    path = _key_path(db)
    cached = _fernets.get(path)
    if cached is not None:
        return cached
    try:
        key = path.read_bytes().strip()
    except FileNotFoundError:
        path.parent.mkdir(parents=True, exist_ok=True)
        key = Fernet.generate_key()
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:  # another process made it first: use theirs
            key = path.read_bytes().strip()
        else:
            with os.fdopen(fd, "wb") as fh:
                fh.write(key)
    fernet = Fernet(key)
    _fernets[path] = fernet
    return fernet


def seal(db: sqlite_utils.Database, value: Any) -> bytes:
    """Encrypt a JSON-like value."""
    return _fernet(db).encrypt(json.dumps(value, default=str).encode())


def unseal(db: sqlite_utils.Database, token: bytes) -> Any:
    """Decrypt what :func:`seal` made; ``None`` if it cannot be (key lost or changed)."""
    from cryptography.fernet import InvalidToken

    try:
        return json.loads(_fernet(db).decrypt(bytes(token)))
    except (InvalidToken, ValueError, OSError):
        return None


def seal_secret(db: sqlite_utils.Database, run_id: str, name: str, value: str) -> None:
    db.execute(
        "INSERT INTO run_secrets (run_id, name, sealed) VALUES (?, ?, ?) "
        "ON CONFLICT(run_id, name) DO UPDATE SET sealed = excluded.sealed",
        [run_id, name, seal(db, value)],
    )


def load_secrets(db: sqlite_utils.Database, run_id: str) -> dict[str, str]:
    """The run's sealed secrets that can still be decrypted."""
    out: dict[str, str] = {}
    for name, sealed in db.execute(
        "SELECT name, sealed FROM run_secrets WHERE run_id = ?", [run_id]
    ).fetchall():
        value = unseal(db, sealed)
        if isinstance(value, str):
            out[name] = value
    return out


def forget_secrets(db: sqlite_utils.Database, run_id: str) -> None:
    db.execute("DELETE FROM run_secrets WHERE run_id = ?", [run_id])
    db.execute("UPDATE run_steps SET result_sealed = NULL WHERE run_id = ?", [run_id])
