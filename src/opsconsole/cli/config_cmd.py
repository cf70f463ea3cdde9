"""``opsconsole config``: validate and summarise the inventory."""

from __future__ import annotations

from typing import Annotated

import typer

from opsconsole.cli.state import console, print_json, state

app = typer.Typer(help="Inspect and validate the configuration.", no_args_is_help=True)


@app.command("check")
def check(
    as_json: Annotated[bool, typer.Option("--json", help="Print the summary as JSON.")] = False,
) -> None:
    """Validate inventory.yaml and settings.yaml; summarise regions, services, endpoints, hosts."""
    cfg = state.config()
    state.audit_key()  # an unreadable or empty audit_key_file is a configuration error too
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

    table = Table(title=f"{cfg.directory}: OK", title_justify="left")
    for col in ("region", "name", "environment", "standby", "services", "endpoints", "hosts"):
        table.add_column(
            col, justify="right" if col in ("services", "endpoints", "hosts") else "left"
        )
    for r in rows:
        table.add_row(*(str(r[c]) if r[c] is not None else "-" for c in r))
    console().print(table)
    totals = {k: sum(r[k] for r in rows) for k in ("services", "endpoints", "hosts")}
    console().print(
        f"{len(rows)} regions, {totals['services']} services, "
        f"{totals['endpoints']} endpoints, {totals['hosts']} hosts"
    )
