"""``opsconsole runbook``: list, show, validate, plan, run, resume, approve runbooks.

Exit codes of run/resume/rollback: 0 succeeded, 10 failed, 11 timed out, 12 rolled back,
13 waiting for approval, 14 aborted or interrupted, 15 invalid runbook, 7 lock held.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from opsconsole.cli.state import console, print_json, print_table, state

if TYPE_CHECKING:
    from opsconsole.runbooks import RunEnv, RunResult

app = typer.Typer(
    help="YAML runbooks: validate, plan (dry run), run, resume, approve.", no_args_is_help=True
)

VarsOpt = Annotated[
    list[str] | None, typer.Option("--var", "-v", help="Parameter as NAME=VALUE (repeatable).")
]
YesOpt = Annotated[bool, typer.Option("--yes", "-y", help="Answer yes to every confirmation.")]
JsonOpt = Annotated[bool, typer.Option("--json", help="Print JSON.")]


def _vars(items: list[str] | None) -> dict[str, str]:
    out: dict[str, str] = {}
    for item in items or []:
        name, sep, value = item.partition("=")
        if not sep or not name.strip():
            raise typer.BadParameter(f"expected NAME=VALUE, got {item!r}", param_hint="--var")
        out[name.strip()] = value
    return out


def _params(rb: Any, items: list[str] | None) -> dict[str, str]:
    """``--var`` values, plus secret parameters from ``OPSCONSOLE_VAR_<NAME>`` or a
    hidden prompt. A secret given with ``--var`` is refused: every user on the host can
    read a process's arguments (ps, /proc/*/cmdline)."""
    import os
    import sys

    params = _vars(items)
    for name, p in rb.params.items():
        if not p.secret:
            continue
        if name in params:
            raise typer.BadParameter(
                f"{name} is a secret parameter: not on the command line (visible in ps); "
                f"set OPSCONSOLE_VAR_{name.upper()} or answer the prompt",
                param_hint="--var",
            )
        from_env = os.environ.get(f"OPSCONSOLE_VAR_{name.upper()}")
        if from_env is not None:
            params[name] = from_env
        elif p.required and p.default is None and sys.stdin.isatty():
            params[name] = typer.prompt(f"{name} (secret)", hide_input=True, err=True)
    return params


def _env() -> RunEnv:
    from opsconsole.events import EventBus
    from opsconsole.runbooks import RunEnv

    return RunEnv(db=state.db(), audit=state.audit(), config=state.config(), bus=EventBus())


def _load(name: str) -> Any:
    from opsconsole.runbooks import find_runbook, load_runbook

    config = state.optional_config()
    return load_runbook(find_runbook(name, config), config=config)


def _execute(coro_factory: Any, env: RunEnv, *, as_json: bool) -> None:
    """Run an engine coroutine with live output, then exit with the run's code."""
    import asyncio

    from opsconsole.cli.runbook_view import LiveRenderer
    from opsconsole.runbooks import exit_code_for

    if not as_json:
        env.bus.subscribe(LiveRenderer())
    from opsconsole.errors import OpsError
    from opsconsole.operator import NeedsAPerson

    try:
        result: RunResult = asyncio.run(_with_signals(coro_factory))
    except NeedsAPerson as exc:
        raise OpsError(str(exc)) from None
    _link_to_incident(env, result)
    if as_json:
        print_json(
            {
                "run_id": result.run_id,
                "status": result.status,
                "error": result.error,
                "measured": result.measured,
                "started_at": result.started_at.isoformat(),
                "finished_at": result.finished_at.isoformat() if result.finished_at else None,
            }
        )
    if result.status == "waiting_approval" and not as_json:
        typer.echo(
            "waiting for approval: another person runs "
            f"`opsconsole runbook approve {result.run_id}`, "
            f"then `opsconsole runbook resume {result.run_id}`",
            err=True,
        )
    raise typer.Exit(exit_code_for(result.status))


def _link_to_incident(env: RunEnv, result: RunResult) -> None:
    """A run started with ``--incident`` (or resumed) shows on that incident's timeline
    with where it stands, so the other people working the incident see it."""
    from opsconsole.runbooks.state import get_run

    row = get_run(env.db, result.run_id)
    if row.incident_id is None or row.parent_run is not None:
        return
    from opsconsole.errors import OpsError
    from opsconsole.incidents import IncidentService

    try:
        IncidentService(env.db, env.audit, env.config).link_run(
            row.incident_id, None, row.id, row.runbook, result.status, result.error
        )
    except OpsError as exc:  # the run itself is recorded; say what could not be linked
        typer.echo(f"warning: run not added to {row.incident_id}'s timeline: {exc}", err=True)


