"""Wiring the audit pieces to the configuration: which keys, which witnesses, automatic
checkpoints, and verification against what the witnesses hold."""

from __future__ import annotations

import logging
import sqlite3
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from opsconsole.audit import AuditLog, chain_state, load_key
from opsconsole.auditing.checkpoints import (
    Checkpoint,
    CheckpointError,
    check,
    load_private_key,
    load_public_key,
    parse_checkpoint,
    signing_key_id,
    take_checkpoint,
)
from opsconsole.auditing.settings import AuditSettings
from opsconsole.auditing.verify import Problem, VerifyResult, verify
from opsconsole.auditing.witnesses import Witness, WitnessError
from opsconsole.errors import OpsError
from opsconsole.timeutil import utcnow

if TYPE_CHECKING:
    import sqlite_utils
    from cryptography.hazmat.primitives.asymmetric.ed25519 import (
        Ed25519PrivateKey,
        Ed25519PublicKey,
    )

    from opsconsole.config import Config

__all__ = ["AuditContext", "audit_context", "fetch_witnessed", "install_auto_checkpoint"]

log = logging.getLogger("opsconsole.audit")


@dataclass
class AuditContext:
    """The keys and witnesses of one configuration."""

    keys: list[bytes] = field(default_factory=list)  # HMAC: current first, then older
    public_key: Ed25519PublicKey | None = None
    private_key_file: Path | None = None
    witnesses: list[Witness] = field(default_factory=list)
    settings: AuditSettings = field(default_factory=AuditSettings)

    @property
    def key(self) -> bytes | None:
        return self.keys[0] if self.keys else None

    @property
    def signing_key_id(self) -> str | None:
        return signing_key_id(self.public_key) if self.public_key is not None else None

    def private_key(self) -> Ed25519PrivateKey | None:
        if self.private_key_file is None:
            return None
        return load_private_key(self.private_key_file)

    def private_key_readable(self) -> bool:
        import os

        return self.private_key_file is not None and os.access(self.private_key_file, os.R_OK)

    def audit_log(
        self,
        db: sqlite_utils.Database,
        *,
        actor: str | None,
        interface: str,
        on_behalf_of: str | None = None,
    ) -> AuditLog:
        log_ = AuditLog(
            db,
            actor=actor,
            interface=interface,  # type: ignore[arg-type]
            key=self.key,
            on_behalf_of=on_behalf_of,
            previous_keys=self.keys[1:],
            signing_key_id=self.signing_key_id,
        )
        install_auto_checkpoint(log_, self)
        return log_


def audit_context(
    config: Config | None, *, public_key_file: Path | None = None, witnesses: bool = True
) -> AuditContext:
    """Keys and witnesses from settings (``public_key_file`` overrides the setting)."""
    settings = config.settings.audit if config else AuditSettings()
    keys: list[bytes] = []
    key = load_key(config.resolve(config.settings.audit_key_file) if config else None)
    if key:
        keys.append(key)
    for path in settings.previous_key_files:
        resolved = config.resolve(path) if config else path
        assert resolved is not None
        old = _read_key(resolved)
        if old not in keys:
            keys.append(old)
    pub_path = public_key_file or (config.resolve(settings.public_key_file) if config else None)
    ctx = AuditContext(
        keys=keys,
        public_key=load_public_key(pub_path) if pub_path else None,
        private_key_file=config.resolve(settings.signing_key_file) if config else None,
        settings=settings,
    )
    if witnesses and config is not None and settings.witnesses:
        from opsconsole.auditing.witnesses import build

        ctx.witnesses = build(settings.witnesses, config)
    return ctx


def _read_key(path: Path) -> bytes:
    from opsconsole.errors import ConfigError, SourceLocation

    try:
        data = path.read_bytes().strip()
    except OSError as exc:
        raise ConfigError(
            [
                (
                    SourceLocation(str(path)),
                    "audit.previous_key_files",
                    f"cannot read: {exc.strerror}",
                )
            ]
        ) from None
    if not data:
        raise ConfigError([(SourceLocation(str(path)), "audit.previous_key_files", "empty")])
    return data


# --- automatic checkpoints ---------------------------------------------------------------


def install_auto_checkpoint(audit: AuditLog, ctx: AuditContext) -> None:
    """Every ``checkpoint_every_events`` events, a signed checkpoint goes to the witnesses
    (only in processes that can read the signing key: others just append)."""
    every = ctx.settings.checkpoint_every_events
    if not every or not ctx.private_key_readable() or not ctx.witnesses:
        return

    def hook(log_: AuditLog, seq: int) -> None:
        try:
            last = log_.db.execute("SELECT max(seq) FROM audit_checkpoints").fetchone()[0] or 0
        except sqlite3.Error:
            return
        if seq - last >= every:
            checkpoint_quietly(log_, ctx)

    audit.after_commit.append(hook)


