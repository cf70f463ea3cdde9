"""``ssh``: a command on inventory host(s) through :mod:`opsconsole.ssh` (paramiko, host
keys verified, parallel over a group with ``forks`` and ``max_fail_percentage``).

A string command is rendered with every templated value shell-quoted (the remote side
runs it under a shell); an argv list is quoted as a whole. The SSH layer kills the
remote command on timeout.
"""

from __future__ import annotations

import asyncio
import threading
from typing import Any

from opsconsole.redact import redact
from opsconsole.runbooks.schema import SshAction
from opsconsole.runbooks.steps import Outcome, StepContext
from opsconsole.templating import render as render_text

__all__ = ["execute", "render"]

DEFAULT_TIMEOUT = 3600.0


def render(spec: SshAction, tctx: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {
        "hosts": render_text(spec.hosts, tctx),
        "forks": spec.forks,
        "max_fail_percentage": spec.max_fail_percentage,
    }
    if isinstance(spec.command, list):
        out["argv"] = [render_text(a, tctx) for a in spec.command]
    else:
        out["command"] = render_text(spec.command, tctx, shell=True)
    if spec.user:
        out["user"] = render_text(spec.user, tctx)
    return out


async def execute(rendered: dict[str, Any], ctx: StepContext) -> Outcome:
    from opsconsole.ssh import remote_command, resolve_hosts, run_on_hosts_async

    config = ctx.env.config
    hosts = resolve_hosts(config, rendered["hosts"])
    if not hosts:
        return Outcome("failed", {}, "", f"no inventory host matches {rendered['hosts']!r}")
    if rendered.get("user"):
        hosts = {a: h.model_copy(update={"user": rendered["user"]}) for a, h in hosts.items()}
    command = remote_command(rendered["argv"]) if "argv" in rendered else rendered["command"]
    loop = asyncio.get_running_loop()
    stop = threading.Event()

    def on_output(alias: str, stream: str, text: str) -> None:
        for line in text.splitlines():
            loop.call_soon_threadsafe(ctx.emit, redact(line), stream, alias)

    known = config.resolve(config.inventory.known_hosts)
    try:
        fan = await run_on_hosts_async(
            hosts,
            command,
            forks=rendered["forks"],
            max_fail_percentage=rendered["max_fail_percentage"],
            timeout=ctx.timeout or DEFAULT_TIMEOUT,
            known_hosts=known,
            on_output=on_output,
            stop=stop,
        )
    except BaseException:
        stop.set()  # Ctrl-C: start no further host
        raise
    per_host: dict[str, Any] = {}
    lines: list[str] = []
    for alias, r in fan.results.items():
        per_host[alias] = {
            "status": r.status,
            "rc": r.exit_status,
            "stdout": r.stdout.rstrip("\n"),
            "stderr": r.stderr.rstrip("\n"),
            "error": r.error,
            "duration": round(r.duration, 3),
        }
        lines.append(
            f"[{alias}] {r.status}" + (f" ({r.error})" if r.error else f" rc={r.exit_status}")
        )
        if r.stdout:
            lines.extend(f"[{alias}] {ln}" for ln in r.stdout.rstrip("\n").splitlines())
    for alias in fan.skipped:
        per_host[alias] = {"status": "skipped"}
        lines.append(f"[{alias}] skipped (failure threshold reached)")
    failed = [a for a, h in per_host.items() if h["status"] != "ok"]
    value = {"hosts": per_host, "failed": failed, "ok": [a for a in per_host if a not in failed]}
    if len(per_host) == 1:
        only = next(iter(per_host.values()))
        value.update({k: only.get(k) for k in ("rc", "stdout", "stderr")})
    text = "\n".join(lines)
    percent = 100.0 * len(failed) / len(per_host)
    if not failed or (percent <= rendered["max_fail_percentage"] and not fan.aborted):
        return Outcome("succeeded", value, text)
    timed_out = [a for a, h in per_host.items() if h["status"] == "timed_out"]
    status = "timed_out" if timed_out and len(timed_out) == len(failed) else "failed"
    detail = "; ".join(
        f"{a}: {per_host[a].get('error') or per_host[a]['status']}" for a in failed[:5]
    )
    return Outcome(status, value, text, f"{len(failed)}/{len(per_host)} host(s) failed: {detail}")
