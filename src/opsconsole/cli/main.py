"""The ``opsconsole`` command: global options, command groups, and user-error handling."""

from __future__ import annotations

import importlib
import sqlite3
import sys
from pathlib import Path
from typing import Annotated, Any

import typer
import typer.main
from typer._click import core as click
from typer._click.exceptions import UsageError
from typer.core import TyperGroup
from typer.models import CommandInfo

from opsconsole import __version__
from opsconsole.cli import state as state_mod

# Every command, in the order `--help` lists them: name -> (module, attribute). An
# attribute is a Typer sub-app (a command group) or a function (a single command).
# Modules are imported, and their commands built, only when that command runs: building
# all of them up front would double the start-up time of every invocation.
COMMANDS: dict[str, tuple[str, str]] = {
    "demo": ("opsconsole.cli.demo_cmd", "app"),
    "tui": ("opsconsole.cli.tui_cmd", "tui"),
    "status": ("opsconsole.cli.health_cmd", "status"),
    "watch": ("opsconsole.cli.health_cmd", "watch"),
    "host": ("opsconsole.cli.health_cmd", "host"),
    "runbook": ("opsconsole.cli.runbook_cmd", "app"),
    "incident": ("opsconsole.cli.incident_cmd", "app"),
    "drill": ("opsconsole.cli.drill_cmd", "app"),
    "scheduler": ("opsconsole.cli.scheduler_cmd", "scheduler"),
    "ssh": ("opsconsole.cli.ssh_cmd", "app"),
    "serve": ("opsconsole.cli.serve_cmd", "serve"),
    "notify": ("opsconsole.cli.notify_cmd", "app"),
    "rules": ("opsconsole.cli.rules_cmd", "app"),
    "audit": ("opsconsole.cli.audit", "app"),
    "access": ("opsconsole.cli.access_cmd", "app"),
    "evidence": ("opsconsole.cli.evidence_cmd", "app"),
    "config": ("opsconsole.cli.config_cmd", "app"),
    "schema": ("opsconsole.cli.schema_cmd", "app"),
    "db": ("opsconsole.cli.db_cmd", "app"),
}


def _target(name: str) -> Any:
    module, attr = COMMANDS[name]
    return getattr(importlib.import_module(module), attr)


def _plain_help(command: click.Command) -> None:
    """Sub-apps built on their own would default to Rich help; keep the root's style."""
    command.rich_markup_mode = None  # type: ignore[attr-defined]
    for sub in getattr(command, "commands", {}).values():
        _plain_help(sub)


def nearest_commands(typo: str, names: list[str]) -> list[str]:
    """Commands a mistyped name probably meant: close spellings, else the ones it starts."""
    import difflib

    close = difflib.get_close_matches(typo.lower(), names, n=2, cutoff=0.6)
    return close or [n for n in names if typo and n.startswith(typo.lower())][:2]


class LazyGroup(TyperGroup):
    """The root group: lists every command, builds only the one that is invoked."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return list(COMMANDS)

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        if cmd_name not in COMMANDS:
            return None
        target = _target(cmd_name)
        if isinstance(target, typer.Typer):
            command: click.Command = typer.main.get_group(target)
        else:
            command = typer.main.get_command_from_info(
                CommandInfo(name=cmd_name, callback=target),
                pretty_exceptions_short=True,
                rich_markup_mode=None,
            )
        command.name = cmd_name
        _plain_help(command)
        return command

    def resolve_command(
        self, ctx: click.Context, args: list[str]
    ) -> tuple[str | None, click.Command | None, list[str]]:
        """An unknown command names the nearest ones: ``stauts`` -> "Did you mean 'status'?"."""
        try:
            return super().resolve_command(ctx, args)
        except UsageError as exc:
            if args and "Did you mean" not in exc.message:
                near = nearest_commands(args[0], list(COMMANDS))
                if near:
                    names = " or ".join(repr(n) for n in near)
                    exc.message = f"{exc.message.rstrip('.')}. Did you mean {names}?"
            raise

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        rows = []
        for name in self.list_commands(ctx):
            target = _target(name)
            text = target.info.help if isinstance(target, typer.Typer) else target.__doc__
            # The first paragraph, not the first line: a summary wrapped in the docstring
            # would be cut mid-sentence.
            first = (text or "").strip().split("\n\n", 1)[0]
            rows.append((name, " ".join(first.split())))
        with formatter.section("Commands"):
            formatter.write_dl(rows)


app = typer.Typer(
    name="opsconsole",
    cls=LazyGroup,
    help="Operations and incident-response console: health, runbooks, incidents, drills, audit.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
    context_settings={"help_option_names": ["-h", "--help"]},
)


def _version(value: bool) -> None:
    if value:
        typer.echo(f"opsconsole {__version__}")
        raise typer.Exit()


@app.callback()
def root(
    config: Annotated[
        Path | None,
        typer.Option(
            "--config",
            help="Config directory (inventory.yaml, settings.yaml).",
            envvar="OPSCONSOLE_CONFIG",
            show_envvar=True,
        ),
    ] = None,
    db: Annotated[
        str | None,
        typer.Option(
            "--db",
            help="The store: a SQLite file, or a postgresql:// URL (team mode).",
            envvar="OPSCONSOLE_DB",
            show_envvar=True,
        ),
    ] = None,
    as_: Annotated[
        str | None,
        typer.Option(
            "--as",
            help="Record that you act on behalf of NAME (an annotation only: the actor is "
            "always your OS account, or on PostgreSQL your database role; --as grants nothing).",
        ),
    ] = None,
    version: Annotated[
        bool, typer.Option("--version", callback=_version, is_eager=True, help="Show the version.")
    ] = False,
) -> None:
    state_mod.state.__init__(config_dir=config, db_path=db, on_behalf_of=as_)  # type: ignore[misc]


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
    except (OSError, sqlite3.Error) as exc:
        # A storage failure that no store-layer code turned into a StoreError: still one
        # line and the documented exit code 5, never a traceback (see store_failure).
        from opsconsole.store import store_failure

        failure = store_failure(exc)
        if failure is None:
            raise
        typer.echo(f"error: {failure}", err=True)
        sys.exit(int(failure.exit_code))
