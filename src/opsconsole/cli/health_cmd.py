"""``opsconsole status``, ``watch`` and ``host``: live health from the terminal.

Exit codes of ``status``: 0 all ok, 1 something degraded or flapping, 2 something down, 3 a
configuration error (including an unknown ``--region``/``--service``).
"""

from __future__ import annotations

import contextlib
from typing import TYPE_CHECKING, Annotated, Any

import typer

from opsconsole.cli.state import console, print_json, state

if TYPE_CHECKING:
    from rich.table import Table

    from opsconsole.config import Config
    from opsconsole.health.model import Snapshot

__all__ = ["register", "render_table", "run_watch", "sparkline"]

Region = Annotated[str | None, typer.Option("--region", "-r", help="Only this region.")]
Service = Annotated[str | None, typer.Option("--service", "-s", help="Only this service.")]

STYLE = {
    "ok": "green",
    "degraded": "yellow",
    "flapping": "bold magenta",
    "down": "bold red",
    "unknown": "dim",
}
BARS = "▁▂▃▄▅▆▇█"


def sparkline(values: tuple[float | None, ...] | list[float | None], width: int = 20) -> str:
    """Latency history as bars (scaled to the largest value); ``×`` marks a failed probe."""
    vals = list(values)[-width:]
    known = [v for v in vals if v is not None]
    if not known:
        return "×" * len(vals)
    top = max(known) or 1.0
    return "".join(
        "×" if v is None else BARS[min(len(BARS) - 1, int(v / top * (len(BARS) - 1)))] for v in vals
    )


def _ms(value: float | None) -> str:
    return "-" if value is None else f"{value:.0f}ms" if value >= 10 else f"{value:.1f}ms"


def _since(snapshot_at: Any, since: Any) -> str:
    if since is None:
        return "-"
    secs = int((snapshot_at - since).total_seconds())
    if secs < 120:
        return f"{secs}s"
    if secs < 7200:
        return f"{secs // 60}m"
    return f"{secs // 3600}h{(secs % 3600) // 60:02d}m"


def render_table(snap: Snapshot, *, history: bool = False) -> Table:
    """Region x service: state (symbol and word), p50/p95, availability, since, last error."""
    from rich.table import Table
    from rich.text import Text

    from opsconsole.health.model import STATE_SYMBOL

    table = Table(box=None, pad_edge=False, header_style="bold")
    for col in ("region", "service", "state", "p50", "p95", "avail", "since"):
        table.add_column(
            col,
            justify="right" if col in ("p50", "p95", "avail", "since") else "left",
            no_wrap=True,
        )
    if history:
        table.add_column("history", no_wrap=True)
    table.add_column("last error", overflow="fold", max_width=60)
    for rid, reg in snap.regions.items():
        first = True
        for sid, svc in reg.services.items():
            label = (
                Text(f"{rid} {STATE_SYMBOL[reg.state]}", style=STYLE[reg.state])
                if first
                else Text("")
            )
            first = False
            word = Text(f"{STATE_SYMBOL[svc.state]} {svc.state}", style=STYLE[svc.state])
            row: list[Any] = [
                label,
                sid + ("" if svc.critical else " (nc)"),
                word,
                _ms(svc.p50),
                _ms(svc.p95),
                "-" if svc.availability is None else f"{svc.availability:.1f}%",
                _since(snap.at, svc.since),
            ]
            if history:
                row.append(sparkline(svc.history))
            row.append(svc.last_error or "" if svc.state != "ok" else "")
            table.add_row(*row)
    return table


def _config_for(region: str | None, service: str | None) -> Config:
    from opsconsole.errors import ExitCode, OpsError

    cfg = state.config()
    regions = cfg.inventory.regions
    if region is not None and region not in regions:
        raise OpsError(
            f"no region {region!r} in the inventory (known: {', '.join(regions)})",
            exit_code=ExitCode.CONFIG,
        )
    if service is not None and not any(
        service in r.services for rid, r in regions.items() if region in (None, rid)
    ):
        raise OpsError(f"no service {service!r} in the inventory", exit_code=ExitCode.CONFIG)
    return cfg


