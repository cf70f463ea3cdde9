"""Evidence packs: made for a scripted SEV1 breach, verified on a read-only copy with only
the public key, then tampered (one byte, one event, re-signed) and each caught."""

from __future__ import annotations

import base64
import hashlib
import io
import json
import os
import re
import shutil
import subprocess
import tarfile
from pathlib import Path

import pytest

from opsconsole.auditing.checkpoints import generate_keypair, load_private_key
from tests.helpers import acting_as, cli, cli_subprocess


@pytest.fixture
def breach(
    tmp_path: Path, example_config: Path, signing_keys: tuple[Path, Path]
) -> dict[str, Path | str]:
    cfg = tmp_path / "cfg"
    shutil.copytree(example_config, cfg)
    wdir = tmp_path / "witness"
    wdir.mkdir()
    with (cfg / "settings.yaml").open("a") as fh:
        fh.write(
            f"audit:\n  signing_key_file: {signing_keys[0]}\n"
            f"  public_key_file: {signing_keys[1]}\n  witnesses:\n    - dir: {wdir}\n"
        )
    base = ("--config", str(cfg))
    declared = cli(
        *base,
        "incident",
        "declare",
        "--severity",
        "SEV1",
        "--category",
        "data-breach",
        "--title",
        "card data exposure",
        "--region",
        "eu-central-1",
        "--detected-at",
        "30m ago",
    )
    assert declared.exit_code == 0, declared.output
    iid = re.search(r"declared (INC-\d{4}-\d{4})", declared.stdout).group(1)  # type: ignore[union-attr]
    cli(
        *base,
        "incident",
        "declare",
        "--severity",
        "SEV4",
        "--category",
        "system-failure",
        "--title",
        "unrelated",
    )
    for step in (
        # An account that exists: the acting one (an OS account, or a database role).
        ("assign", iid, "legal", acting_as(os.environ["OPSCONSOLE_DB"])),
        ("note", iid, "action: mask card numbers in logs"),
        ("update", iid, "contained in Frankfurt"),
        ("decide", iid, "notifiable"),
        ("status", iid, "mitigated"),
    ):
        assert cli(*base, "--as", "alice", "incident", *step).exit_code == 0, step
    pack = tmp_path / "pack.tar.gz"
    made = cli(*base, "evidence", "incident", iid, "--out", str(pack))
    assert made.exit_code == 0, made.output
    return {"cfg": cfg, "iid": iid, "pack": pack, "public": signing_keys[1], "tmp": tmp_path}


def _files(pack: Path) -> dict[str, bytes]:
    with tarfile.open(pack) as tar:
        return {m.name: tar.extractfile(m).read() for m in tar.getmembers()}  # type: ignore[union-attr]


def _write(pack: Path, files: dict[str, bytes]) -> None:
    with tarfile.open(pack, "w:gz") as tar:
        for name, data in files.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))


def _verify(pack: Path, public: Path) -> subprocess.CompletedProcess[str]:
    # Another "machine": no config, no database, only the archive and the public key.
    return cli_subprocess("evidence", "verify", str(pack), "--public-key", str(public))


def test_pack_holds_the_report_the_incident_events_and_a_signed_chain(breach: dict) -> None:  # type: ignore[type-arg]
    files = _files(breach["pack"])
    assert {
        "report.md",
        "events.jsonl",
        "chain.jsonl",
        "checkpoint.json",
        "verification.json",
        "public_key.pem",
        "manifest.json",
        "manifest.sig",
    } <= set(files)
    assert any(n.startswith("witnessed/") for n in files)
    assert "card data exposure" in files["report.md"].decode()
    events = [json.loads(x) for x in files["events.jsonl"].decode().splitlines()]
    assert {e["action"] for e in events} >= {"incident.declare", "incident.note", "evidence.pack"}
    assert all(breach["iid"] in e["target"] or breach["iid"] in e["details"] for e in events)
    assert "unrelated" not in files["events.jsonl"].decode()
    assert json.loads(files["verification.json"])["outcome"] == "intact"


def test_pack_verifies_offline_on_a_read_only_copy(breach: dict) -> None:  # type: ignore[type-arg]
    copy_dir = breach["tmp"] / "auditor"
    copy_dir.mkdir()
    copy = copy_dir / "pack.tar.gz"
    shutil.copy(breach["pack"], copy)
    pub = copy_dir / "signer.pub"
    shutil.copy(breach["public"], pub)
    subprocess.run(["chattr", "+i", str(copy)], check=True)
    try:
        r = _verify(copy, pub)
    finally:
        subprocess.run(["chattr", "-i", str(copy)], check=True)
    assert r.returncode == 0, r.stderr
    assert r.stdout.startswith("evidence pack intact")


@pytest.mark.parametrize("keep", [100, 2000])
def test_a_truncated_pack_is_named_damaged_not_aborted(breach: dict, keep: int) -> None:  # type: ignore[type-arg]
    data = breach["pack"].read_bytes()
    cut = breach["tmp"] / f"cut{keep}.tar.gz"
    cut.write_bytes(data[:keep])
    r = _verify(cut, breach["public"])
    assert r.returncode == 6, (r.returncode, r.stdout, r.stderr)
    assert "Aborted" not in r.stderr and "Traceback" not in r.stderr
    assert r.stderr.startswith(f"error: {cut}: ") and len(r.stderr.splitlines()) == 1