async def _with_signals(coro_factory: Any) -> Any:
    """Run the engine so that SIGTERM and SIGHUP interrupt it like Ctrl-C: the step's
    processes are ended and the run is left resumable (no question is asked)."""
    import asyncio
    import signal

    loop = asyncio.get_running_loop()
    task = asyncio.ensure_future(coro_factory())
    for sig in (signal.SIGTERM, signal.SIGHUP):
        loop.add_signal_handler(sig, task.cancel, sig.name)
    try:
        return await task
    finally:
        for sig in (signal.SIGTERM, signal.SIGHUP):
            loop.remove_signal_handler(sig)


@app.command("list")
def list_(as_json: JsonOpt = False) -> None:
    """Runbooks in the configured directories, then the shipped ones."""
    from opsconsole.runbooks import list_runbooks

    items = list_runbooks(state.optional_config())
    if as_json:
        print_json(
            [
                {
                    "name": i.path.stem,
                    "title": i.name,
                    "path": str(i.path),
                    "description": i.description,
                    "error": i.error,
                }
                for i in items
            ]
        )
        return
    from rich.table import Table

    from opsconsole.cli.safe import plain

    table = Table(box=None, pad_edge=False)
    for col in ("name", "description", "path"):
        table.add_column(col, overflow="fold")
    for i in items:
        table.add_row(
            *(
                plain(v)
                for v in (
                    i.path.stem,
                    f"INVALID: {i.error}" if i.error else i.description,
                    str(i.path),
                )
            )
        )
    print_table(table, keep=("name", "path"))


@app.command("show")
def show(
    name: Annotated[str, typer.Argument(help="Runbook name or path to a YAML file.")],
    as_json: JsonOpt = False,
) -> None:
    """Parameters, steps and rollback of one runbook."""
    rb = _load(name)
    if as_json:
        print_json(rb.model_dump(mode="json", by_alias=True, exclude_defaults=True))
        return
    from opsconsole.cli.runbook_view import print_show

    print_show(console(), rb)


@app.command("validate")
def validate_(
    paths: Annotated[
        list[Path] | None, typer.Argument(help="Files (default: every runbook found).")
    ] = None,
) -> None:
    """Check runbook files; each problem is printed as file:line:col: field: message."""
    from opsconsole.errors import SourceError
    from opsconsole.runbooks import load_runbook, runbook_dirs
    from opsconsole.runbooks.loader import INVALID_EXIT

    files = list(paths or [])
    if not files:
        for d in runbook_dirs(state.optional_config()):
            if d.is_dir():
                files.extend(sorted([*d.glob("*.yaml"), *d.glob("*.yml")]))
    bad = 0
    config = state.optional_config()
    for path in files:
        try:
            load_runbook(path, config=config)
            typer.echo(f"{path}: OK")
        except SourceError as exc:
            bad += 1
            typer.echo(str(exc), err=True)
    typer.echo(f"{len(files) - bad} valid, {bad} invalid", err=True)
    if bad:
        raise typer.Exit(INVALID_EXIT)


