"""Evidence packs: one signed archive an auditor or regulator can check offline.

A pack (``.tar.gz``) holds::

    report.md / report-*.md   the Markdown report(s)
    events.jsonl              the audit events that concern the subject, with hashes
    chain.jsonl               every event from the first of them to the checkpoint
    checkpoint.json           a signed checkpoint of the head when the pack was made
    witnessed/*.json          the newest checkpoint each witness held
    verification.json         the verification of the whole log at that moment
    public_key.pem            the signing key's public half (informative only)
    manifest.json             SHA-256 of every file above, the subject, key ids
    manifest.sig              Ed25519 signature of manifest.json

:func:`verify_pack` needs only the archive and the public key the verifier already
trusts (the copy inside the pack is never used to check the pack itself): it names any
file altered, missing or added, a manifest signed by another key, a chain with an event
removed or changed, and events that are not in the signed chain.

What the chain check can prove offline: for a plain SHA-256 log, every event's content;
for an HMAC log, the links between events (content needs the HMAC key) - the signed
manifest covers the bytes of every file either way.
"""

from __future__ import annotations

import base64
import hashlib
import io
import json
import tarfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from opsconsole.errors import OpsError

if TYPE_CHECKING:
    import sqlite_utils
    from cryptography.hazmat.primitives.asymmetric.ed25519 import (
        Ed25519PrivateKey,
        Ed25519PublicKey,
    )

    from opsconsole.auditing.checkpoints import Checkpoint
    from opsconsole.auditing.verify import VerifyResult

__all__ = ["FORMAT", "PackCheck", "build_pack", "drill_events", "incident_events", "verify_pack"]

FORMAT = "opsconsole-evidence/1"
_COLUMNS = "seq, ts, actor, interface, action, target, details, outcome, alg, prev_hash, hash"


def _rows(db: sqlite_utils.Database, sql: str, params: list[Any]) -> list[dict[str, Any]]:
    cur = db.execute(sql, params)
    names = [d[0] for d in cur.description]
    return [dict(zip(names, r, strict=True)) for r in cur]


def incident_events(db: sqlite_utils.Database, incident_id: str) -> list[dict[str, Any]]:
    """Events about the incident: its own (target) and those that name it (a linked run)."""
    like = incident_id.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return _rows(
        db,
        f"SELECT {_COLUMNS} FROM audit_events WHERE lower(target) LIKE lower(?) ESCAPE '\\' "
        "OR lower(details) LIKE lower(?) ESCAPE '\\' ORDER BY seq",
        [f"{like}%", f"%{like}%"],
    )


def drill_events(
    db: sqlite_utils.Database, year: int, drills: set[str] | None, plan: str | None
) -> list[dict[str, Any]]:
    """``drill.*`` events of the year (only those of ``drills`` / naming ``plan`` if given)."""
    rows = _rows(
        db,
        f"SELECT {_COLUMNS} FROM audit_events WHERE action LIKE 'drill.%' "
        "AND ts >= ? AND ts < ? ORDER BY seq",
        [f"{year:04d}-01-01", f"{year + 1:04d}-01-01"],
    )
    if plan is None:
        return rows
    needle = json.dumps(plan)
    return [r for r in rows if (drills and r["target"] in drills) or needle in r["details"]]


def _line(row: dict[str, Any]) -> str:
    return json.dumps(row, ensure_ascii=False) + "\n"


