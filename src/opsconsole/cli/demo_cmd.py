"""``opsconsole demo``: the embedded demo deployment, and fault injection into it."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from opsconsole.cli.state import console, print_json, state

if TYPE_CHECKING:
    from opsconsole.demo import DemoClient, DemoInfo

app = typer.Typer(
    help="Start the simulated four-region deployment on 127.0.0.1, or inject faults into it.",
    invoke_without_command=True,
)

StateDir = Annotated[
    Path | None,
    typer.Option(
        "--state-dir",
        help="Where the demo keeps its config, database, ledgers and "
        "logs (default: $XDG_STATE_HOME/opsconsole/demo).",
    ),
]


def _ready_text(info: DemoInfo) -> str:
    import os

    override = os.environ.get("OPSCONSOLE_DB")
    db = f"{override} (from OPSCONSOLE_DB, not {info.db_path})" if override else info.db_path
    return (
        f"demo running: router {info.router_url}\n"
        f"  state dir: {info.state_dir}\n"
        f"  config:    {info.config_dir}\n"
        f"  database:  {db}\n"
        'From another terminal:  eval "$(opsconsole demo env)"   then  opsconsole status\n'
        "Inject a fault:         opsconsole demo fault sa-east-1 payments --down"
    )


@app.callback()
def demo(
    ctx: typer.Context,
    state_dir: StateDir = None,
    no_ui: Annotated[
        bool, typer.Option("--no-ui", help="Run headless until Ctrl-C/SIGTERM.")
    ] = False,
) -> None:
    """Start the demo deployment and show the live view (Ctrl-C stops everything)."""
    if ctx.invoked_subcommand is not None:
        ctx.obj = state_dir
        return
    from opsconsole.demo import DemoThread, default_state_dir, run_headless

    directory = (state_dir or default_state_dir()).resolve()
    if no_ui:

        def ready(info: DemoInfo) -> None:
            typer.echo(_ready_text(info))
            typer.echo("demo ready (Ctrl-C to stop)", err=True)

        run_headless(directory, ready)
        typer.echo("demo stopped", err=True)
        return

    runner = DemoThread(directory)
    info = runner.start()
    try:
        console().print(_ready_text(info))
        state.config_dir = info.config_dir
        _live_view()
    except KeyboardInterrupt:
        pass
    finally:
        runner.stop()
        typer.echo("demo stopped", err=True)


def _live_view() -> None:
    """The console (TUI) on the demo's config and database."""
    from opsconsole.cli.tui_cmd import open_console

    open_console()


def _client(state_dir: Path | None) -> DemoClient:
    from opsconsole.demo import DemoClient
    from opsconsole.demo.locate import locate_demo

    if state_dir is None and state.config_dir is not None:
        vars_ = state.config().inventory.vars
        if "router_url" in vars_ and "api_key_file" in vars_:
            return DemoClient(str(vars_["router_url"]), Path(str(vars_["api_key_file"])))
    running = locate_demo(state_dir)
    if state.config_dir is None and (running.config_dir / "inventory.yaml").is_file():
        state.config_dir = running.config_dir  # the audit record goes to the demo's database
    return DemoClient(running.router_url, running.api_key_file)


@app.command("env")
def env(ctx: typer.Context, state_dir: StateDir = None) -> None:
    """Print the line that points a shell at the running demo: eval "$(opsconsole demo env)"."""
    import shlex

    from opsconsole.demo.locate import locate_demo

    running = locate_demo(state_dir or ctx.obj)
    typer.echo(f"export OPSCONSOLE_CONFIG={shlex.quote(str(running.config_dir))}")
    typer.echo(
        f"# the demo of pid {running.pid} ({running.router_url}); "
        'use it as:  eval "$(opsconsole demo env)"'
    )


@app.command("info")
def info(
    ctx: typer.Context,
    state_dir: StateDir = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the details as JSON.")] = False,
) -> None:
    """Where the running demo keeps its config and database, and how to reach it."""
    from opsconsole.demo.locate import locate_demo

    running = locate_demo(state_dir or ctx.obj)
    data = {
        "pid": running.pid,
        "router_url": running.router_url,
        "state_dir": str(running.state_dir),
        "config_dir": str(running.config_dir),
        "database": str(running.database),
    }
    if as_json:
        print_json(data)
        return
    width = max(len(k) for k in data)
    for key, value in data.items():
        typer.echo(f"{key.replace('_', ' '):<{width}}  {value}")
    typer.echo('point this shell at it:  eval "$(opsconsole demo env)"')


@app.command("fault")
def fault(
    ctx: typer.Context,
    region: Annotated[str, typer.Argument(help="Region, e.g. sa-east-1.")],
    service: Annotated[str | None, typer.Argument(help="Service (default: every service).")] = None,
    down: Annotated[bool, typer.Option("--down", help="Answer 503 to every request.")] = False,
    slow: Annotated[
        float | None,
        typer.Option("--slow", metavar="MS", min=0, help="Add MS milliseconds."),
    ] = None,
    errors: Annotated[
        float | None,
        typer.Option("--errors", metavar="PCT", min=0, max=100, help="Fail PCT% of requests."),
    ] = None,
    flap: Annotated[bool, typer.Option("--flap", help="Fail every other request.")] = False,
    clear: Annotated[bool, typer.Option("--clear", help="Remove the fault(s).")] = False,
    state_dir: StateDir = None,
    as_json: Annotated[
        bool, typer.Option("--json", help="Print the demo's faults as JSON.")
    ] = False,
) -> None:
    """Inject a fault into a running demo: --down | --slow MS | --errors PCT | --flap | --clear."""
    chosen = [
        (m, v)
        for m, v, on in (
            ("down", None, down),
            ("slow", slow, slow is not None),
            ("errors", errors, errors is not None),
            ("flap", None, flap),
            ("clear", None, clear),
        )
        if on
    ]
    if len(chosen) != 1:
        raise typer.BadParameter(
            "give exactly one of --down, --slow MS, --errors PCT, --flap, --clear"
        )
    mode, value = chosen[0]
    client = _client(state_dir or ctx.obj)
    target = f"{region}/{service or '*'}"
    # Fail closed: the audit record is written before the fault is injected.
    state.record("demo.fault", target, {"mode": mode, "value": value, "router": client.router_url})
    result = client.fault(region, service, mode, value)
    if as_json:
        print_json(result)
        return
    what = f"{mode} {value:g}{'ms' if mode == 'slow' else '%'}" if value is not None else mode
    typer.echo(f"{target}: {what}" if mode != "clear" else f"{target}: cleared")
    active = result.get("faults", [])
    typer.echo(
        "active faults: "
        + (", ".join(f"{f['region']}/{f['service']} {f['mode']}" for f in active) or "none")
    )