@app.command("plan")
def plan(
    name: Annotated[str, typer.Argument(help="Runbook name or path.")],
    var: VarsOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Dry run: render every step with final (redacted) values; only read-only steps run.

    Exits 10 when a step cannot be rendered (a real run would fail there)."""
    import asyncio
    from dataclasses import asdict

    from opsconsole.cli.runbook_view import print_plan
    from opsconsole.runbooks import exit_code_for, plan_run

    rb = _load(name)
    steps = asyncio.run(plan_run(rb, _params(rb, var), env=_env()))
    if as_json:
        print_json([asdict(s) for s in steps])
    else:
        print_plan(console(), rb.name, steps)
    if any(s.will_run == "error" for s in steps):
        raise typer.Exit(exit_code_for("failed"))  # a real run would fail on these


@app.command("run")
def run(
    name: Annotated[str, typer.Argument(help="Runbook name or path.")],
    var: VarsOpt = None,
    yes: YesOpt = False,
    drill: Annotated[
        bool, typer.Option("--drill", help="Drill mode (drill: skip / auto-confirm apply).")
    ] = False,
    incident: Annotated[
        str | None, typer.Option("--incident", help="Link the run to this incident.")
    ] = None,
    as_json: JsonOpt = False,
) -> None:
    """Run a runbook; every step is recorded, so a killed run can be resumed."""
    from opsconsole.cli.prompts import TerminalOperator
    from opsconsole.runbooks import start_run

    rb = _load(name)
    env = _env()
    params = _params(rb, var)
    if incident is not None:  # link only to an incident that exists (NotFoundError, exit 4)
        from opsconsole.incidents.store import load_incident

        incident = load_incident(env.db, incident).id
    op = TerminalOperator(assume_yes=yes)
    _execute(
        lambda: start_run(
            rb,
            params,
            env=env,
            operator=op,
            mode="drill" if drill else "normal",
            incident_id=incident,
        ),
        env,
        as_json=as_json,
    )


@app.command("resume")
def resume(
    run_id: Annotated[str, typer.Argument(help="Run id (a unique prefix is enough).")],
    yes: YesOpt = False,
    as_json: JsonOpt = False,
) -> None:
    """Continue a stopped run at its first unfinished step (finished steps never re-run)."""
    from opsconsole.cli.prompts import TerminalOperator
    from opsconsole.runbooks import resume_run

    env = _env()
    op = TerminalOperator(assume_yes=yes)
    _execute(lambda: resume_run(run_id, env=env, operator=op), env, as_json=as_json)


@app.command("abort")
def abort(
    run_id: Annotated[str, typer.Argument(help="Run id (a unique prefix is enough).")],
    force: Annotated[
        bool,
        typer.Option("--force", help="Stop a live owner process first (SIGTERM, same host)."),
    ] = False,
) -> None:
    """End an unfinished run for good: its leftover processes are ended, its lock released."""
    from opsconsole.runbooks import abort_run

    result = abort_run(run_id, env=_env(), force=force)
    typer.echo(f"run {result.run_id} aborted")


@app.command("rollback")
def rollback(
    run_id: Annotated[str, typer.Argument(help="Run id.")],
    yes: YesOpt = False,
    as_json: JsonOpt = False,
) -> None:
    """Run the rollback steps of a finished run (e.g. fail back after a failover)."""
    from opsconsole.cli.prompts import TerminalOperator
    from opsconsole.runbooks import rollback_run
    from opsconsole.runbooks.state import get_run

    env = _env()
    run_row = get_run(env.db, run_id)
    op = TerminalOperator(assume_yes=yes)
    if not yes and not typer.confirm(
        f"Roll back run {run_row.id} ({run_row.runbook}, {run_row.status})?",
        default=False,
        err=True,
    ):
        raise typer.Exit(1)
    _execute(lambda: rollback_run(run_row.id, env=env, operator=op), env, as_json=as_json)


def _decide(run_id: str, approve: bool, comment: str | None) -> None:
    from opsconsole.runbooks import decide_approval

    a = decide_approval(
        state.db(),
        state.audit(),
        run_id,
        approve=approve,
        comment=comment,
        config=state.optional_config(),
    )
    verb = "approved" if approve else "denied"
    typer.echo(
        f"run {a.run_id} step {a.step_id} {verb} by {a.decided_by}; "
        f"continue it with `opsconsole runbook resume {a.run_id}`"
    )


@app.command("approve")
def approve(
    run_id: Annotated[str, typer.Argument(help="Run id.")],
    comment: Annotated[str | None, typer.Option("--comment", "-m", help="Why.")] = None,
) -> None:
    """Approve a run waiting for approval: not one you started or requested (needs the
    runbook.approve permission; you are your OS account, or your database role on
    PostgreSQL, where the database itself refuses a self-approval)."""
    _decide(run_id, True, comment)


@app.command("deny")
def deny(
    run_id: Annotated[str, typer.Argument(help="Run id.")],
    comment: Annotated[str | None, typer.Option("--comment", "-m", help="Why.")] = None,
) -> None:
    """Deny a run waiting for approval; resuming it then fails (or rolls back)."""
    _decide(run_id, False, comment)


@app.command("runs")
def runs(
    status: Annotated[
        str | None, typer.Option("--status", help="Only runs with this status.")
    ] = None,
    limit: Annotated[int, typer.Option(help="At most this many (newest first).", min=1)] = 50,
    as_json: JsonOpt = False,
) -> None:
    """Recent runs, newest first."""
    from opsconsole.runbooks.results import RUN_STATUSES
    from opsconsole.runbooks.state import list_runs

    if status is not None and status not in ("running", *RUN_STATUSES):
        raise typer.BadParameter(
            f"{status!r} is not a run status; use running, {', '.join(RUN_STATUSES)}",
            param_hint="--status",
        )
    rows = list_runs(state.db(), status=status, limit=limit)
    if as_json:
        print_json(rows)
        return
    from rich.table import Table

    table = Table(box=None, pad_edge=False)
    for col in ("run", "runbook", "status", "mode", "actor", "started (UTC)", "error"):
        table.add_column(col, overflow="fold")
    from opsconsole.cli.safe import plain

    for r in rows:
        table.add_row(
            *(
                plain(v)
                for v in (
                    r["id"],
                    r["runbook"],
                    r["status"],
                    r["mode"],
                    r["actor"],
                    r["started_at"][:19],
                    (r["error"] or "")[:80],
                )
            )
        )
    if not rows:
        console().print("no runs")
        return
    print_table(table, keep=("run", "runbook", "status", "mode", "actor", "started (UTC)"))


@app.command("log")
def log(
    run_id: Annotated[str, typer.Argument(help="Run id.")],
    as_json: JsonOpt = False,
    follow: Annotated[
        bool,
        typer.Option(
            "--follow",
            "-f",
            help="Then stream step starts, output and status (whichever host runs it) "
            "until the run finishes or Ctrl-C; exits with the run's exit code.",
        ),
    ] = False,
) -> None:
    """A run's steps, their rendered values, status and stored (redacted) output."""
    from dataclasses import asdict

    from opsconsole.cli.runbook_view import print_log
    from opsconsole.runbooks.state import get_run, get_steps

    db = state.db()
    if follow and as_json:
        raise typer.BadParameter("--follow prints for people; use it without --json")
    if follow:
        from opsconsole.cli.follow import Follower, follow_run

        run_row = get_run(db, run_id)  # an unknown run fails before anything is opened
        follower = Follower(db)  # the cursor before the state: nothing falls between
        run_row = get_run(db, run_row.id)
        steps = get_steps(db, run_row.id)
        print_log(console(), run_row, steps)
        follow_run(console(), db, run_row, steps, follower)
        return
    run_row = get_run(db, run_id)
    steps = get_steps(db, run_row.id)
    if as_json:
        data = asdict(run_row)
        data.pop("source", None)
        print_json({"run": data, "steps": [asdict(s) for s in steps]})
        return
    print_log(console(), run_row, steps)


@app.command("locks")
def locks(as_json: JsonOpt = False) -> None:
    """Held run locks, with holder run, actor and whether the holder process is gone (its
    lease is stale)."""
    from opsconsole.runbooks.locks import list_locks
    from opsconsole.timeutil import isoformat

    items = list_locks(state.db())
    if as_json:
        print_json(
            [
                {
                    "key": i.key,
                    "run_id": i.run_id,
                    "actor": i.actor,
                    "pid": i.lease.holder.pid if i.lease else i.pid,
                    "hostname": i.lease.holder.host if i.lease else i.hostname,
                    "acquired_at": i.acquired_at,
                    "lease_expires_at": isoformat(i.lease.expires_at) if i.lease else None,
                    "stale": i.stale,
                }
                for i in items
            ]
        )
        return
    from opsconsole.cli.safe import clean

    for i in items:
        typer.echo(clean(f"{i.key}: {i.describe()}"))
    if not items:
        typer.echo("no locks held")


@app.command("unlock")
def unlock(
    key: Annotated[str, typer.Argument(help="Lock key, e.g. failover:sa-east-1.")],
    force: Annotated[
        bool, typer.Option("--force", help="Break a lock whose holder looks alive.")
    ] = False,
) -> None:
    """Release a stale lock (its holder process is gone); audited."""
    from opsconsole.runbooks import release_lock

    held = release_lock(state.db(), state.audit(), key, force=force, config=state.optional_config())
    typer.echo(f"released {key} (was held by run {held.run_id}, {held.actor})")