def build_pack(
    db: sqlite_utils.Database,
    out: Path,
    *,
    subject: dict[str, Any],
    reports: dict[str, str],
    events: list[dict[str, Any]],
    checkpoint: Checkpoint,
    witnessed: list[Checkpoint],
    verification: VerifyResult,
    private_key: Ed25519PrivateKey,
) -> dict[str, Any]:
    """Write the archive; returns its manifest. ``checkpoint`` must cover the events."""
    from cryptography.hazmat.primitives import serialization

    from opsconsole.auditing.export import chain_range

    if not events:
        raise OpsError("no audit events concern this subject: nothing to put in evidence")
    first, last = events[0]["seq"], events[-1]["seq"]
    if checkpoint.seq < last:
        raise OpsError(f"the checkpoint (seq {checkpoint.seq}) does not cover event {last}")
    files: dict[str, bytes] = {}
    for name, text in reports.items():
        files[name] = text.encode()
    files["events.jsonl"] = "".join(_line(r) for r in events).encode()
    files["chain.jsonl"] = "".join(
        _line(r) for r in chain_range(db, first, checkpoint.seq)
    ).encode()
    files["checkpoint.json"] = checkpoint.to_bytes()
    for i, cp in enumerate(witnessed, 1):
        files[f"witnessed/{i:02d}.json"] = cp.to_bytes()
    files["verification.json"] = (json.dumps(verification.to_json(), indent=2) + "\n").encode()
    files["public_key.pem"] = private_key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    from opsconsole.auditing.checkpoints import signing_key_id
    from opsconsole.timeutil import isoformat, utcnow

    manifest = {
        "format": FORMAT,
        "created_at": isoformat(utcnow()),
        "subject": subject,
        "events": {"count": len(events), "first_seq": first, "last_seq": last},
        "checkpoint": {"number": checkpoint.number, "seq": checkpoint.seq},
        "log_id": checkpoint.log_id,
        "signing_key_id": signing_key_id(private_key.public_key()),
        "files": {name: hashlib.sha256(data).hexdigest() for name, data in sorted(files.items())},
    }
    manifest_bytes = (json.dumps(manifest, indent=2, sort_keys=True) + "\n").encode()
    files["manifest.json"] = manifest_bytes
    files["manifest.sig"] = base64.b64encode(private_key.sign(manifest_bytes)) + b"\n"
    _write_tar(out, files)
    return manifest


def _write_tar(out: Path, files: dict[str, bytes]) -> None:
    if not out.parent.is_dir():
        raise OpsError(f"cannot write {out}: directory {out.parent} does not exist")
    tmp = out.with_name(f".{out.name}.tmp")
    try:
        with tarfile.open(tmp, "w:gz") as tar:
            for name, data in files.items():
                info = tarfile.TarInfo(name)
                info.size = len(data)
                info.mode = 0o644
                tar.addfile(info, io.BytesIO(data))
        tmp.replace(out)
    except OSError as exc:
        tmp.unlink(missing_ok=True)
        from opsconsole.store import store_failure

        failure = store_failure(exc)
        msg = f"cannot write {out}: {exc.strerror or exc}"
        raise (type(failure)(msg) if failure else OpsError(msg)) from None


# --- verification -------------------------------------------------------------------------


@dataclass
class PackCheck:
    problems: list[str] = field(default_factory=list)
    manifest: dict[str, Any] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return not self.problems


def _read_tar(path: Path) -> dict[str, bytes]:
    try:
        tar = tarfile.open(path, "r:gz")  # noqa: SIM115 - closed by the with below
    except FileNotFoundError:
        raise OpsError(f"no such file: {path}", exit_code=4) from None
    except (OSError, tarfile.TarError, EOFError) as exc:
        # EOFError: a gzip stream cut short (a truncated copy); click would turn it into
        # a bare "Aborted!".
        raise OpsError(
            f"{path}: not an evidence pack ({exc or 'cut short: the file ends too early'})",
            exit_code=6,
        ) from None
    files: dict[str, bytes] = {}
    with tar:
        try:
            for member in tar.getmembers():
                if not member.isfile() or member.name.startswith("/") or ".." in member.name:
                    raise OpsError(f"{path}: unexpected entry {member.name!r}", exit_code=6)
                fh = tar.extractfile(member)
                assert fh is not None
                files[member.name] = fh.read()
        except (OSError, tarfile.TarError, EOFError) as exc:
            raise OpsError(f"{path}: damaged archive ({exc})", exit_code=6) from None
    return files


