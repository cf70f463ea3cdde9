"""``opsconsole serve``: Alertmanager receiver, /metrics, rules and the outbox worker."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated

import typer

from opsconsole.cli.state import state

TOKEN_ENV = "OPSCONSOLE_SERVE_TOKEN"


def _token(token_file: Path | None) -> str:
    from opsconsole.errors import OpsError
    from opsconsole.redact import secrets

    if token_file is not None:
        try:
            mode = token_file.stat().st_mode
            if mode & 0o026:
                # Like ssh with a private key: a token other accounts can read (or anyone
                # but the owner can replace) is no secret. 0640 lets a group (e.g. the one
                # Alertmanager and Prometheus run in) read it.
                raise OpsError(
                    f"--token-file {token_file}: mode {mode & 0o777:04o} lets other accounts "
                    "read or replace the token; `chmod 0600` it (0640 for a group that "
                    "Alertmanager/Prometheus run in)",
                    exit_code=3,
                )
            token = token_file.read_text(encoding="utf-8").strip()
        except (OSError, UnicodeDecodeError) as exc:
            why = getattr(exc, "strerror", None) or "not UTF-8 text"
            raise OpsError(f"--token-file {token_file}: cannot read: {why}", exit_code=3) from None
        source = str(token_file)
    else:
        token = os.environ.get(TOKEN_ENV, "").strip()
        source = TOKEN_ENV
    if not token:
        raise OpsError(
            f"serve needs a bearer token: put one in a file and pass --token-file FILE, or set "
            f"{TOKEN_ENV} (e.g. `openssl rand -hex 32 > /etc/opsconsole/serve.token`)",
            exit_code=3,
        )
    if len(token) < 16:
        raise OpsError(f"the token from {source} is shorter than 16 characters", exit_code=3)
    secrets.add(token)
    return token


def serve(
    host: Annotated[
        str,
        typer.Option(
            help="Address to bind (loopback by default; a reverse proxy or "
            "--tls-cert before exposing it)."
        ),
    ] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port (0: any free port).", min=0, max=65535)] = 9464,
    token_file: Annotated[
        Path | None,
        typer.Option(help=f"File holding the bearer token (else ${TOKEN_ENV}).", dir_okay=False),
    ] = None,
    tls_cert: Annotated[
        Path | None, typer.Option(help="TLS certificate (PEM) to serve HTTPS.", dir_okay=False)
    ] = None,
    tls_key: Annotated[
        Path | None, typer.Option(help="TLS private key (PEM).", dir_okay=False)
    ] = None,
    max_body: Annotated[
        int, typer.Option(help="Largest request body in bytes (larger: 413).", min=1024)
    ] = 1024 * 1024,
    monitor: Annotated[
        bool, typer.Option("--monitor", help="Also run the health monitor in this process.")
    ] = False,
    scheduler: Annotated[
        bool, typer.Option("--scheduler", help="Also run the drill scheduler in this process.")
    ] = False,
    rules: Annotated[
        Path | None,
        typer.Option(help="Rules file (default: rules.yaml in the config dir).", dir_okay=False),
    ] = None,
    tick: Annotated[
        float, typer.Option(help="Seconds between rule checks of health and deadlines.", min=0.05)
    ] = 1.0,
) -> None:
    """Run the service: Alertmanager webhook receiver, /metrics, /healthz, /readyz, the
    rules, the notification outbox worker (and optionally the monitor and scheduler).

    Every endpoint but /healthz needs `Authorization: Bearer TOKEN`. One JSON log line per
    event on stdout. SIGTERM/SIGINT stop it."""
    import asyncio

    from opsconsole.errors import OpsError
    from opsconsole.notify import channel_secret, check_channel_urls
    from opsconsole.serve.app import ServeOptions, Server

    if (tls_cert is None) != (tls_key is None):
        raise OpsError("give both --tls-cert and --tls-key, or neither", exit_code=2)
    token = _token(token_file)
    config = state.config()
    check_channel_urls(config)
    for channel in config.settings.notifications.channels:
        channel_secret(channel, config)  # a missing secret stops here, not in the worker
    # serve acts as the OS account it runs as (the access policy applies to it like to
    # a person); state.audit() also applies the config's access policy to the database.
    me = state.audit()
    if scheduler:
        from opsconsole.access import authorize

        authorize(me, "scheduler.run", target="scheduler")
    opts = ServeOptions(
        token=token,
        host=host,
        port=port,
        tls_cert=tls_cert,
        tls_key=tls_key,
        max_body=max_body,
        monitor=monitor,
        scheduler=scheduler,
        rules=rules,
        tick_seconds=tick,
        actor=me.actor,
    )

    def reload_config():  # type: ignore[no-untyped-def]
        from opsconsole.config import load_config

        return load_config(state.config_dir)

    async def main() -> int:
        server = Server(
            config,
            state.database_path(),
            opts,
            audit_key=state.audit_key(),
            load_config=reload_config,
        )
        return await server.run()

    raise typer.Exit(asyncio.run(main()))
