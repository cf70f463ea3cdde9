"""``shell``: a local command, owned by the engine from start to end.

An argv list runs without a shell. A string runs under ``/bin/sh -c`` after rendering
with every templated value shell-quoted. The command runs in its own session, marked
with the step's token (see :mod:`opsconsole.runbooks.procs`); on timeout, cancellation
(Ctrl-C, SIGTERM, SIGHUP) or normal end, every process it started - including ``setsid``
and double-forked descendants - is ended before the step is recorded. A cancellation
that arrives while the command is being started, or while its leftovers are being
ended, is held until that finishes and then honoured - never dropped.

Output is read in chunks (lines of any length); stdin is written concurrently with the
reading, so a command that answers while it reads never deadlocks. What is kept in
memory per stream is bounded (:data:`KEEP_BYTES`), with a marker saying what was cut.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
from typing import Any

from opsconsole.redact import redact, secrets
from opsconsole.runbooks import procs
from opsconsole.runbooks.schema import ShellAction
from opsconsole.runbooks.steps import Outcome, StepContext
from opsconsole.templating import has_unknown, render_shell
from opsconsole.templating import render as render_text

__all__ = ["KEEP_BYTES", "execute", "render"]

KILL_GRACE_SECONDS = 2.0
# After the command exited, how long its pipes may stay open before whatever still
# holds them is ended. (Descendants carrying the token are ended at once; this only
# bounds the wait on what escaped that search.)
EOF_GRACE_SECONDS = 0.5
KEEP_BYTES = 4 * 1024 * 1024  # per stream, in memory; the stored output is cut further
_CHUNK = 64 * 1024
_LINE_EMIT_LIMIT = 16 * 1024  # a longer line is shown cut (stored whole up to KEEP_BYTES)


def render(spec: ShellAction, tctx: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    if isinstance(spec.command, list):
        out["argv"] = [render_text(a, tctx) for a in spec.command]
        for i, arg in enumerate(out["argv"]):
            if secrets.contains(arg) and not has_unknown(arg):
                raise ValueError(
                    f"argument {i} holds a secret: process arguments are visible to every "
                    "user (ps, /proc/*/cmdline); pass it through env: (e.g. env: {TOKEN: "
                    "'{{ token }}'}) or stdin: instead"
                )
    else:
        out["command"], hidden = render_shell(spec.command, tctx)
        if hidden:
            out["hidden_env"] = hidden
    if spec.cwd:
        out["cwd"] = render_text(spec.cwd, tctx)
    if spec.env:
        out["env"] = {k: render_text(v, tctx) for k, v in spec.env.items()}
    if spec.stdin is not None:
        out["stdin"] = render_text(spec.stdin, tctx)
    out["ok_codes"] = list(spec.ok_codes)
    if spec.save_output:
        out["save_output"] = render_text(spec.save_output, tctx)
    return out


class _Collected:
    """One stream, bounded in memory: its head and its tail."""

    def __init__(self, name: str, copy: Any = None) -> None:
        self.name = name
        self.head = bytearray()
        self.tail = bytearray()
        self.total = 0
        self.copy = copy  # a binary file receiving everything (save_output)

    def feed(self, data: bytes) -> None:
        self.total += len(data)
        if self.copy is not None:
            self.copy.write(data)
        if len(self.head) < KEEP_BYTES // 2:
            room = KEEP_BYTES // 2 - len(self.head)
            self.head += data[:room]
            data = data[room:]
        if data:
            self.tail += data
            if len(self.tail) > KEEP_BYTES // 2:
                del self.tail[: len(self.tail) - KEEP_BYTES // 2]

    def text(self) -> str:
        body = bytes(self.head)
        if self.total > len(self.head) + len(self.tail):
            cut = self.total - len(self.head) - len(self.tail)
            mb = KEEP_BYTES / (1024 * 1024)
            saved = getattr(self.copy, "path", None)
            where = f"; the whole output is in {saved}" if saved else ""
            body += f"\n[... {cut} bytes truncated at {mb:g} MB{where} ...]\n".encode()
        body += bytes(self.tail)
        return body.decode("utf-8", errors="replace")


async def _pump(stream: asyncio.StreamReader, sink: _Collected, ctx: StepContext) -> None:
    pending = bytearray()
    while True:
        chunk = await stream.read(_CHUNK)
        if not chunk:
            break
        sink.feed(chunk)
        pending += chunk
        while True:
            nl = pending.find(b"\n")
            if nl < 0:
                break
            _show(bytes(pending[:nl]), sink.name, ctx)
            del pending[: nl + 1]
        if len(pending) > _LINE_EMIT_LIMIT:
            # A very long line: show its start once, drop the rest from the live view.
            _show(bytes(pending[:_LINE_EMIT_LIMIT]) + b" [...]", sink.name, ctx)
            pending.clear()
    if pending:
        _show(bytes(pending), sink.name, ctx)


def _show(line: bytes, name: str, ctx: StepContext) -> None:
    text = line.decode("utf-8", errors="replace")
    if len(text) > _LINE_EMIT_LIMIT:
        text = text[:_LINE_EMIT_LIMIT] + " [...]"
    ctx.emit(redact(text), name, None)


async def _feed_stdin(stdin: asyncio.StreamWriter, data: bytes) -> None:
    with contextlib.suppress(ConnectionError, BrokenPipeError):
        for i in range(0, len(data), _CHUNK):
            stdin.write(data[i : i + _CHUNK])
            await stdin.drain()
    with contextlib.suppress(ConnectionError, BrokenPipeError, OSError):
        stdin.close()
        # Collects how the pipe ended (else asyncio logs "Future exception was never
        # retrieved: BrokenPipeError" for a command that did not read all its stdin).
        await stdin.wait_closed()


async def _finish_first(fut: asyncio.Future[Any]) -> asyncio.CancelledError | None:
    """Wait for ``fut`` whatever cancellations arrive meanwhile (a critical section);
    returns the first cancellation so that the caller honours it afterwards - never
    drop it (Ctrl-C, SIGTERM and SIGHUP are cancellations of the engine's task)."""
    pending: asyncio.CancelledError | None = None
    while not fut.done():
        try:
            await asyncio.shield(fut)
        except asyncio.CancelledError as exc:
            if fut.cancelled():
                raise
            pending = pending or exc
        except Exception:
            break  # ``fut``'s own error: the caller reads it from ``fut``
    return pending


async def _stop(
    root: tuple[int, int | None] | None, token: str | None, grace: float, **how: Any
) -> asyncio.CancelledError | None:
    """End the command (``root``: pid and start time, None once it was reaped) and
    everything it started (``how``: more of :func:`procs.kill_all`'s searches); not
    interruptible half-way. Returns a cancellation that arrived meanwhile (the caller
    re-raises it)."""
    roots = [root] if root is not None else []
    fut = asyncio.ensure_future(asyncio.to_thread(procs.kill_all, roots, token, grace=grace, **how))
    pending = await _finish_first(fut)
    with contextlib.suppress(Exception):
        fut.result()
    return pending


async def _spawn(
    argv: list[str], **kwargs: Any
) -> tuple[asyncio.subprocess.Process, asyncio.CancelledError | None]:
    """Start the command; a cancellation during the start is returned, to be honoured
    once the command is owned. (asyncio's own clean-up of a cancelled
    ``create_subprocess_exec`` kills the command alone, then waits until every holder of
    its pipes closes them: a child the command already forked - ``sleep 60`` - kept
    Ctrl-C waiting until it ended by itself.)"""
    fut = asyncio.ensure_future(asyncio.create_subprocess_exec(*argv, **kwargs))
    pending = await _finish_first(fut)
    if pending is not None and fut.exception() is not None:
        raise pending
    return fut.result(), pending


def _pipes(proc: asyncio.subprocess.Process) -> dict[int, Any]:
    """The command's pipe transports whose pipe is still open, by child fd (0, 1, 2).
    (A closing stdin transport still holds its pipe while unwritten data is buffered.)"""
    transport = proc._transport  # type: ignore[attr-defined]
    out: dict[int, Any] = {}
    for fd in (0, 1, 2):
        pipe = transport.get_pipe_transport(fd)
        file = pipe.get_extra_info("pipe") if pipe is not None else None
        if file is not None and not file.closed:
            out[fd] = pipe
    return out


def _pipe_inodes(proc: asyncio.subprocess.Process) -> set[int]:
    """Inodes of the command's open pipes: whoever else holds one is the step's."""
    out: set[int] = set()
    for pipe in _pipes(proc).values():
        with contextlib.suppress(OSError, ValueError, AttributeError):
            out.add(os.fstat(pipe.get_extra_info("pipe").fileno()).st_ino)
    return out


def _close_pipes(proc: asyncio.subprocess.Process) -> None:
    """Close the pipes still open (a holder that could not be ended keeps them so),
    keeping what the kernel already holds for us (bounded); the readers see their end."""
    readers = {1: proc.stdout, 2: proc.stderr}
    for fd, pipe in _pipes(proc).items():
        reader = readers.get(fd)
        if reader is None:
            pipe.abort()  # stdin: drop what was not written
            continue
        with contextlib.suppress(OSError, ValueError):
            fileno = pipe.get_extra_info("pipe").fileno()
            taken = 0
            while taken < KEEP_BYTES and not pipe.is_closing():
                data = os.read(fileno, _CHUNK)  # the transport made it non-blocking
                if not data:
                    break
                reader.feed_data(data)
                taken += len(data)
        pipe.close()


async def _released(
    proc: asyncio.subprocess.Process, token: str | None, tasks: list[asyncio.Future[Any]]
) -> asyncio.CancelledError | None:
    """After the command exited: wait for end-of-file on its pipes, bounded. Whatever
    still holds them once :data:`EOF_GRACE_SECONDS` is over - a descendant that escaped
    the token search, or dropped its token (``env -i``) - is ended, with anything on the
    host still carrying the token; pipes still open after that are closed. Output
    already written is kept. Returns a cancellation that arrived meanwhile."""
    if not tasks:
        return None
    _, pending = await asyncio.wait(tasks, timeout=EOF_GRACE_SECONDS)
    if not pending:
        return None
    late = await _stop(None, token, 0.0, scan=token is not None, holding=_pipe_inodes(proc))
    _, pending = await asyncio.wait(tasks, timeout=EOF_GRACE_SECONDS)
    if pending:
        _close_pipes(proc)
    return late


async def _end(
    proc: asyncio.subprocess.Process,
    root: tuple[int, int | None] | None,
    token: str | None,
    tasks: list[asyncio.Future[Any]],
) -> asyncio.CancelledError | None:
    """End the command and everything it started or that holds its pipes, stop reading
    them and collect it; returns a cancellation that arrived meanwhile."""
    late = await _stop(root, token, KILL_GRACE_SECONDS, holding=_pipe_inodes(proc))
    _close_pipes(proc)
    for t in tasks:
        t.cancel()
    for step in (
        lambda: asyncio.gather(*tasks, return_exceptions=True),
        lambda: asyncio.wait_for(asyncio.shield(proc.wait()), KILL_GRACE_SECONDS),
    ):
        try:
            await step()
        except asyncio.CancelledError as exc:
            late = late or exc
        except Exception:
            pass  # best effort: the processes are gone already
    return late


def finally_close(copy: Any) -> None:
    if copy is not None:
        with contextlib.suppress(OSError):
            copy.close()


async def _exited(proc: asyncio.subprocess.Process) -> None:
    """Until the command itself exits. (``Process.wait`` also waits for every holder of
    its pipes to close them, which a daemonised descendant may never do.)"""
    if proc.returncode is not None:
        return
    loop = asyncio.get_running_loop()
    done: asyncio.Future[None] = loop.create_future()
    protocol = proc._protocol  # type: ignore[attr-defined]
    original = protocol.process_exited

    def exited() -> None:
        original()
        if not done.done():
            done.set_result(None)

    protocol.process_exited = exited
    if proc.returncode is None:
        await done


async def execute(rendered: dict[str, Any], ctx: StepContext) -> Outcome:
    argv = rendered["argv"] if "argv" in rendered else ["/bin/sh", "-c", rendered["command"]]
    env = dict(os.environ)
    env.update(rendered.get("env", {}))
    env.update(rendered.get("hidden_env", {}))
    token = ctx.proc_token
    if token is not None:
        procs.ensure_guard()
        env.update(procs.step_environment(token))
    stdin_data = rendered.get("stdin")
    try:
        proc, interrupted = await _spawn(
            argv,
            stdin=asyncio.subprocess.PIPE if stdin_data is not None else asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
            cwd=rendered.get("cwd"),
            env=env,
            start_new_session=True,  # terminal signals reach the engine, which decides
        )
    except OSError as exc:
        return Outcome("failed", {"rc": None}, "", f"cannot start {argv[0]!r}: {exc.strerror}")
    # Its identity, taken while it cannot have been reaped yet: a pid alone could name
    # another process later (pids are reused).
    root = (proc.pid, procs.proc_start(proc.pid))

    def unreaped() -> tuple[int, int | None] | None:
        return root if proc.returncode is None else None

    if interrupted is not None:
        await _end(proc, unreaped(), token, [])
        raise interrupted
    copy = None
    if rendered.get("save_output"):
        try:
            fd = os.open(rendered["save_output"], os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            copy = os.fdopen(fd, "wb")
            copy.path = rendered["save_output"]  # type: ignore[attr-defined]
        except OSError as exc:
            if (late := await _stop(unreaped(), token, 0.0)) is not None:
                raise late from exc
            return Outcome("failed", {"rc": None}, "", f"save_output: {exc.strerror}")
    out = _Collected("stdout", copy)
    err = _Collected("stderr", copy)
    tasks: list[asyncio.Future[Any]] = []
    try:
        assert proc.stdout is not None and proc.stderr is not None
        tasks = [
            asyncio.ensure_future(_pump(proc.stdout, out, ctx)),
            asyncio.ensure_future(_pump(proc.stderr, err, ctx)),
        ]
        if stdin_data is not None and proc.stdin is not None:
            tasks.append(asyncio.ensure_future(_feed_stdin(proc.stdin, stdin_data.encode())))
        await _exited(proc)
        # Nothing the command started outlives it, and nothing still holding its pipes
        # keeps the step waiting. (The command itself is reaped by now: its token and
        # its pipes find what it left.)
        interrupted = await _stop(None, token, 0.0)
        if interrupted is None:
            interrupted = await _released(proc, token, tasks)
        if interrupted is not None:
            raise interrupted
        await asyncio.gather(*tasks)
        rc = await proc.wait()
    except BaseException as exc:
        # Timeout, Ctrl-C, SIGTERM, SIGHUP (a cancellation): nothing the command started
        # may live on, and it must be gone before the step is recorded.
        late = await _end(proc, unreaped(), token, tasks)
        finally_close(copy)
        if late is not None and not isinstance(exc, asyncio.CancelledError):
            raise late from exc  # an interrupt during the clean-up of an error wins
        raise
    finally_close(copy)
    stdout, stderr = out.text(), err.text()
    value: dict[str, Any] = {"rc": rc, "stdout": stdout.rstrip("\n"), "stderr": stderr.rstrip("\n")}
    if out.total <= KEEP_BYTES:
        with contextlib.suppress(ValueError):
            value["json"] = json.loads(stdout)
    text = stdout + (("\n[stderr]\n" + stderr) if stderr else "")
    if rc in rendered.get("ok_codes", [0]):
        return Outcome("succeeded", value, text)
    return Outcome("failed", value, text, f"exit status {rc}")