def test_one_byte_changed_in_the_report_is_named(breach: dict) -> None:  # type: ignore[type-arg]
    files = _files(breach["pack"])
    report = bytearray(files["report.md"])
    report[10] ^= 0x01
    files["report.md"] = bytes(report)
    _write(breach["pack"], files)
    r = _verify(breach["pack"], breach["public"])
    assert r.returncode == 6
    assert "report.md: altered" in r.stderr and "Traceback" not in r.stderr


def _drop_event(files: dict[str, bytes]) -> None:
    for name in ("events.jsonl", "chain.jsonl"):
        lines = files[name].decode().splitlines(keepends=True)
        victim = next(ln for ln in lines if '"incident.note"' in ln)
        files[name] = "".join(ln for ln in lines if ln != victim).encode()


def test_one_event_removed_is_caught_with_or_without_a_fixed_manifest(breach: dict) -> None:  # type: ignore[type-arg]
    files = _files(breach["pack"])
    _drop_event(files)
    _write(breach["pack"], files)
    r = _verify(breach["pack"], breach["public"])
    assert r.returncode == 6 and "events.jsonl: altered" in r.stderr
    # The forger also updates the manifest's hashes: the signature no longer matches.
    manifest = json.loads(files["manifest.json"])
    for name in ("events.jsonl", "chain.jsonl"):
        manifest["files"][name] = hashlib.sha256(files[name]).hexdigest()
    files["manifest.json"] = (json.dumps(manifest, indent=2, sort_keys=True) + "\n").encode()
    _write(breach["pack"], files)
    r = _verify(breach["pack"], breach["public"])
    assert r.returncode == 6 and "manifest.sig does not match" in r.stderr


def test_manifest_re_signed_with_another_key_is_caught(breach: dict) -> None:  # type: ignore[type-arg]
    other = (breach["tmp"] / "o.pem", breach["tmp"] / "o.pub")
    other_id = generate_keypair(*other)
    key = load_private_key(other[0])
    files = _files(breach["pack"])
    _drop_event(files)
    manifest = json.loads(files["manifest.json"])
    for name in ("events.jsonl", "chain.jsonl"):
        manifest["files"][name] = hashlib.sha256(files[name]).hexdigest()
    manifest["signing_key_id"] = other_id
    files["public_key.pem"] = other[1].read_bytes()
    manifest["files"]["public_key.pem"] = hashlib.sha256(files["public_key.pem"]).hexdigest()
    body = (json.dumps(manifest, indent=2, sort_keys=True) + "\n").encode()
    files["manifest.json"] = body
    files["manifest.sig"] = base64.b64encode(key.sign(body)) + b"\n"
    _write(breach["pack"], files)
    r = _verify(breach["pack"], breach["public"])
    assert r.returncode == 6 and f"signed with key {other_id}, not the trusted key" in r.stderr
    # With the forger's key the files are consistent, but the chain still has a hole.
    r = _verify(breach["pack"], other[1])
    assert r.returncode == 6 and "chain:" in r.stderr


def test_removed_file_and_added_file_are_named(breach: dict) -> None:  # type: ignore[type-arg]
    files = _files(breach["pack"])
    del files["verification.json"]
    files["extra.txt"] = b"x"
    _write(breach["pack"], files)
    r = _verify(breach["pack"], breach["public"])
    assert r.returncode == 6
    assert "verification.json: missing" in r.stderr and "extra.txt: not in the manifest" in r.stderr


def test_pack_refused_without_a_signing_key_or_on_a_tampered_log(
    tmp_path: Path, example_config: Path
) -> None:
    base = ("--config", str(example_config))
    declared = cli(
        *base,
        "incident",
        "declare",
        "--severity",
        "SEV3",
        "--category",
        "system-failure",
        "--title",
        "t",
    )
    iid = re.search(r"declared (INC-\d{4}-\d{4})", declared.stdout).group(1)  # type: ignore[union-attr]
    r = cli(*base, "evidence", "incident", iid, "--out", str(tmp_path / "p.tar.gz"))
    assert r.exit_code == 3 and "signing_key_file" in r.output


def test_drill_programme_pack(
    tmp_path: Path, example_config: Path, signing_keys: tuple[Path, Path]
) -> None:
    cfg = tmp_path / "cfg"
    shutil.copytree(example_config, cfg)
    with (cfg / "settings.yaml").open("a") as fh:
        fh.write(f"audit:\n  signing_key_file: {signing_keys[0]}\n")
    base = ("--config", str(cfg))
    assert (
        cli(
            *base,
            "drill",
            "record",
            "tt",
            "--plan",
            "payments-bcp",
            "--participants",
            "a,b",
            "--notes",
            "n",
        ).exit_code
        == 0
    )
    from opsconsole.timeutil import utcnow

    out = tmp_path / "drills.tar.gz"
    r = cli(
        *base,
        "evidence",
        "drills",
        "--year",
        str(utcnow().year),
        "--plan",
        "payments-bcp",
        "--out",
        str(out),
    )
    assert r.exit_code == 0, r.output
    assert "payments-bcp" in _files(out)["report.md"].decode()
    assert _verify(out, signing_keys[1]).returncode == 0
