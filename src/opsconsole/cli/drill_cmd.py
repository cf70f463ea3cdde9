"""``opsconsole drill``: define drills, run and record them, and report on the programme."""

from __future__ import annotations

from enum import StrEnum
from typing import TYPE_CHECKING, Annotated, Any

import typer

from opsconsole.cli.state import console, print_json, print_table, state

if TYPE_CHECKING:
    from opsconsole.config import Config
    from opsconsole.drills.loader import LoadedDrills
    from opsconsole.drills.model import Drill
    from opsconsole.drills.store import DrillRun

app = typer.Typer(
    help="Disaster-recovery drills: define, run, record, report.", no_args_is_help=True
)


class Kind(StrEnum):
    tabletop = "tabletop"
    live = "live"


class Format(StrEnum):
    md = "md"
    json = "json"


class Outcome(StrEnum):
    passed = "passed"
    failed = "failed"


def _loaded() -> LoadedDrills:
    from opsconsole.drills.loader import load_drills

    return load_drills(state.config())


def _fields(kind: Kind | None, param: list[str] | None, **options: Any) -> dict[str, Any]:
    from opsconsole.drills.loader import option_fields

    return option_fields(kind=kind.value if kind else None, params=param, **options)


def _save(name: str, fields: dict[str, Any], *, create: bool) -> None:
    from opsconsole.access import authorize
    from opsconsole.drills.due import anchor_key, touch_anchor
    from opsconsole.drills.loader import ProductionRefused, check_target, editing, save_drill

    config, db, audit = state.config(), state.db(), state.audit()
    authorize(audit, "drill.manage", target=name)

    def before_write(drill: Any) -> None:
        refused = check_target(drill, config.inventory)
        if refused:
            raise ProductionRefused(f"{name}: {refused}")
        if drill.runbook:
            _check_runbook(drill, config)
        audit.record(
            "drill.add" if create else "drill.edit",
            name,
            {"fields": fields, "file": str(loaded.path)},
        )
        touch_anchor(db, name, anchor_key(drill))

    with editing(config, db) as loaded:
        drill = save_drill(config, loaded, name, fields, create=create, before_write=before_write)
    sched = drill.schedule.describe() if drill.schedule else "not scheduled (run by hand)"
    typer.echo(
        f"{'added' if create else 'updated'} drill {name} in {loaded.path}: {drill.kind}, {sched}"
    )


def _check_runbook(drill: Drill, config: Config) -> None:
    """Refuse a runbook that cannot be found or loaded, or params it would reject at run time.

    Otherwise the mistake only shows when the scheduler runs the drill, unattended.
    """
    from opsconsole.runbooks import find_runbook, load_runbook
    from opsconsole.runbooks.context import coerce_params

    coerce_params(load_runbook(find_runbook(drill.runbook, config)), dict(drill.params))


# Options shared by add and edit.
PlanOpt = Annotated[str | None, typer.Option(help="Continuity plan, e.g. payments-bcp.")]
KindOpt = Annotated[Kind | None, typer.Option(help="tabletop or live.")]
RunbookOpt = Annotated[str | None, typer.Option(help="Runbook name or path (live drills).")]
ParamOpt = Annotated[list[str] | None, typer.Option("--param", help="Runbook parameter KEY=VALUE.")]
TargetOpt = Annotated[str | None, typer.Option(help="Inventory region the drill acts on.")]
CronOpt = Annotated[str | None, typer.Option(help="Cron: 'min hour day month weekday'.")]
AtOpt = Annotated[str | None, typer.Option(help="One-off time instead of cron (ISO-8601).")]
TzOpt = Annotated[str | None, typer.Option("--timezone", help="Time zone of the schedule.")]
RtoOpt = Annotated[float | None, typer.Option("--rto", help="RTO objective in seconds.")]
RpoOpt = Annotated[float | None, typer.Option("--rpo", help="RPO objective in seconds.")]
OwnerOpt = Annotated[str | None, typer.Option(help="Who owns the drill.")]
DescOpt = Annotated[str | None, typer.Option(help="What the drill rehearses.")]
GraceOpt = Annotated[float | None, typer.Option(help="Misfire grace in seconds.")]
FailBackOpt = Annotated[
    bool | None,
    typer.Option(
        "--fail-back/--no-fail-back",
        help="After a successful live drill, run the runbook's rollback (return to normal).",
    ),
]


