"""``opsconsole scheduler``: the drill scheduler service (or one pass with ``--once``)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated

import typer

from opsconsole.cli.state import state

if TYPE_CHECKING:
    from opsconsole.config import Config


def scheduler(
    once: Annotated[
        bool,
        typer.Option(
            "--once",
            help="Run whatever is due now, record missed drills, and exit "
            "(for cron or a systemd timer).",
        ),
    ] = False,
    lock_stale_after: Annotated[
        float | None,
        typer.Option(
            help="Seconds the scheduler lease outlives its last heartbeat; after that another "
            "scheduler (on any host) takes it over. Default: settings lease_seconds (30).",
            min=1,
        ),
    ] = None,
    lock_host: Annotated[
        str | None,
        typer.Option(
            help="Host name to hold the scheduler lease under (default: this host's name). "
            "Pids are only compared between processes holding it under the same name.",
        ),
    ] = None,
) -> None:
    """Run due drills unattended (APScheduler); one JSON log line per event on stdout.

    Only one scheduler runs per database, across hosts (the `scheduler` lease). The
    first SIGTERM/SIGINT lets running drills finish; a second interrupts them (they stay
    resumable). SIGHUP reloads drills.yaml.
    """
    import asyncio

    from opsconsole.access import authorize
    from opsconsole.drills.service import DrillScheduler
    from opsconsole.identity import service

    state.config()  # a broken config fails here, before the lock is taken
    # Who may start the service is checked against the OS account; the service then
    # acts as its own identity, `scheduler` (the OS account is kept in each event). On
    # PostgreSQL both are the database role it logs in as (its own, see `db init`).
    authorize(state.audit(), "scheduler.run", target="scheduler")
    audit = state.audit_for(service(db=state.db()).name, "scheduler")

    def reload_config() -> Config:
        from opsconsole.config import load_config

        return load_config(state.config_dir)

    service = DrillScheduler(db=state.db(), audit=audit, load_config=reload_config)
    serving = service.serve(once=once, lease_seconds=lock_stale_after, lock_host=lock_host)
    code = asyncio.run(serving)
    raise typer.Exit(code)
