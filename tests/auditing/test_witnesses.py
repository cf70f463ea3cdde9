"""Witnesses for real: a directory, the loopback sshd (SFTP, host key verified) and a
loopback HTTP server (PUT/GET). Each holds checkpoints the database cannot rewrite, and
`audit verify` names a rollback against any of them."""

from __future__ import annotations

import http.server
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from opsconsole.auditing.checkpoints import take_checkpoint
from opsconsole.auditing.service import verify_database
from opsconsole.auditing.witnesses import (
    DirectoryWitness,
    HttpWitness,
    SshWitness,
    Witness,
    WitnessError,
)
from opsconsole.store import open_db
from opsconsole.testing.sshd import LoopbackSshd
from tests.auditing.conftest import make_ctx
from tests.helpers import cli_subprocess, put_back, save_copy


class _Store(http.server.BaseHTTPRequestHandler):
    files: dict[str, bytes]

    def do_PUT(self) -> None:
        n = int(self.headers.get("Content-Length", "0"))
        if self.headers.get("Authorization") != "Bearer t0ken":
            self.send_response(401)
        else:
            self.files[self.path] = self.rfile.read(n)
            self.send_response(201)
        self.end_headers()

    def do_GET(self) -> None:
        data = self.files.get(self.path)
        self.send_response(200 if data is not None else 404)
        self.end_headers()
        if data is not None:
            self.wfile.write(data)

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def http_witness() -> Iterator[tuple[str, dict[str, bytes]]]:
    files: dict[str, bytes] = {}
    handler = type("Handler", (_Store,), {"files": files})
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/witness", files
    finally:
        server.shutdown()
        server.server_close()


def _witness(kind: str, tmp_path: Path, sshd: LoopbackSshd, http_url: str) -> Witness:
    if kind == "dir":
        d = tmp_path / "wdir"
        d.mkdir()
        return DirectoryWitness(d)
    if kind == "ssh":
        d = tmp_path / "wssh"
        d.mkdir()
        return SshWitness(sshd.host(), str(d), "w01")
    return HttpWitness(http_url, {"Authorization": "Bearer t0ken"})


@pytest.mark.parametrize("kind", ["dir", "ssh", "http"])
def test_rollback_is_caught_through_each_witness(
    kind: str,
    db_path: Path,
    tmp_path: Path,
    signing_keys: tuple[Path, Path],
    sshd: LoopbackSshd,
    http_witness: tuple[str, dict[str, bytes]],
) -> None:
    witness = _witness(kind, tmp_path, sshd, http_witness[0])
    ctx = make_ctx(signing_keys, None)
    ctx.witnesses = [witness]
    db = open_db(db_path)
    log = ctx.audit_log(db, actor="a", interface="test")
    log.record("thing.do", "1")
    _, delivered, failed = take_checkpoint(log, ctx.private_key(), witnesses=[witness])
    assert delivered == [witness.name] and not failed
    old = tmp_path / "old.db"
    save_copy(db_path, old)
    log.record("thing.do", "2")
    take_checkpoint(log, ctx.private_key(), witnesses=[witness])
    assert verify_database(db, ctx).ok
    assert witness.get("checkpoint-00000002.json") is not None
    db.close()
    put_back(old, db_path)  # the older copy is put back
    r = verify_database(open_db(db_path), ctx)
    assert r.outcome == "rolled_back" and witness.name in r.problem.message  # type: ignore[union-attr]


def test_ssh_witness_refuses_an_unknown_host_key(tmp_path: Path, sshd: LoopbackSshd) -> None:
    empty = tmp_path / "known_hosts"
    empty.write_text("")
    witness = SshWitness(sshd.host(known_hosts=empty), str(tmp_path), "w01")
    with pytest.raises(WitnessError, match=r"(?i)host key"):
        witness.put("latest.json", b"{}")
    assert not (tmp_path / "latest.json").exists()


def test_http_witness_refusal_is_a_failed_delivery_not_a_record(
    db_path: Path, signing_keys: tuple[Path, Path], http_witness: tuple[str, dict[str, bytes]]
) -> None:
    from opsconsole.errors import OpsError

    ctx = make_ctx(signing_keys, None)
    db = open_db(db_path)
    log = ctx.audit_log(db, actor="a", interface="test")
    log.record("thing.do")
    before = db.execute("SELECT count(*) FROM audit_events").fetchone()[0]
    bad = HttpWitness(http_witness[0], {})  # no token: 401
    with pytest.raises(OpsError, match="401"):
        take_checkpoint(log, ctx.private_key(), witnesses=[bad])
    assert db.execute("SELECT count(*) FROM audit_events").fetchone()[0] == before


def test_automatic_checkpoints_every_n_events_then_cli_verify_names_a_rollback(
    tmp_path: Path,
    db_path: Path,
    signing_keys: tuple[Path, Path],
    sshd: LoopbackSshd,
    http_witness: tuple[str, dict[str, bytes]],
) -> None:
    cfg = tmp_path / "cfg"
    cfg.mkdir()
    wdir, wssh = tmp_path / "wdir", tmp_path / "wssh"
    wdir.mkdir()
    wssh.mkdir()
    (cfg / "inventory.yaml").write_text(sshd.inventory_yaml(["w01"]))
    (cfg / "settings.yaml").write_text(
        f"""\
audit:
  signing_key_file: {signing_keys[0]}
  public_key_file: {signing_keys[1]}
  checkpoint_every_events: 3
  witnesses:
    - dir: {wdir}
    - ssh: {{host: w01, path: {wssh}}}
    - http: {{url: "{http_witness[0]}", headers: {{Authorization: "Bearer t0ken"}}}}
"""
    )
    db = db_path
    env = {"OPSCONSOLE_AUDIT_KEY": "hmac-key-1"}

    def run(*args: str) -> object:
        return cli_subprocess("--config", str(cfg), "--db", str(db), *args, env=env)

    for i in range(4):
        r = run(
            "incident",
            "declare",
            "--title",
            f"t{i}",
            "--severity",
            "SEV3",
            "--category",
            "system-failure",
        )
        assert r.returncode == 0, r.stderr  # type: ignore[attr-defined]
    # Events inside a command's transaction are checkpointed once it commits.
    assert (wdir / "latest.json").exists() and (wssh / "latest.json").exists()
    assert "/witness/latest.json" in http_witness[1]
    old = tmp_path / "old.db"
    save_copy(db, old)
    for i in range(4):
        run(
            "incident",
            "declare",
            "--title",
            f"u{i}",
            "--severity",
            "SEV3",
            "--category",
            "system-failure",
        )
    r = run("audit", "verify")
    assert r.returncode == 0 and "matches checkpoint" in r.stdout, r.stderr  # type: ignore[attr-defined]
    put_back(old, db)  # the older copy is put back
    r = run("audit", "verify")
    assert r.returncode == 6 and "rolled_back" in r.stderr, r.stdout + r.stderr
    assert "Traceback" not in r.stderr
    # Without the HMAC key: named, not a traceback.
    r = cli_subprocess("--config", str(cfg), "--db", str(db), "audit", "verify")
    assert r.returncode == 3 and "key_required" in r.stderr, r.stderr