@app.command("add")
def add(
    name: Annotated[str, typer.Argument(help="Drill name.")],
    plan: PlanOpt = None,
    kind: KindOpt = None,
    runbook: RunbookOpt = None,
    param: ParamOpt = None,
    target: TargetOpt = None,
    cron: CronOpt = None,
    at: AtOpt = None,
    timezone: TzOpt = None,
    rto: RtoOpt = None,
    rpo: RpoOpt = None,
    owner: OwnerOpt = None,
    description: DescOpt = None,
    grace: GraceOpt = None,
    fail_back: FailBackOpt = None,
    allow_production: Annotated[
        bool, typer.Option(help="Allow a production target (refused otherwise).")
    ] = False,
    disabled: Annotated[bool, typer.Option(help="Define it but do not schedule it.")] = False,
) -> None:
    """Define a drill in drills.yaml (validated; audited)."""
    options = {k: v for k, v in locals().items() if k not in ("name", "disabled")}
    options.update(allow_production=allow_production or None, enabled=False if disabled else None)
    fields = _fields(**options)
    _save(name, fields, create=True)


@app.command("edit")
def edit(
    name: Annotated[str, typer.Argument(help="Drill name.")],
    plan: PlanOpt = None,
    kind: KindOpt = None,
    runbook: RunbookOpt = None,
    param: ParamOpt = None,
    target: TargetOpt = None,
    cron: CronOpt = None,
    at: AtOpt = None,
    timezone: TzOpt = None,
    rto: RtoOpt = None,
    rpo: RpoOpt = None,
    owner: OwnerOpt = None,
    description: DescOpt = None,
    grace: GraceOpt = None,
    fail_back: FailBackOpt = None,
    allow_production: Annotated[
        bool | None,
        typer.Option("--allow-production/--no-allow-production", help="Allow a production target."),
    ] = None,
    enabled: Annotated[
        bool | None, typer.Option("--enable/--disable", help="Schedule it or not.")
    ] = None,
) -> None:
    """Change fields of a drill (only the options given; --param replaces all params)."""
    fields = _fields(**{k: v for k, v in locals().items() if k != "name"})
    if not fields:
        raise typer.BadParameter("nothing to change: give at least one option")
    _save(name, fields, create=False)


@app.command("remove")
def remove(name: Annotated[str, typer.Argument(help="Drill name.")]) -> None:
    """Delete a drill definition (its recorded runs stay)."""
    from opsconsole.access import authorize
    from opsconsole.drills.due import forget_anchor
    from opsconsole.drills.loader import drills_path, editing, remove_drill

    config, db, audit = state.config(), state.db(), state.audit()
    authorize(audit, "drill.manage", target=name)
    path = drills_path(config)

    def before_write(drill: Any) -> None:
        audit.record("drill.remove", name, {"plan": drill.plan, "file": str(path)})
        forget_anchor(db, name)

    with editing(config, db) as loaded:
        remove_drill(loaded, name, before_write)
    typer.echo(f"removed drill {name} from {loaded.path}")


@app.command("list")
def list_(as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False) -> None:
    """Drill definitions with their next due date and whether the guard allows them."""
    from opsconsole.drills.loader import overview

    loaded = _loaded()
    rows = overview(loaded, state.config().inventory)
    if as_json:
        print_json({"file": str(loaded.path), "drills": rows})
        return
    from rich.table import Table

    table = Table(title=str(loaded.path), title_justify="left", box=None)
    for col in (
        "name",
        "plan",
        "kind",
        "target",
        "schedule",
        "next due (UTC)",
        "RTO",
        "RPO",
        "owner",
    ):
        table.add_column(col, overflow="fold")
    for r in rows:
        due = (
            r["next_due"][:16].replace("T", " ")
            if r["next_due"]
            else ("disabled" if not r["enabled"] else "-")
        )
        target = (r["target"] or "-") + (" (REFUSED: production)" if r["refused"] else "")
        table.add_row(
            r["name"],
            r["plan"],
            r["kind"],
            target,
            r["schedule"] or "by hand",
            due,
            _n(r["rto_seconds"]),
            _n(r["rpo_seconds"]),
            r["owner"],
        )
    print_table(table, keep=("name", "plan", "kind", "next due (UTC)", "RTO", "RPO", "owner"))
    if not rows:
        console().print(
            f"no drills defined; add one with `opsconsole drill add` (file: {loaded.path})"
        )


