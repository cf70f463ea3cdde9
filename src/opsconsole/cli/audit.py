"""``opsconsole audit``: list, verify, export and checkpoint the audit log; keys."""

from __future__ import annotations

import contextlib
import json
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from opsconsole.cli.state import console, print_json, print_table, state

if TYPE_CHECKING:
    from opsconsole.auditing.verify import VerifyResult

app = typer.Typer(help="The tamper-evident audit log.", no_args_is_help=True)


def _authorize(permission: str, target: str) -> None:
    from opsconsole.access import authorize

    authorize(state.audit(), permission, target=target)


def _authorize_read(permission: str, target: str) -> None:
    """Authorize a command that only reads. A database that cannot be opened for writing
    (an auditor's copy on read-only media), or whose audit table is gone (the policy
    lives there), is read without the check: it holds nothing the command could change,
    and whoever can read the file can read it with sqlite3 anyway."""
    import sqlite3

    from opsconsole.errors import StoreError

    with contextlib.suppress(StoreError, sqlite3.Error):
        _authorize(permission, target)


def _when(value: str | None) -> object:
    if value is None:
        return None
    from opsconsole.timeutil import parse_when

    try:
        return parse_when(value)
    except ValueError as exc:
        raise typer.BadParameter(str(exc)) from None


SinceOpt = Annotated[str | None, typer.Option(help="ISO time or a duration ago (2h, 3d).")]
UntilOpt = Annotated[str | None, typer.Option(help="ISO time or a duration ago.")]
ActorOpt = Annotated[str | None, typer.Option(help="Only this actor.")]
ActionOpt = Annotated[str | None, typer.Option(help="Action prefix, e.g. runbook. or audit.verify")]
TargetOpt = Annotated[str | None, typer.Option(help="Target prefix.")]


def record_if_writable(
    action: str, target: str, details: dict[str, Any], outcome: str
) -> str | None:
    """Audit a read-only action (verify, export) when the database can take the record.

    An auditor's copy on read-only media cannot: the action still runs (it changes
    nothing), and says it was not recorded. Returns why not, None when recorded.
    """
    from opsconsole.errors import ConfigError, OpsError

    try:
        state.record(action, target, details, outcome)
    except ConfigError:
        raise
    except OpsError as exc:
        return str(exc).split(";")[0]
    return None


