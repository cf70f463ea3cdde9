"""``opsconsole incident``: declare and lead an incident through its playbook.

Parsing and rendering only; every change goes through
:class:`opsconsole.incidents.IncidentService`, which the TUI uses too.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from opsconsole.cli.state import console, print_json, print_table, state

if TYPE_CHECKING:
    from opsconsole.incidents import IncidentService, IncidentView, Task

app = typer.Typer(
    help="Incident command: declare, roles, playbook tasks, deadlines, timeline, report.",
    no_args_is_help=True,
)

SEVERITY_HELP = (
    "SEV1 critical (money or personal data at risk, customers cannot pay/borrow, a regulator "
    "may need telling) | SEV2 major | SEV3 minor | SEV4 low. If unsure, pick the higher."
)


def _svc() -> IncidentService:
    from opsconsole.incidents import IncidentService

    return IncidentService(state.db(), state.audit(), state.optional_config())


def _when(value: str | None) -> Any:
    if value is None:
        return None
    from opsconsole.timeutil import parse_when

    try:
        return parse_when(value)
    except ValueError as exc:
        raise typer.BadParameter(str(exc)) from None


def _utc(moment: Any) -> str:
    return moment.strftime("%Y-%m-%d %H:%M UTC") if moment else "-"


def _local(moment: Any, tz: str | None) -> str:
    from opsconsole.incidents.report import format_local

    return format_local(moment, tz)


@app.command()
def declare(
    title: Annotated[str, typer.Option(help="What is happening, in a few words.")],
    severity: Annotated[str, typer.Option(help=SEVERITY_HELP)],
    category: Annotated[
        str,
        typer.Option(
            help="data-breach | system-failure | network-security | "
            "natural-disaster | any category a playbook defines."
        ),
    ],
    region: Annotated[list[str] | None, typer.Option(help="Affected region (repeat).")] = None,
    service: Annotated[list[str] | None, typer.Option(help="Affected service (repeat).")] = None,
    detected_at: Annotated[
        str | None, typer.Option(help="When it was detected: ISO time or '20m ago' (default now).")
    ] = None,
    commander: Annotated[
        str | None, typer.Option(help="Incident commander (default: you).")
    ] = None,
) -> None:
    """Declare an incident and attach its category's playbook."""
    svc = _svc()
    inc = svc.declare(
        title,
        severity=severity,
        category=category,
        regions=region or [],
        services=service or [],
        detected_at=_when(detected_at),
        commander=commander,
    )
    console().print(f"declared {inc.id}")
    _render_view(svc.view(inc.id))