def checkpoint_quietly(audit: AuditLog, ctx: AuditContext) -> Checkpoint | None:
    """An automatic checkpoint: a failure is logged, never fails the action that
    triggered it (that action is already committed and audited). Nothing new since the
    last checkpoint (only its own record): nothing to do."""
    try:
        head = audit.db.execute(
            "SELECT seq, action FROM audit_events ORDER BY seq DESC LIMIT 1"
        ).fetchone()
        last = audit.db.execute("SELECT max(seq) FROM audit_checkpoints").fetchone()[0]
        if head and last is not None and head[1] == "audit.checkpoint" and head[0] == last + 1:
            return None
    except sqlite3.Error:
        pass
    try:
        cp, _, failures = take_checkpoint(audit, ctx.private_key(), witnesses=ctx.witnesses)
    except (OpsError, sqlite3.Error, OSError) as exc:
        log.warning("automatic audit checkpoint failed: %s", exc)
        return None
    for failure in failures:
        log.warning("audit checkpoint %s not delivered: %s", cp.number, failure)
    return cp


# --- verification against witnesses ------------------------------------------------------


def fetch_witnessed(
    ctx: AuditContext, required_signer: str | None = None
) -> tuple[list[Checkpoint], Problem | None, list[str]]:
    """The newest checkpoint of every reachable witness, each signature-checked and
    checked to chain to the checkpoint before it. Returns (checkpoints, the first
    problem found, the witnesses that could not be read)."""
    found: list[Checkpoint] = []
    unreachable: list[str] = []
    for w in ctx.witnesses:
        try:
            data = w.get("latest.json")
            if data is None:
                continue
            cp = parse_checkpoint(data, f"{w.name}/latest.json")
            problem = check(cp, ctx.public_key, required_signer=required_signer)
            if problem is not None:
                return found, problem, unreachable
            if cp.number > 1:
                name = f"checkpoint-{cp.number - 1:08d}.json"
                prev_data = w.get(name)
                if prev_data is not None:
                    prev = parse_checkpoint(prev_data, f"{w.name}/{name}")
                    problem = check(prev, ctx.public_key, required_signer=required_signer)
                    if problem is not None:
                        return found, problem, unreachable
                    if prev.digest() != cp.previous or prev.seq > cp.seq:
                        return (
                            found,
                            Problem(
                                cp.seq,
                                "checkpoint_invalid",
                                f"{w.name}: checkpoint {cp.number} does not chain to "
                                f"checkpoint {prev.number}",
                            ),
                            unreachable,
                        )
            found.append(cp)
        except WitnessError as exc:
            unreachable.append(str(exc))
        except CheckpointError as exc:
            return found, Problem(0, "checkpoint_invalid", str(exc)), unreachable
    return found, None, unreachable


def verify_database(
    db: sqlite_utils.Database,
    ctx: AuditContext,
    *,
    checkpoint_files: list[Checkpoint] | None = None,
) -> VerifyResult:
    """The chain, against every witness's newest checkpoint and any given files."""
    try:
        state = chain_state(db)
        required = state.signing_key_id if state else None
    except sqlite3.OperationalError:
        required = None
    for cp in checkpoint_files or []:
        problem = check(cp, ctx.public_key, required_signer=required)
        if problem is not None:
            return VerifyResult(0, 0, "", problem=problem)
    witnessed, problem, unreachable = fetch_witnessed(ctx, required)
    if problem is not None:
        return VerifyResult(0, 0, "", problem=problem)
    result = verify(db, keys=ctx.keys, checkpoints=[*witnessed, *(checkpoint_files or [])])
    result.notes.extend(f"witness unreachable: {u}" for u in unreachable)
    if ctx.public_key is None and any(cp.signature is None for cp in witnessed):
        result.notes.append("unsigned checkpoints prove nothing against whoever can write them")
    if result.ok and ctx.witnesses and not witnessed and unreachable:
        result.problem = Problem(
            result.head_seq,
            "witness_unreachable",
            "the chain is intact but no witness could be read, so truncation or rollback "
            "cannot be ruled out: " + "; ".join(unreachable),
        )
    return result


def summary(result: VerifyResult) -> dict[str, Any]:
    out = result.to_json()
    out["verified_at"] = utcnow().isoformat()
    return out
