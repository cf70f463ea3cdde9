"""``opsconsole ssh``: pin a host's key, run a command on inventory hosts."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from opsconsole.cli.state import console, err_console, print_json, state

app = typer.Typer(help="SSH to inventory hosts: pin host keys, run commands.", no_args_is_help=True)


@app.command("trust")
def trust(
    host: Annotated[str, typer.Argument(help="Inventory host alias.")],
    yes: Annotated[bool, typer.Option("--yes", "-y", help="Pin without asking.")] = False,
    hashed: Annotated[
        bool, typer.Option("--hash", help="Write a hashed entry (|1|...), as HashKnownHosts.")
    ] = False,
    replace: Annotated[
        bool,
        typer.Option(
            "--replace", help="Replace a different key pinned for this host (rebuilt host)."
        ),
    ] = False,
    known_hosts: Annotated[
        Path | None,
        typer.Option(
            "--known-hosts",
            help="File to pin into (default: the host's, else the inventory's, else "
            "~/.ssh/known_hosts).",
        ),
    ] = None,
    timeout: Annotated[float, typer.Option(help="Connect timeout, seconds.", min=0.1)] = 10.0,
) -> None:
    """Show HOST's SSH key fingerprint and pin it in known_hosts (audited as ssh.trust)."""
    from opsconsole.access import authorize
    from opsconsole.ssh import (
        HostKeyChanged,
        effective_known_hosts,
        fetch_host_key,
        known_hosts_name,
        resolve_host,
        trust_host,
    )
    from opsconsole.ssh.hostkeys import key_info, load_host_keys

    cfg = state.config()
    authorize(state.audit(), "ssh.trust", target=host)
    target = resolve_host(cfg, host)
    path = (known_hosts or effective_known_hosts(target)).expanduser()
    info = fetch_host_key(target, timeout=timeout)
    out = console()
    out.print(
        f"{host} ({target.address}:{target.port}) presents {info.keytype} key {info.fingerprint}"
    )
    pinned = load_host_keys(path).lookup(known_hosts_name(target.address, target.port))
    if pinned is not None and info.keytype in pinned:
        current = key_info(pinned[info.keytype])
        if current.key == info.key:
            out.print(f"already trusted in {path}; nothing to do")
            return
        if not replace:
            raise HostKeyChanged(
                alias=host,
                address=target.address,
                port=target.port,
                keytype=info.keytype,
                fingerprint=info.fingerprint,
                expected_fingerprint=current.fingerprint,
                known_hosts=path,
            )
        out.print(f"[bold red]replacing the pinned key {current.fingerprint}[/]")
    if not yes and not typer.confirm(
        f"Compare it with the host's real fingerprint (ssh-keygen -lf on the host). "
        f"Pin it in {path}?",
        default=False,
    ):
        err_console().print("not trusted; nothing written")
        raise typer.Exit(1)
    details = {
        "address": target.address,
        "port": target.port,
        "keytype": info.keytype,
        "fingerprint": info.fingerprint,
        "known_hosts": str(path),
        "replace": replace,
    }
    state.record("ssh.trust", host, details)  # before the write: fail closed
    try:
        trust_host(host, target, path, key=info, hashed=hashed, replace=replace)
    except (OSError, HostKeyChanged) as exc:
        state.record("ssh.trust", host, {**details, "error": str(exc)}, outcome="failed")
        if isinstance(exc, HostKeyChanged):
            raise
        from opsconsole.errors import OpsError

        raise OpsError(f"cannot write {path}: {exc}") from None
    out.print(f"pinned {info.keytype} {info.fingerprint} for {host} in {path}")


@app.command("run")
def run(
    target: Annotated[str, typer.Argument(help="Host alias, group or region.")],
    command: Annotated[
        list[str],
        typer.Argument(
            help="Command (after --); several words are joined with spaces, as ssh does."
        ),
    ],
    forks: Annotated[int, typer.Option(help="Hosts at a time.", min=1)] = 5,
    timeout: Annotated[float, typer.Option(help="Per host, seconds.", min=0.1)] = 60.0,
    max_fail_percentage: Annotated[
        float | None,
        typer.Option(help="Start no more hosts once more than this percentage failed."),
    ] = None,
    as_json: Annotated[
        bool, typer.Option("--json", help="Print per-host results as JSON.")
    ] = False,
) -> None:
    """Run a command on inventory hosts in parallel (audited as ssh.run); exit 1 if any fails."""
    from opsconsole.errors import NotFoundError
    from opsconsole.ssh import resolve_hosts, run_on_hosts

    cfg = state.config()
    hosts = resolve_hosts(cfg, target)
    if not hosts:
        raise NotFoundError(f"no host, group or region {target!r} with hosts in the inventory")
    line = " ".join(command)
    state.record("ssh.run", target, {"command": line, "hosts": list(hosts), "forks": forks})
    out = console()

    def show(res: object) -> None:
        from opsconsole.ssh import CommandResult

        assert isinstance(res, CommandResult)
        if as_json:
            return
        status = res.status if res.status != "failed" else f"failed (exit {res.exit_status})"
        out.print(f"[bold]{res.alias}[/] {status} in {res.duration:.2f}s", markup=True)
        for text in (res.stdout, res.stderr):
            for ln in text.splitlines():
                out.print(f"  {res.alias} | {ln}", markup=False, highlight=False)
        if res.error and not res.timed_out:
            out.print(f"  {res.alias} ! {res.error}", markup=False)

    result = run_on_hosts(
        hosts,
        line,
        forks=forks,
        timeout=timeout,
        max_fail_percentage=max_fail_percentage,
        on_result=show,
    )
    state.record(
        "ssh.run.finished",
        target,
        {
            "command": line,
            "failed": result.failed,
            "skipped": result.skipped,
            "status": {a: r.status for a, r in result.results.items()},
        },
        outcome="ok" if result.ok else "failed",
    )
    if as_json:
        print_json(
            {
                "failed": result.failed,
                "aborted": result.aborted,
                "skipped": result.skipped,
                "results": {
                    a: {
                        "status": r.status,
                        "exit_status": r.exit_status,
                        "stdout": r.stdout,
                        "stderr": r.stderr,
                        "error": r.error,
                        "duration": round(r.duration, 3),
                        "truncated": r.truncated,
                    }
                    for a, r in result.results.items()
                },
            }
        )
    elif result.skipped:
        out.print(f"aborted: not started on {', '.join(result.skipped)}", markup=False)
    if not result.ok:
        raise typer.Exit(1)