@app.command("list")
def list_(
    since: Annotated[str | None, typer.Option(help="ISO time or a duration ago (2h, 3d).")] = None,
    until: Annotated[str | None, typer.Option(help="ISO time or a duration ago.")] = None,
    actor: Annotated[str | None, typer.Option(help="Only this actor.")] = None,
    action: Annotated[
        str | None, typer.Option(help="Action prefix, e.g. runbook. or audit.verify")
    ] = None,
    target: Annotated[str | None, typer.Option(help="Target prefix.")] = None,
    limit: Annotated[int, typer.Option(help="At most this many (the newest).", min=1)] = 100,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """Show audit events, oldest first."""
    from opsconsole.auditing.export import query

    rows = query(
        state.readonly_db(),
        since=_when(since),
        until=_when(until),
        actor=actor,  # type: ignore[arg-type]
        action=action,
        target=target,
        limit=limit,
    )
    if as_json:
        print_json(rows)
        return
    from rich.table import Table

    from opsconsole.cli.safe import plain
    from opsconsole.timeutil import parse_when

    table = Table(box=None, pad_edge=False)
    for col in ("seq", "time (local)", "actor", "via", "action", "target", "outcome", "details"):
        table.add_column(col, overflow="fold")
    for r in rows:
        local = parse_when(r["ts"]).astimezone().strftime("%Y-%m-%d %H:%M:%S")
        details = json.dumps(r["details"], ensure_ascii=False) if r["details"] else ""
        # Actors, targets and details come from users: never markup, never controls.
        table.add_row(
            *(
                plain(v)
                for v in (
                    r["seq"],
                    local,
                    r["actor"],
                    r["interface"],
                    r["action"],
                    r["target"],
                    r["outcome"],
                    details,
                )
            )
        )
    print_table(table, keep=("seq", "time (local)", "actor", "via", "action", "target", "outcome"))
    if not rows:
        console().print("no events match")


@app.command("verify")
def verify_(
    checkpoint: Annotated[
        list[Path] | None,
        typer.Option(help="A checkpoint file (repeatable), besides the configured witnesses."),
    ] = None,
    public_key: Annotated[
        Path | None,
        typer.Option(help="Ed25519 public key that signs checkpoints (default: settings)."),
    ] = None,
    witnesses: Annotated[
        bool, typer.Option("--witnesses/--no-witnesses", help="Consult configured witnesses.")
    ] = True,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """Walk the hash chain and compare it with the newest witnessed checkpoint.

    Exit 0 intact; 6 tampered (altered, inserted, removed, reordered, truncated,
    rewritten, rolled_back, emptied, dropped, downgraded, checkpoint_invalid, forked);
    3 key_required / wrong_key; 1 witness_unreachable. Reads the database read-only;
    the verification is recorded only when the database is writable.
    """
    from opsconsole.auditing.checkpoints import read_checkpoint
    from opsconsole.auditing.service import audit_context, verify_database

    _authorize_read("audit.verify", ", ".join(str(p) for p in checkpoint or []))
    ctx = audit_context(state.optional_config(), public_key_file=public_key, witnesses=witnesses)
    files = [read_checkpoint(p) for p in checkpoint or []]
    result = verify_database(state.readonly_db(), ctx, checkpoint_files=files)
    unrecorded = record_if_writable(
        "audit.verify",
        ", ".join(str(p) for p in checkpoint or []),
        {
            "events": result.events,
            "outcome": result.outcome,
            "problem": result.problem.message if result.problem else None,
            "checkpoint_seq": result.checkpoint_seq,
        },
        "ok" if result.ok else result.outcome,
    )
    _report(result, as_json=as_json, unrecorded=unrecorded)
    edited = _unproven_approvals()
    if result.exit_code or edited:
        raise typer.Exit(result.exit_code or 6)


def _report(result: VerifyResult, *, as_json: bool, unrecorded: str | None) -> None:
    if as_json:
        print_json({**result.to_json(), "recorded": unrecorded is None, "unrecorded": unrecorded})
        return
    note = "" if unrecorded is None else f" (not recorded: {unrecorded})"
    for line in result.notes:
        typer.echo(f"note: {line}", err=True)
    if result.ok:
        cp = ""
        if result.checkpoint_seq is not None:
            cp = f"; matches checkpoint at seq {result.checkpoint_seq} ({result.checkpoint_source})"
        mode = f", {result.mode}" + (f" key {result.key_id}" if result.key_id else "")
        typer.echo(
            f"audit log intact: {result.events} events, head seq {result.head_seq}{mode}{cp}{note}"
        )
        return
    p = result.problem
    assert p is not None
    label = "TAMPERED" if p.exit_code == 6 else "NOT VERIFIED"
    typer.echo(f"audit log {label}: {p.kind} at seq {p.seq}: {p.message}{note}", err=True)


def _unproven_approvals() -> int:
    """Approval decisions in ``run_approvals`` that the chain does not back: the table
    was edited (the engine ignores them; verify reports them, exit 6)."""
    import sqlite3

    from opsconsole.audit import AuditLog
    from opsconsole.runbooks.approvals import unproven_decisions

    reader = AuditLog(state.readonly_db(), key=state.audit_key())
    try:
        edited = unproven_decisions(reader)
    except sqlite3.OperationalError:  # a database without runbook tables: nothing to check
        return 0
    for a in edited:
        typer.echo(
            f"run_approvals TAMPERED: {a.run_id}/{a.step_id} says {a.decision} by "
            f"{a.decided_by}, but no such decision is in the audit log",
            err=True,
        )
    return len(edited)


class Format(StrEnum):
    jsonl = "jsonl"
    csv = "csv"


@app.command("export")
def export_(
    format: Annotated[Format, typer.Option("--format", help="jsonl or csv.")] = Format.jsonl,
    out: Annotated[Path | None, typer.Option("--out", help="Write here instead of stdout.")] = None,
    since: SinceOpt = None,
    until: UntilOpt = None,
    actor: ActorOpt = None,
    action: ActionOpt = None,
    target: TargetOpt = None,
    limit: Annotated[
        int | None, typer.Option(help="At most this many (the newest).", min=1)
    ] = None,
) -> None:
    """Export events with their hashes (all, or those matching the filters of `audit list`).

    Reads the database read-only; the export is recorded only when it is writable.
    """
    import sys

    from opsconsole.auditing.export import export

    state.audit_context()  # a broken key setting is an error before anything is read
    _authorize_read("audit.export", str(out or "-"))
    filters = {
        "since": _when(since),
        "until": _when(until),
        "actor": actor,
        "action": action,
        "target": target,
        "limit": limit,
    }
    lines = export(state.readonly_db(), format.value, **filters)  # type: ignore[arg-type]
    n = -1 if format is Format.csv else 0
    if out is None:
        for line in lines:
            sys.stdout.write(line)
            n += 1
    else:
        try:
            fh = out.open("w", encoding="utf-8", newline="")
        except OSError as exc:
            from opsconsole.errors import OpsError

            raise OpsError(f"cannot write {out}: {exc.strerror or exc}") from None
        with fh:
            for line in lines:
                fh.write(line)
                n += 1
    shown = {k: (str(v) if v is not None else None) for k, v in filters.items() if v}
    unrecorded = record_if_writable(
        "audit.export", str(out or "-"), {"format": format.value, "events": n, **shown}, "ok"
    )
    if out is not None:
        note = "" if unrecorded is None else f" (not recorded: {unrecorded})"
        typer.echo(f"wrote {n} events to {out}{note}", err=True)


@app.command("checkpoint")
def checkpoint_(
    out: Annotated[
        Path | None,
        typer.Option("--out", help="Also write it to this file (its directory must exist)."),
    ] = None,
    witnesses: Annotated[
        bool, typer.Option("--witnesses/--no-witnesses", help="Ship to configured witnesses.")
    ] = True,
) -> None:
    """Sign the chain head (Ed25519, settings audit.signing_key_file) and ship it to the
    witnesses and/or --out; recorded only once written."""
    from opsconsole.auditing.checkpoints import take_checkpoint
    from opsconsole.errors import OpsError

    _authorize("audit.checkpoint", str(out or "witnesses"))
    ctx = state.audit_context()
    targets = ctx.witnesses if witnesses else []
    if out is None and not targets:
        raise OpsError(
            "nowhere to write the checkpoint: give --out FILE or configure audit.witnesses",
            exit_code=2,
        )
    cp, delivered, failures = take_checkpoint(
        state.audit(), ctx.private_key(), out=out, witnesses=targets
    )
    signed = (
        f"signed with key {cp.signing_key_id}"
        if cp.signature
        else "UNSIGNED (no audit.signing_key_file configured)"
    )
    typer.echo(f"checkpoint {cp.number} at seq {cp.seq} ({signed}) -> {', '.join(delivered)}")
    for failure in failures:
        typer.echo(f"not delivered: {failure}", err=True)
    if failures:
        raise typer.Exit(1)


@app.command("keygen")
def keygen(
    out_dir: Annotated[Path, typer.Option("--dir", help="Directory for the key pair.")],
    name: Annotated[str, typer.Option(help="File name stem.")] = "audit-signing",
) -> None:
    """Create an Ed25519 key pair for signing checkpoints and evidence packs.

    Keep NAME.pem where only the signer (the scheduler's account) can read it; give
    NAME.pub to verifiers. Point settings audit.signing_key_file / public_key_file at them.
    """
    from opsconsole.auditing.checkpoints import generate_keypair
    from opsconsole.errors import OpsError

    try:
        # A directory made here holds a private key: the signer's alone (umask permitting).
        out_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
    except OSError as exc:
        raise OpsError(f"cannot create {out_dir}: {exc.strerror or exc}") from None
    private, public = out_dir / f"{name}.pem", out_dir / f"{name}.pub"
    kid = generate_keypair(private, public)
    typer.echo(f"key {kid}: private {private} (mode 0600), public {public}")
