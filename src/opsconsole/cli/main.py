"""The ``opsconsole`` command: global options, command groups, and user-error handling."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated

import typer

from opsconsole import __version__
from opsconsole.cli import audit as audit_cmd
from opsconsole.cli import config_cmd, schema_cmd
from opsconsole.cli import state as state_mod

app = typer.Typer(
    name="opsconsole",
    help="Operations and incident-response console: health, runbooks, incidents, drills, audit.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
    context_settings={"help_option_names": ["-h", "--help"]},
)
app.add_typer(audit_cmd.app, name="audit")
app.add_typer(config_cmd.app, name="config")
app.add_typer(schema_cmd.app, name="schema")
# health (issue 3): status, watch, host; demo deployment + fault injection
from opsconsole.cli import demo_cmd, health_cmd  # noqa: E402

health_cmd.register(app)
app.add_typer(demo_cmd.app, name="demo")
# incidents (issue 5)
from opsconsole.cli import incident_cmd  # noqa: E402

app.add_typer(incident_cmd.app, name="incident")
# ssh (issue 4): trust host keys, run commands
from opsconsole.cli import ssh_cmd  # noqa: E402

app.add_typer(ssh_cmd.app, name="ssh")
# drills (issue 6): drill definitions, records, report; the scheduler service
from opsconsole.cli import drill_cmd, scheduler_cmd  # noqa: E402

app.add_typer(drill_cmd.app, name="drill")
app.command("scheduler")(scheduler_cmd.scheduler)
# runbooks (issue 4): validate, plan, run, resume, approve
from opsconsole.cli import runbook_cmd  # noqa: E402

app.add_typer(runbook_cmd.app, name="runbook")
# tui (issue 7): the Textual console
from opsconsole.cli import tui_cmd  # noqa: E402

app.command("tui")(tui_cmd.tui)


def _version(value: bool) -> None:
    if value:
        typer.echo(f"opsconsole {__version__}")
        raise typer.Exit()


@app.callback()
def root(
    config: Annotated[
        Path | None,
        typer.Option("--config", help="Config directory (inventory.yaml, settings.yaml).",
                     envvar="OPSCONSOLE_CONFIG", show_envvar=True),
    ] = None,
    db: Annotated[
        Path | None,
        typer.Option("--db", help="SQLite database file.", envvar="OPSCONSOLE_DB", show_envvar=True),
    ] = None,
    as_: Annotated[
        str | None,
        typer.Option("--as", help="Act as this person in the audit log (the OS user is kept too)."),
    ] = None,
    version: Annotated[
        bool, typer.Option("--version", callback=_version, is_eager=True, help="Show the version.")
    ] = False,
) -> None:
    state_mod.state.__init__(config_dir=config, db_path=db, actor=as_)  # type: ignore[misc]


def main() -> None:
    from opsconsole.errors import OpsError

    try:
        app()
    except OpsError as exc:
        typer.echo(f"error: {exc}" if "\n" not in str(exc) else f"error:\n{exc}", err=True)
        sys.exit(int(exc.exit_code))
    except KeyboardInterrupt:
        typer.echo("interrupted", err=True)
        sys.exit(130)
