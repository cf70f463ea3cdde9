"""``opsconsole audit``: list, verify, export and checkpoint the audit log."""

from __future__ import annotations

import json
from enum import StrEnum
from pathlib import Path
from typing import Annotated

import typer

from opsconsole.cli.state import console, print_json, state

app = typer.Typer(help="The tamper-evident audit log.", no_args_is_help=True)


def _authorize(permission: str, target: str) -> None:
    from opsconsole.access import authorize

    authorize(state.audit(), permission, target=target)


def _when(value: str | None) -> object:
    if value is None:
        return None
    from opsconsole.timeutil import parse_when

    try:
        return parse_when(value)
    except ValueError as exc:
        raise typer.BadParameter(str(exc)) from None


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
    from opsconsole.audit import query

    rows = query(
        state.db(),
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
    console().print(table)
    if not rows:
        console().print("no events match")


@app.command("verify")
def verify_(
    checkpoint: Annotated[
        Path | None, typer.Option(help="A checkpoint file written earlier by `audit checkpoint`.")
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """Walk the hash chain; exit 0 if intact, 6 naming the first bad event otherwise."""
    from opsconsole.audit import read_checkpoint, verify
    from opsconsole.errors import ExitCode

    _authorize("audit.verify", str(checkpoint or ""))
    cp = read_checkpoint(checkpoint) if checkpoint else None
    result = verify(state.db(), key=state.audit_key(), checkpoint=cp)
    # Verifying is itself an audited action (after the walk, so it does not verify itself).
    state.record(
        "audit.verify",
        str(checkpoint or ""),
        {"events": result.events, "problem": result.problem.message if result.problem else None},
        "ok" if result.ok else "tampered",
    )
    if as_json:
        print_json(
            {
                "ok": result.ok,
                "events": result.events,
                "head_seq": result.head_seq,
                "checkpoint_seq": result.checkpoint_seq,
                "problem": None
                if result.ok
                else {
                    "seq": result.problem.seq,
                    "kind": result.problem.kind,  # type: ignore[union-attr]
                    "message": result.problem.message,
                },
            }  # type: ignore[union-attr]
        )
    elif result.ok:
        extra = f"; matches checkpoint at seq {result.checkpoint_seq}" if cp else ""
        typer.echo(f"audit log intact: {result.events} events, head seq {result.head_seq}{extra}")
    else:
        p = result.problem
        assert p is not None
        typer.echo(f"audit log TAMPERED: {p.kind} at seq {p.seq}: {p.message}", err=True)
    if not result.ok:
        raise typer.Exit(ExitCode.AUDIT_TAMPERED)


class Format(StrEnum):
    jsonl = "jsonl"
    csv = "csv"


@app.command("export")
def export_(
    format: Annotated[Format, typer.Option("--format", help="jsonl or csv.")] = Format.jsonl,
    out: Annotated[Path | None, typer.Option("--out", help="Write here instead of stdout.")] = None,
) -> None:
    """Export the whole log, with hashes, for an auditor."""
    import sys

    from opsconsole.audit import export

    _authorize("audit.export", str(out or "-"))
    state.record("audit.export", str(out or "-"), {"format": format.value})
    lines = export(state.db(), format.value)  # type: ignore[arg-type]
    if out is None:
        for line in lines:
            sys.stdout.write(line)
        return
    try:
        fh = out.open("w", encoding="utf-8", newline="")
    except OSError as exc:
        from opsconsole.errors import OpsError

        raise OpsError(f"cannot write {out}: {exc.strerror or exc}") from None
    with fh:
        n = -1 if format is Format.csv else 0
        for line in lines:
            fh.write(line)
            n += 1
    typer.echo(f"wrote {n} events to {out}", err=True)


@app.command("checkpoint")
def checkpoint_(
    out: Annotated[
        Path, typer.Option("--out", help="File to write (keep it outside the database's reach).")
    ],
) -> None:
    """Write the chain head (seq, hash, time; HMAC-signed with a key) to a file."""
    from opsconsole.audit import write_checkpoint

    _authorize("audit.checkpoint", str(out))
    cp = write_checkpoint(state.audit(), out)
    signed = "signed" if cp.signature else "unsigned (no audit key configured)"
    typer.echo(f"checkpoint at seq {cp.seq} written to {out} ({signed})")
