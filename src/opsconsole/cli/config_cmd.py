"""``opsconsole config``: validate and summarise the inventory."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from opsconsole.cli.state import console, print_json, print_table, state

app = typer.Typer(help="Inspect and validate the configuration.", no_args_is_help=True)


@app.command("check")
def check(
    as_json: Annotated[bool, typer.Option("--json", help="Print the summary as JSON.")] = False,
) -> None:
    """Validate inventory.yaml and settings.yaml; summarise regions, services, endpoints, hosts."""
    cfg = state.config()
    state.audit_key()  # an unreadable or empty audit_key_file is a configuration error too
    if cfg.settings.notifications.channels:
        from opsconsole.notify import check_channel_urls

        check_channel_urls(cfg)
    inv = cfg.inventory
    rows = []
    for rid, region in inv.regions.items():
        rows.append(
            {
                "region": rid,
                "name": region.name,
                "environment": region.environment,
                "standby": region.standby,
                "services": len(region.services),
                "endpoints": sum(len(s.endpoints) for s in region.services.values()),
                "hosts": len(region.hosts),
            }
        )
    if as_json:
        print_json({"config": str(cfg.directory), "regions": rows})
        return
    from rich.table import Table

    table = Table(title=f"{cfg.directory}: OK", title_justify="left", box=None, pad_edge=False)
    for col in ("region", "name", "environment", "standby", "services", "endpoints", "hosts"):
        table.add_column(
            col, justify="right" if col in ("services", "endpoints", "hosts") else "left"
        )
    for r in rows:
        table.add_row(*(str(r[c]) if r[c] is not None else "-" for c in r))
    # Only the region's display name may wrap: ids and figures are never shortened.
    print_table(table, keep=[c for c in rows[0] if c != "name"] if rows else [])
    totals = {k: sum(r[k] for r in rows) for k in ("services", "endpoints", "hosts")}
    console().print(
        f"{len(rows)} regions, {totals['services']} services, "
        f"{totals['endpoints']} endpoints, {totals['hosts']} hosts"
    )


@app.command("init")
def init(
    directory: Annotated[
        Path | None,
        typer.Argument(
            help="Where to write it (default: $XDG_CONFIG_HOME/opsconsole, searched by default)."
        ),
    ] = None,
    force: Annotated[
        bool, typer.Option("--force", help="Overwrite files that already exist.")
    ] = False,
) -> None:
    """Copy the example config shipped with opsconsole (inventory, settings, ...) to edit."""
    import shutil

    from opsconsole.errors import ExitCode, OpsError
    from opsconsole.paths import shipped_dir, user_config_dir

    source = shipped_dir("config")
    target = directory if directory is not None else user_config_dir()
    files = sorted(p for p in source.iterdir() if p.is_file() and p.suffix in (".yaml", ".example"))
    if not files:
        raise OpsError(f"no example config found in {source} (a broken installation?)")
    clashes = [target / p.name for p in files if (target / p.name).exists()]
    if clashes and not force:
        raise OpsError(
            f"{clashes[0]} already exists; edit it, or pass --force to overwrite "
            f"{len(clashes)} file(s)",
            exit_code=ExitCode.CONFLICT,
        )
    try:
        target.mkdir(parents=True, exist_ok=True)
        for p in files:
            shutil.copyfile(p, target / p.name)
            typer.echo(f"wrote {target / p.name}")
    except OSError as exc:
        raise OpsError(
            f"cannot write {exc.filename or target}: {exc.strerror or exc}; "
            "choose a directory you can write to (config init DIR)",
            exit_code=ExitCode.CONFIG,
        ) from None
    typer.echo(f"next: edit {target / 'inventory.yaml'}, then `opsconsole config check`")
