"""``opsconsole evidence``: signed evidence packs for auditors and regulators."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from opsconsole.cli.state import state

if TYPE_CHECKING:
    import sqlite_utils

app = typer.Typer(
    help="Evidence packs: reports, audit events, checkpoints; signed, checkable offline.",
    no_args_is_help=True,
)

OutOpt = Annotated[
    Path | None, typer.Option("--out", help="Archive to write (default: evidence-*.tar.gz here).")
]


def _make(
    subject: dict[str, Any],
    reports: Callable[[sqlite_utils.Database], dict[str, str]],
    events: Callable[[sqlite_utils.Database], list[dict[str, Any]]],
    out: Path | None,
) -> None:
    from opsconsole.auditing.checkpoints import make_checkpoint, take_checkpoint
    from opsconsole.auditing.service import fetch_witnessed, verify_database
    from opsconsole.errors import ExitCode, OpsError
    from opsconsole.evidence import build_pack
    from opsconsole.timeutil import utcnow

    ctx = state.audit_context()
    private = ctx.private_key()
    if private is None:
        raise OpsError(
            "evidence packs are signed: set audit.signing_key_file in settings "
            "(create a key pair with `opsconsole audit keygen`)",
            exit_code=ExitCode.CONFIG,
        )
    db = state.db()
    verification = verify_database(db, ctx)
    if not verification.ok:
        p = verification.problem
        assert p is not None
        raise OpsError(
            f"the audit log is not intact ({p.kind} at seq {p.seq}: {p.message}); "
            "a pack would prove nothing",
            exit_code=p.exit_code,
        )
    name = subject.get("incident") or f"drills-{subject.get('year')}"
    if subject.get("plan"):
        name += f"-{subject['plan']}"
    out = out or Path(f"evidence-{name}-{utcnow().strftime('%Y%m%dT%H%M%SZ')}.tar.gz")
    texts = reports(db)
    state.record("evidence.pack", str(name), {**subject, "out": str(out)})
    if ctx.witnesses:
        cp = take_checkpoint(state.audit(), private, witnesses=ctx.witnesses)[0]
    else:
        cp = make_checkpoint(db, private)
    witnessed = fetch_witnessed(ctx)[0]
    manifest = build_pack(
        db,
        out,
        subject=subject,
        reports=texts,
        events=events(db),
        checkpoint=cp,
        witnessed=witnessed,
        verification=verification,
        private_key=private,
    )
    ev = manifest["events"]
    typer.echo(
        f"wrote {out}: {len(manifest['files'])} files, {ev['count']} events (seq "
        f"{ev['first_seq']}-{ev['last_seq']}), checkpoint seq {cp.seq}, signed with key "
        f"{manifest['signing_key_id']}"
    )


@app.command("incident")
def incident(
    incident_id: Annotated[str, typer.Argument(metavar="ID", help="Incident id.")],
    out: OutOpt = None,
) -> None:
    """Pack the post-incident report, the incident's audit events and their chain."""
    from opsconsole.evidence import incident_events
    from opsconsole.incidents import IncidentService

    svc = IncidentService(state.db(), state.audit(), state.optional_config())
    iid = svc.view(incident_id).incident.id

    def reports(db: sqlite_utils.Database) -> dict[str, str]:
        return {"report.md": svc.report(iid) + "\n"}

    _make({"incident": iid}, reports, lambda db: incident_events(db, iid), out)


@app.command("drills")
def drills(
    year: Annotated[int, typer.Option(help="Calendar year.")],
    plan: Annotated[str | None, typer.Option(help="Only this plan.")] = None,
    out: OutOpt = None,
) -> None:
    """Pack the drill programme report of a year, and the drill events behind it."""
    from opsconsole.drills.loader import load_drills
    from opsconsole.drills.report import build_report, render_markdown, report_json
    from opsconsole.evidence import drill_events

    defined = load_drills(state.config()).file

    def reports(db: sqlite_utils.Database) -> dict[str, str]:
        import json

        built = build_report(db, defined, year=year, plan=plan)
        return {
            "report.md": render_markdown(built) + "\n",
            "report.json": json.dumps(report_json(built), indent=2) + "\n",
        }

    names = {n for n, d in defined.drills.items() if plan is None or d.plan == plan}
    subject = {"year": year, "plan": plan}
    _make(subject, reports, lambda db: drill_events(db, year, names, plan), out)


@app.command("verify")
def verify(
    file: Annotated[Path, typer.Argument(help="The evidence pack (.tar.gz).")],
    public_key: Annotated[
        Path | None,
        typer.Option(help="The signer's public key you trust (default: settings)."),
    ] = None,
) -> None:
    """Check a pack offline: signature, every file's SHA-256, the chain inside it.

    Exit 0 intact; 6 naming what was altered, missing, added or re-signed.
    """
    from opsconsole.auditing.checkpoints import load_public_key
    from opsconsole.errors import ExitCode, OpsError
    from opsconsole.evidence import verify_pack

    if public_key is None:
        cfg = state.optional_config()
        public_key = cfg.resolve(cfg.settings.audit.public_key_file) if cfg else None
    if public_key is None:
        raise OpsError(
            "give --public-key FILE: the pack is checked against a key you trust, never "
            "against the copy inside it",
            exit_code=ExitCode.USAGE,
        )
    result = verify_pack(file, load_public_key(public_key))
    if result.ok:
        m = result.manifest
        ev = m.get("events", {})
        typer.echo(
            f"evidence pack intact: {file}: {m.get('subject')}, {len(m.get('files', {}))} files, "
            f"{ev.get('count')} events (seq {ev.get('first_seq')}-{ev.get('last_seq')}), "
            f"signed with key {m.get('signing_key_id')}"
        )
        return
    for problem in result.problems:
        typer.echo(f"evidence pack FAILED: {problem}", err=True)
    raise typer.Exit(ExitCode.AUDIT_TAMPERED)