def verify_pack(path: Path, public: Ed25519PublicKey) -> PackCheck:
    """Check a pack offline against the public key the verifier trusts."""
    from cryptography.exceptions import InvalidSignature

    from opsconsole.auditing.checkpoints import (
        CheckpointError,
        check,
        parse_checkpoint,
        signing_key_id,
    )

    files = _read_tar(path)
    result = PackCheck()
    problems = result.problems
    manifest_bytes, sig = files.pop("manifest.json", None), files.pop("manifest.sig", None)
    if manifest_bytes is None or sig is None:
        problems.append("manifest.json or manifest.sig is missing")
        return result
    try:
        manifest = json.loads(manifest_bytes)
        assert isinstance(manifest, dict) and isinstance(manifest.get("files"), dict)
    except (ValueError, AssertionError):
        problems.append("manifest.json is not a manifest")
        return result
    result.manifest = manifest
    expected = signing_key_id(public)
    try:
        public.verify(base64.b64decode(sig.strip(), validate=True), manifest_bytes)
    except (InvalidSignature, ValueError):
        who = manifest.get("signing_key_id")
        if who != expected:
            problems.append(
                f"manifest signed with key {who}, not the trusted key {expected} (re-signed)"
            )
        else:
            problems.append("manifest.sig does not match manifest.json: altered or forged")
        return result
    listed: dict[str, str] = manifest["files"]
    for name, digest in sorted(listed.items()):
        if name not in files:
            problems.append(f"{name}: missing")
        elif hashlib.sha256(files[name]).hexdigest() != digest:
            problems.append(f"{name}: altered (SHA-256 differs from the signed manifest)")
    for name in sorted(set(files) - set(listed)):
        problems.append(f"{name}: not in the manifest (added)")
    if problems:
        return result
    # The files are what was signed; check the chain inside them too.
    try:
        cp = parse_checkpoint(files["checkpoint.json"], "checkpoint.json")
    except (CheckpointError, KeyError) as exc:
        problems.append(str(exc))
        return result
    bad = check(cp, public)
    if bad is not None:
        problems.append(bad.message)
    try:
        problems.extend(_check_chain(files, cp))
    except (KeyError, TypeError, AttributeError) as exc:
        problems.append(f"chain.jsonl / events.jsonl: malformed event ({exc!r})")
    verification = json.loads(files.get("verification.json", b"{}") or b"{}")
    if verification.get("outcome") != "intact":
        problems.append(
            f"the log was not intact when the pack was made: {verification.get('outcome')}"
        )
    return result


def _check_chain(files: dict[str, bytes], cp: Checkpoint) -> list[str]:
    from opsconsole.auditing.verify import _hash

    out: list[str] = []
    try:
        chain = [json.loads(ln) for ln in files["chain.jsonl"].decode().splitlines() if ln]
        events = [json.loads(ln) for ln in files["events.jsonl"].decode().splitlines() if ln]
    except (KeyError, ValueError, UnicodeDecodeError) as exc:
        return [f"chain.jsonl / events.jsonl unreadable: {exc}"]
    prev: dict[str, Any] | None = None
    for row in chain:
        if prev is not None:
            if row["seq"] != prev["seq"] + 1:
                out.append(f"chain: event(s) missing between seq {prev['seq']} and {row['seq']}")
                break
            if row["prev_hash"] != prev["hash"]:
                out.append(f"chain: event {row['seq']} does not link to event {prev['seq']}")
                break
        if row["alg"] == "sha256":
            values = [row[k] for k in ("seq", "ts", "actor", "interface", "action", "target")]
            values += [row["details"], row["outcome"], row["alg"], row["prev_hash"]]
            if _hash(values, "sha256", None) != row["hash"]:
                out.append(f"chain: event {row['seq']} does not match its hash (altered)")
                break
        prev = row
    if not chain or chain[-1]["seq"] != cp.seq or chain[-1]["hash"] != cp.hash:
        out.append(f"chain: does not end at the signed checkpoint (seq {cp.seq})")
    by_seq = {r["seq"]: r for r in chain}
    for e in events:
        if by_seq.get(e["seq"]) != e:
            out.append(f"events: event {e['seq']} is not the one in the signed chain")
            break
    return out
