"""Audit fixtures: a signing key pair, a directory witness, and a context using both."""

from __future__ import annotations

from pathlib import Path

import pytest

from opsconsole.auditing.checkpoints import generate_keypair, load_public_key
from opsconsole.auditing.service import AuditContext
from opsconsole.auditing.witnesses import DirectoryWitness

# A one-region inventory for commands that need a config directory.
INVENTORY = """\
regions:
  demo-a:
    name: Alpha
    environment: demo
    services:
      web:
        endpoints: [{url: "http://127.0.0.1:9/healthz"}]
"""


@pytest.fixture
def signing_keys(tmp_path: Path) -> tuple[Path, Path]:
    kdir = tmp_path / "keys"
    kdir.mkdir()
    private, public = kdir / "sign.pem", kdir / "sign.pub"
    generate_keypair(private, public)
    return private, public


@pytest.fixture
def witness_dir(tmp_path: Path) -> Path:
    d = tmp_path / "witness"
    d.mkdir()
    return d


def make_ctx(
    signing_keys: tuple[Path, Path],
    witness_dir: Path | None,
    keys: list[bytes] | None = None,
) -> AuditContext:
    return AuditContext(
        keys=list(keys or []),
        public_key=load_public_key(signing_keys[1]),
        private_key_file=signing_keys[0],
        witnesses=[DirectoryWitness(witness_dir)] if witness_dir else [],
    )


@pytest.fixture
def db(db_path: Path):  # type: ignore[no-untyped-def]
    from opsconsole.store import open_db

    return open_db(db_path)


@pytest.fixture(autouse=True)
def _on_both_engines(store_engine: str) -> str:
    """Every test here runs on SQLite and on PostgreSQL (see ``store_engine``)."""
    return store_engine