def _n(value: float | None) -> str:
    return "-" if value is None else f"{value:g}s"


def _show_run(run: DrillRun) -> None:
    rto = f"RTO {run.rto_seconds:.1f}s" if run.rto_seconds is not None else "RTO -"
    if run.rto_objective is not None:
        rto += f" (objective {run.rto_objective:g}s, {'met' if run.rto_met else 'NOT met'})"
    rpo = f"RPO {run.rpo_seconds:.1f}s" if run.rpo_seconds is not None else ""
    typer.echo(f"drill {run.drill}: {run.status.upper()}  [{run.id}]  {rto}  {rpo}".rstrip())
    if run.run_id:
        typer.echo(f"  runbook run: {run.run_id}")
    if run.reason:
        typer.echo(f"  reason: {run.reason}")
    for finding in run.findings:
        typer.echo(f"  finding: {finding}")


def _progress(event: Any) -> None:
    if event.kind == "StepStarted":
        typer.echo(f"  > {event.step_id}: {event.name or event.action}", err=True)
    elif event.kind == "StepFinished":
        extra = f" ({event.error})" if getattr(event, "error", None) else ""
        typer.echo(f"  {event.step_id}: {event.status}{extra}", err=True)


@app.command("run")
def run(
    name: Annotated[str, typer.Argument(help="Drill name.")],
    unattended: Annotated[
        bool,
        typer.Option(
            help="Nobody answers: steps needing a person fail the drill, as in the scheduler."
        ),
    ] = False,
) -> None:
    """Run a live drill now (its runbook in drill mode), recording the result."""
    import asyncio

    from opsconsole.cli.prompts import TerminalOperator
    from opsconsole.drills.execute import DrillContext, run_drill
    from opsconsole.operator import UnattendedOperator

    loaded = _loaded()
    drill = loaded.get(name)
    ctx = DrillContext(state.db(), state.audit(), state.config(), loaded.file, on_event=_progress)
    operator: Any = UnattendedOperator(f"drill {name}") if unattended else TerminalOperator()
    result = asyncio.run(run_drill(ctx, name, drill, operator))
    _show_run(result)
    if result.status != "passed":
        raise typer.Exit(1)


@app.command("record")
def record(
    name: Annotated[
        str, typer.Argument(help="Drill name (a defined drill, or any name with --plan).")
    ],
    participants: Annotated[str, typer.Option(help="Comma-separated names.")],
    notes: Annotated[str, typer.Option(help="What was exercised and how it went.")],
    kind: Annotated[Kind, typer.Option(help="Usually tabletop.")] = Kind.tabletop,
    plan: Annotated[str | None, typer.Option(help="Plan, if NAME is not a defined drill.")] = None,
    finding: Annotated[
        list[str] | None, typer.Option("--finding", help="A finding (repeat).")
    ] = None,
    follow_up: Annotated[
        list[str] | None, typer.Option("--follow-up", help="'ACTION|OWNER|YYYY-MM-DD' (repeat).")
    ] = None,
    outcome: Annotated[Outcome, typer.Option(help="passed or failed.")] = Outcome.passed,
    held_at: Annotated[
        str | None, typer.Option("--at", help="When it was held (default now).")
    ] = None,
) -> None:
    """Record a drill that people held (tabletop exercise), with findings and follow-ups."""
    from opsconsole.drills.records import parse_followup, record_tabletop
    from opsconsole.timeutil import parse_when

    loaded = _loaded()
    drill = loaded.file.drills.get(name)
    if drill is None and plan is None:
        loaded.get(name)  # names the defined drills
    owner = drill.owner if drill else None
    specs = [parse_followup(f, owner) for f in follow_up or []]
    try:
        when = parse_when(held_at) if held_at else None
    except ValueError as exc:
        raise typer.BadParameter(str(exc)) from None
    result = record_tabletop(
        state.db(),
        state.audit(),
        name,
        drill,
        plan=plan,
        kind=kind.value,
        participants=[p.strip() for p in participants.split(",") if p.strip()],
        notes=notes,
        findings=list(finding or []),
        followups=specs,
        outcome=outcome.value,
        held_at=when,
    )
    typer.echo(f"recorded {result.kind} drill {name} ({result.status}) as {result.id}")