def status(
    region: Region = None,
    service: Service = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the snapshot as JSON.")] = False,
) -> None:
    """One health sweep: exit 0 all ok, 1 degraded, 2 down, 3 configuration error."""
    import asyncio

    from opsconsole.health import check

    cfg = _config_for(region, service)
    snap = asyncio.run(
        check(cfg, region=region, service=service, db=state.db(), audit=state.audit())
    )
    if as_json:
        print_json(snap.to_dict())
    else:
        out = console()
        out.print(render_table(snap))
        counts = {
            s: sum(1 for x in snap.services() if x.state == s)
            for s in ("ok", "degraded", "flapping", "down", "unknown")
        }
        out.print(
            ", ".join(f"{n} {s}" for s, n in counts.items() if n)
            + f" (sweep {snap.sweep_seconds or 0:.2f}s)"
        )
    raise typer.Exit(snap.exit_code)


def run_watch(region: str | None, service: str | None, *, sweeps: int | None = None) -> None:
    """Sweep every interval and redraw the table (Rich Live) until Ctrl-C."""
    import asyncio

    from rich.console import Group
    from rich.live import Live
    from rich.text import Text

    from opsconsole.health.monitor import Monitor

    cfg = _config_for(region, service)
    db, audit = state.db(), state.audit()

    async def main() -> None:
        async with Monitor(cfg, db=db, audit=audit, region=region, service=service) as mon:
            await mon.restore()
            with Live(Text("probing..."), console=console(), auto_refresh=False) as live:
                done = 0
                async for snap in mon.sweeps():
                    local = snap.at.astimezone().strftime("%H:%M:%S")
                    head = Text(
                        f"{cfg.directory}  {local}  sweep {snap.sweep_seconds or 0:.2f}s  "
                        f"every {cfg.settings.probe.interval_seconds:g}s  (Ctrl-C to stop)",
                        style="dim",
                    )
                    live.update(Group(head, render_table(snap, history=True)), refresh=True)
                    done += 1
                    if sweeps is not None and done >= sweeps:
                        break

    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(main())


def watch(
    region: Region = None,
    service: Service = None,
    sweeps: Annotated[int | None, typer.Option(help="Stop after this many sweeps.", min=1)] = None,
) -> None:
    """The status table, refreshing every probe interval, with latency sparklines (Ctrl-C stops)."""
    run_watch(region, service, sweeps=sweeps)


def host(
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
    interval: Annotated[
        float, typer.Option(help="Seconds to sample CPU and network.", min=0.1)
    ] = 0.5,
) -> None:
    """Local host metrics (CPU, load, memory, disks, network); exit 1 past a threshold."""
    from opsconsole.config import HostThresholds
    from opsconsole.health.host import host_metrics

    cfg = state.optional_config()
    m = host_metrics(cfg.settings.host if cfg else HostThresholds(), interval=interval)
    if as_json:
        print_json(m.to_dict())
    else:
        from rich.table import Table

        t = Table(box=None, pad_edge=False, show_header=False)
        t.add_column(style="bold")
        t.add_column()
        t.add_row("host", f"{m.hostname} ({m.cpu_count} CPUs)")
        t.add_row("cpu", f"{m.cpu_percent:.0f}%")
        t.add_row("load", f"{m.load[0]} {m.load[1]} {m.load[2]} ({m.load_per_cpu} per CPU)")
        t.add_row("memory", f"{m.memory_percent:.0f}%")
        for d in m.disks:
            t.add_row(f"disk {d.mount}", f"{d.percent:.0f}% of {d.total_bytes / 1e9:.1f} GB")
        t.add_row(
            "network",
            f"out {m.net_sent_bytes_per_s / 1024:.1f} KiB/s, "
            f"in {m.net_recv_bytes_per_s / 1024:.1f} KiB/s",
        )
        t.add_row("state", ("✔ ok" if not m.problems else "▲ degraded: " + "; ".join(m.problems)))
        console().print(t)
    raise typer.Exit(1 if m.problems else 0)


def register(app: typer.Typer) -> None:
    """Add the health commands to the root app (they are top-level, not a group)."""
    app.command("status")(status)
    app.command("watch")(watch)
    app.command("host")(host)