@app.command("list")
def list_(
    open_: Annotated[bool, typer.Option("--open", help="Only incidents not closed.")] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """List incidents, oldest first."""
    incidents = _svc().list_incidents(open_only=open_)
    if as_json:
        print_json(
            [
                {
                    "id": i.id,
                    "title": i.title,
                    "severity": i.severity,
                    "category": i.category,
                    "status": i.status,
                    "regions": i.regions,
                    "services": i.services,
                    "commander": i.commander,
                    "detected_at": i.detected_at.isoformat(),
                    "declared_at": i.declared_at.isoformat(),
                }
                for i in incidents
            ]
        )
        return
    from rich.markup import escape
    from rich.table import Table

    table = Table(box=None, pad_edge=False)
    for col in ("id", "sev", "status", "category", "regions", "commander", "declared", "title"):
        table.add_column(col, overflow="fold")
    for i in incidents:
        table.add_row(
            i.id,
            i.severity,
            i.status,
            i.category,
            ",".join(i.regions) or "-",
            escape(i.commander or "-"),
            _utc(i.declared_at),
            escape(i.title),
        )
    if not incidents:
        console().print("no incidents")
        return
    print_table(table, keep=("id", "sev", "status", "category", "regions", "declared"))


@app.command()
def show(
    incident_id: Annotated[str, typer.Argument(metavar="ID")],
    timeline: Annotated[bool, typer.Option("--timeline", help="Also show the timeline.")] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
    follow: Annotated[
        bool,
        typer.Option(
            "--follow",
            "-f",
            help="Then stream every change (timeline entries, status) as other operators "
            "commit it, until Ctrl-C.",
        ),
    ] = False,
) -> None:
    """Status, roles, next tasks, every deadline with time remaining, last update."""
    svc = _svc()
    if follow and as_json:
        raise typer.BadParameter("--follow prints for people; use it without --json")
    if follow:
        from opsconsole.cli.follow import Follower, follow_incident, incident_mark

        svc.get(incident_id)  # an unknown incident fails before anything is opened
        follower = Follower(svc.db)  # the cursor before the state: nothing falls between
        mark = incident_mark(svc, incident_id)
        _render_view(svc.view(incident_id))
        _render_timeline(svc, incident_id)
        follow_incident(console(), svc, incident_id, follower, mark)
        return
    view = svc.view(incident_id)
    if as_json:
        print_json(view.to_dict(svc.timeline(incident_id) if timeline else None))
        return
    _render_view(view)
    if timeline:
        _render_timeline(svc, incident_id)


def _render_view(v: IncidentView) -> None:
    from rich.markup import escape
    from rich.table import Table

    from opsconsole.incidents import human_duration

    inc, out = v.incident, console()
    out.print(
        f"[bold]{inc.id}[/bold] {inc.severity} {escape(inc.category)} "
        f"[bold]{inc.status}[/bold]: {escape(inc.title)}"
    )
    where = ", ".join(f"{r} ({inc.region_tz[r]})" if r in inc.region_tz else r for r in inc.regions)
    out.print(f"regions: {where or '-'}   services: {', '.join(inc.services) or '-'}", markup=False)
    out.print(
        f"detected {_utc(inc.detected_at)}   declared {_utc(inc.declared_at)}"
        f"   playbook: {inc.playbook.get('name')}",
        markup=False,
    )
    out.print("roles: " + ", ".join(f"{r}={u}" for r, u in inc.roles.items()), markup=False)
    since = human_duration(v.since_update)
    last = "last status update" if inc.last_update_at else "no status update yet; declared"
    line = f"{last} {since} ago"
    if v.update_due is not None:
        left = v.update_due - v.now
        line += (
            f"; next due in {human_duration(left)}"
            if left.total_seconds() > 0
            else f"; next update OVERDUE by {human_duration(left)}"
        )
    out.print(line)
    if v.deadlines:
        from opsconsole.incidents.report import local_clock

        table = Table(
            title="deadlines (data, not legal advice)",
            box=None,
            pad_edge=False,
            title_justify="left",
        )
        for col in ("deadline", "where", "rule", "due (UTC)", "due (local)", "state"):
            table.add_column(col, overflow="fold")
        for s in v.deadlines:
            d = s.deadline
            style = {"overdue": "bold red", "missed": "red", "met": "green"}.get(s.state, "")
            table.add_row(
                d.id,
                d.jurisdiction,
                f"{d.within} after {d.anchor}",
                _utc(s.due),
                local_clock(s.due, s.timezone) if s.due else "-",
                f"[{style}]{escape(s.text)}[/{style}]" if style else escape(s.text),
            )
        out.print(table)
        for s in v.deadlines:
            out.print(
                f"  {s.deadline.id}: {s.deadline.citation} (verified {s.deadline.verified_on})",
                overflow="fold",
                markup=False,
            )
    if v.next_tasks:
        out.print("next tasks:")
        for t in v.next_tasks:
            out.print(
                f"  {t.id} [{t.status}] ({t.owner_role}) {t.title}"
                + (f"  runbook: {t.runbook}" if t.runbook else "")
                + (f" (run {t.run_id}: {t.run_status})" if t.run_id else ""),
                markup=False,
            )
    done = sum(1 for t in inc.tasks if not t.open)
    out.print(f"tasks: {done}/{len(inc.tasks)} settled")


def _render_timeline(svc: IncidentService, incident_id: str) -> None:
    from rich.markup import escape
    from rich.table import Table

    table = Table(title="timeline", box=None, pad_edge=False, title_justify="left")
    for col in ("UTC", "region local", "actor", "event"):
        table.add_column(col, overflow="fold")
    for e in svc.timeline(incident_id):
        table.add_row(_utc(e.ts), _local(e.ts, e.tz), escape(e.actor), escape(e.summary))
    console().print(table)


@app.command()
def assign(
    incident_id: Annotated[str, typer.Argument(metavar="ID")],
    role: Annotated[
        str,
        typer.Argument(
            help="commander, deputy, scribe, operations, communications, legal, customer-service"
        ),
    ],
    user: Annotated[str, typer.Argument()],
) -> None:
    """Give a role to someone; re-assigning records a handover."""
    inc = _svc().assign(incident_id, role, user)
    console().print(f"{inc.id}: {role} = {user}")


@app.command()
def task(
    incident_id: Annotated[str, typer.Argument(metavar="ID")],
    task_id: Annotated[str, typer.Argument(metavar="TASK")],
    action: Annotated[str, typer.Argument(help="start | done | skip | waive")],
    note: Annotated[str | None, typer.Option(help="Why (required to waive).")] = None,
    run: Annotated[
        bool | None, typer.Option("--run/--no-run", help="Launch the task's runbook (start only).")
    ] = None,
    yes: Annotated[
        bool, typer.Option("--yes", help="Answer yes to the runbook's prompts.")
    ] = False,
) -> None:
    """Move a playbook task; a task with a runbook offers to run it and links the run."""
    svc = _svc()
    current = svc.get(incident_id).task(task_id) if action == "start" and run else None
    if current is not None and current.status == "in_progress" and current.runbook:
        t = current  # started earlier without --run (as the hint below says): launch it now
    else:
        t = svc.task(incident_id, task_id, action, note)
        console().print(f"{incident_id.upper()}: task {t.id} {t.status}")
    if action != "start" or not t.runbook:
        return
    if run is None:
        if not sys.stdin.isatty():
            console().print(
                f"task {t.id} has runbook {t.runbook}: launch it with "
                f"`opsconsole incident task {incident_id.upper()} {t.id} start --run`"
            )
            return
        run = typer.confirm(f"Run runbook {t.runbook} for this task now?", default=False)
    if run:
        _run_task(svc, incident_id, t, assume_yes=yes)


def _run_task(svc: IncidentService, incident_id: str, t: Task, *, assume_yes: bool) -> None:
    import asyncio

    from opsconsole.events import EventBus
    from opsconsole.incidents.runlink import engine, run_task_runbook

    rb = engine()
    from opsconsole.cli.prompts import TerminalOperator  # type: ignore[import-not-found]

    env = rb.RunEnv(db=svc.db, audit=svc.audit, config=svc.config, bus=EventBus())
    result = asyncio.run(
        run_task_runbook(
            svc, incident_id, t.id, env=env, operator=TerminalOperator(assume_yes=assume_yes)
        )
    )
    console().print(
        f"run {result.run_id}: {result.status}" + (f" ({result.error})" if result.error else "")
    )
    if result.status != "succeeded":
        raise typer.Exit(int(rb.exit_code_for(result.status)))


@app.command()
def note(
    incident_id: Annotated[str, typer.Argument(metavar="ID")],
    text: Annotated[str, typer.Argument(help="Start with 'action:' for an action item.")],
) -> None:
    """Add a note to the timeline."""
    _svc().note(incident_id, text)
    console().print(f"{incident_id.upper()}: noted")


@app.command()
def update(
    incident_id: Annotated[str, typer.Argument(metavar="ID")],
    text: Annotated[str, typer.Argument()],
) -> None:
    """Record a status update (resets the update-cadence clock)."""
    _svc().update(incident_id, text)
    console().print(f"{incident_id.upper()}: status update recorded")


@app.command()
def decide(
    incident_id: Annotated[str, typer.Argument(metavar="ID")],
    decision: Annotated[str, typer.Argument(help="e.g. notifiable (starts clocks anchored on it)")],
    note: Annotated[str | None, typer.Option(help="Why.")] = None,
    at: Annotated[str | None, typer.Option(help="When it was decided (default now).")] = None,
) -> None:
    """Record a decision; deadlines anchored on it start counting."""
    from opsconsole.incidents.report import format_local

    svc = _svc()
    started = svc.decide(incident_id, decision, note, at=_when(at))
    console().print(f"{incident_id.upper()}: decided {decision}")
    for s in started:
        if s.due is not None:
            console().print(
                f"  clock started: {s.deadline.title} [{s.deadline.jurisdiction}] due "
                f"{_utc(s.due)} = {format_local(s.due, s.timezone)}"
            )


@app.command()
def status(
    incident_id: Annotated[str, typer.Argument(metavar="ID")],
    new_status: Annotated[
        str, typer.Argument(metavar="STATUS", help="investigating | mitigated | resolved | closed")
    ],
    note: Annotated[str | None, typer.Option(help="Why.")] = None,
) -> None:
    """Move the incident along declared -> investigating -> mitigated -> resolved -> closed."""
    inc = _svc().set_status(incident_id, new_status, note)
    console().print(f"{inc.id}: {inc.status}")


@app.command()
def report(
    incident_id: Annotated[str, typer.Argument(metavar="ID")],
    out: Annotated[Path | None, typer.Option("--out", help="Write to this file.")] = None,
) -> None:
    """Write the Markdown post-incident report."""
    text = _svc().report(incident_id)
    if out is None:
        state.record("incident.report", incident_id.upper(), {"out": "-"})
        typer.echo(text)
        return
    # Open first (an unwritable --out is recorded as nothing), then record, then write:
    # a report is never on disk without its audit event.
    try:
        fh = out.open("w", encoding="utf-8")
    except OSError as exc:
        from opsconsole.errors import OpsError

        raise OpsError(f"cannot write {out}: {exc.strerror or exc}") from None
    with fh:
        try:
            state.record("incident.report", incident_id.upper(), {"out": str(out)})
        except BaseException:
            fh.close()
            out.unlink(missing_ok=True)
            raise
        fh.write(text + "\n")
    console().print(f"wrote {out}")


@app.command()
def ingest(
    source: Annotated[
        str, typer.Argument(metavar="FILE|-", help="Alertmanager webhook JSON.")
    ] = "-",
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """Declare or update an incident from a Prometheus Alertmanager webhook payload (v4)."""
    from opsconsole.errors import OpsError

    try:
        raw = sys.stdin.read() if source == "-" else Path(source).read_text(encoding="utf-8")
    except OSError as exc:
        raise OpsError(f"cannot read {source}: {exc.strerror or exc}", exit_code=3) from None
    except UnicodeDecodeError as exc:
        raise OpsError(
            f"{source}: not UTF-8 (byte {exc.start}); Alertmanager sends UTF-8 JSON",
            exit_code=3,
        ) from None
    try:
        payload = json.loads(raw)
    except json.JSONDecodeError as exc:
        raise OpsError(f"{source}: not JSON: {exc}") from None
    result = _svc().ingest(payload)
    if as_json:
        print_json(
            {
                "action": result.action,
                "incident": result.incident_id,
                "alerts": result.alerts,
                "message": result.message,
            }
        )
    else:
        console().print(result.message)