@app.command("review")
def review(
    plan: Annotated[str, typer.Argument(help="Continuity plan reviewed.")],
    notes: Annotated[str, typer.Option(help="What the review covered and changed.")],
    at: Annotated[str | None, typer.Option(help="When (default now).")] = None,
) -> None:
    """Record a review of a continuity plan (the report checks it is within 12 months)."""
    from opsconsole.drills.records import record_review
    from opsconsole.timeutil import parse_when

    try:
        when = parse_when(at) if at else None
    except ValueError as exc:
        raise typer.BadParameter(str(exc), param_hint="--at") from None
    record_review(state.db(), state.audit(), plan, notes, when)
    typer.echo(f"recorded review of plan {plan}")


@app.command("history")
def history(
    name: Annotated[str | None, typer.Argument(help="Only this drill.")] = None,
    plan: Annotated[str | None, typer.Option(help="Only this plan.")] = None,
    limit: Annotated[int, typer.Option(help="The newest N.", min=1)] = 50,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """Recorded drill runs, missed ones included, oldest first."""
    from opsconsole.drills.store import history as query

    runs = query(state.db(), name, plan=plan, limit=limit)
    if as_json:
        print_json([r.to_json() for r in runs])
        return
    from rich.table import Table

    table = Table(box=None)
    for col in (
        "when (UTC)",
        "drill",
        "plan",
        "kind",
        "status",
        "RTO s",
        "RPO s",
        "via",
        "reason / notes",
        "id",
    ):
        table.add_column(col, overflow="fold")
    for r in runs:
        when = r.when.strftime("%Y-%m-%d %H:%M") if r.when else "-"
        table.add_row(
            when,
            r.drill,
            r.plan,
            r.kind,
            r.status,
            f"{r.rto_seconds:.1f}" if r.rto_seconds is not None else "-",
            f"{r.rpo_seconds:.1f}" if r.rpo_seconds is not None else "-",
            f"{r.trigger}/{r.interface}",
            r.reason or r.notes or "",
            r.id,
        )
    print_table(table, keep=("when (UTC)", "drill", "plan", "kind", "status", "id"))
    if not runs:
        console().print("no drill runs recorded")


@app.command("followup")
def followup(
    run_id: Annotated[str, typer.Argument(help="Drill run id (see `drill history`).")],
    spec: Annotated[str, typer.Argument(help="'ACTION|OWNER|YYYY-MM-DD'.")],
) -> None:
    """Add a follow-up action to a recorded drill run."""
    from opsconsole.drills.records import add_followup, parse_followup

    fid = add_followup(state.db(), state.audit(), run_id, parse_followup(spec))
    typer.echo(f"follow-up #{fid} added to {run_id}")


@app.command("followup-done")
def followup_done(
    followup_id: Annotated[int, typer.Argument(help="Follow-up number.")],
) -> None:
    """Close a follow-up action."""
    from opsconsole.drills.records import close_followup

    close_followup(state.db(), state.audit(), followup_id)
    typer.echo(f"follow-up #{followup_id} closed")


@app.command("report")
def report(
    year: Annotated[int | None, typer.Option(help="Calendar year (default: this year).")] = None,
    plan: Annotated[str | None, typer.Option(help="Only this plan.")] = None,
    format: Annotated[Format, typer.Option("--format", help="md or json.")] = Format.md,
    check: Annotated[
        bool, typer.Option(help="Exit 1 if any plan's programme was not kept.")
    ] = False,
) -> None:
    """Was each plan's drill programme kept? (drills by kind, live drill, plan review...)"""
    from opsconsole.drills.report import build_report, render_markdown, report_json

    reports = build_report(state.db(), _loaded().file, year=year, plan=plan)
    state.record(
        "drill.report",
        plan or "*",
        {
            "year": reports[0].year if reports else year,
            "format": format.value,
            "kept": {r.plan: r.kept for r in reports},
        },
    )
    if format is Format.json:
        print_json(report_json(reports))
    else:
        typer.echo(render_markdown(reports))
    if check and not all(r.kept for r in reports):
        raise typer.Exit(1)
