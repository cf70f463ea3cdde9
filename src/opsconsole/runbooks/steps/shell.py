"""``shell``: a local command in its own process group.

An argv list runs without a shell. A string runs under ``/bin/sh -c`` after rendering
with every templated value shell-quoted. On timeout or cancellation the whole process
group is killed (SIGTERM, then SIGKILL), so nothing the command started lives on.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
from typing import Any

from opsconsole.redact import redact
from opsconsole.runbooks.schema import ShellAction
from opsconsole.runbooks.steps import Outcome, StepContext
from opsconsole.templating import render as render_text

__all__ = ["execute", "render"]

KILL_GRACE_SECONDS = 2.0


def render(spec: ShellAction, tctx: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    if isinstance(spec.command, list):
        out["argv"] = [render_text(a, tctx) for a in spec.command]
    else:
        out["command"] = render_text(spec.command, tctx, shell=True)
    if spec.cwd:
        out["cwd"] = render_text(spec.cwd, tctx)
    if spec.env:
        out["env"] = {k: render_text(v, tctx) for k, v in spec.env.items()}
    if spec.stdin is not None:
        out["stdin"] = render_text(spec.stdin, tctx)
    out["ok_codes"] = list(spec.ok_codes)
    return out


def _kill_group(proc: asyncio.subprocess.Process, sig: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(proc.pid, sig)


async def _stop(proc: asyncio.subprocess.Process) -> None:
    """Kill the whole group: the command and everything it started."""
    _kill_group(proc, signal.SIGTERM)
    with contextlib.suppress(TimeoutError, asyncio.CancelledError):
        await asyncio.wait_for(asyncio.shield(proc.wait()), KILL_GRACE_SECONDS)
    # Children may outlive the leader (backgrounded); SIGKILL the group regardless.
    _kill_group(proc, signal.SIGKILL)
    with contextlib.suppress(TimeoutError, asyncio.CancelledError):
        await asyncio.wait_for(asyncio.shield(proc.wait()), KILL_GRACE_SECONDS)


async def _pump(stream: asyncio.StreamReader, name: str, sink: list[str], ctx: StepContext) -> None:
    while True:
        line = await stream.readline()
        if not line:
            return
        text = line.decode("utf-8", errors="replace")
        sink.append(text)
        ctx.emit(redact(text.rstrip("\n")), name, None)


async def execute(rendered: dict[str, Any], ctx: StepContext) -> Outcome:
    argv = rendered["argv"] if "argv" in rendered else ["/bin/sh", "-c", rendered["command"]]
    env = dict(os.environ)
    env.update(rendered.get("env", {}))
    stdin_data = rendered.get("stdin")
    try:
        proc = await asyncio.create_subprocess_exec(
            *argv,
            stdin=asyncio.subprocess.PIPE if stdin_data is not None else asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
            cwd=rendered.get("cwd"),
            env=env,
            start_new_session=True,  # its own process group, so a timeout can kill it all
        )
    except OSError as exc:
        return Outcome("failed", {"rc": None}, "", f"cannot start {argv[0]!r}: {exc.strerror}")
    out: list[str] = []
    err: list[str] = []
    try:
        if stdin_data is not None and proc.stdin is not None:
            proc.stdin.write(stdin_data.encode())
            with contextlib.suppress(ConnectionError):
                await proc.stdin.drain()
            proc.stdin.close()
        assert proc.stdout is not None and proc.stderr is not None
        await asyncio.gather(
            _pump(proc.stdout, "stdout", out, ctx), _pump(proc.stderr, "stderr", err, ctx)
        )
        rc = await proc.wait()
    except BaseException:
        # Timeout or Ctrl-C (a cancellation): nothing the command started may live on.
        await _stop(proc)
        raise
    stdout, stderr = "".join(out), "".join(err)
    value: dict[str, Any] = {"rc": rc, "stdout": stdout.rstrip("\n"), "stderr": stderr.rstrip("\n")}
    with contextlib.suppress(ValueError):
        value["json"] = json.loads(stdout)
    text = stdout + (("\n[stderr]\n" + stderr) if stderr else "")
    if rc in rendered.get("ok_codes", [0]):
        return Outcome("succeeded", value, text)
    return Outcome("failed", value, text, f"exit status {rc}")
