"""Run one command on one host over SSH, safely: verified host keys, a real timeout.

paramiko is imported only when a connection is made, so importing this module is cheap.
"""

from __future__ import annotations

import codecs
import contextlib
import select
import shlex
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Literal

from opsconsole.errors import OpsError
from opsconsole.ssh.connection import connect
from opsconsole.ssh.errors import SshConnectError, SshError
from opsconsole.ssh.threads import in_thread

if TYPE_CHECKING:
    import paramiko

    from opsconsole.config import Host

__all__ = [
    "CommandResult",
    "OutputCallback",
    "remote_command",
    "run_command",
    "run_command_async",
    "run_on_client",
]

OutputCallback = Callable[[str, str], None]
"""``(stream, text)`` with stream ``"stdout"`` or ``"stderr"``; called from the worker thread."""

DEFAULT_MAX_OUTPUT = 1_000_000
KILL_GRACE_SECONDS = 2
EOF_GRACE_SECONDS = 3.0
DEFAULT_CONNECT_TIMEOUT = 30.0
KILL_CHANNEL_TIMEOUT = 5.0
_CHUNK = 32768


@dataclass
class CommandResult:
    """What happened when a command ran (or failed to start) on one host."""

    alias: str
    exit_status: int | None
    stdout: str
    stderr: str
    timed_out: bool = False
    error: str | None = None
    """set when the command could not run or did not finish normally (not for exit != 0)"""
    duration: float = 0.0
    truncated: bool = False
    """output beyond ``max_output`` bytes per stream was dropped"""
    exception: OpsError | None = field(default=None, repr=False, compare=False)

    @property
    def ok(self) -> bool:
        return self.exit_status == 0 and self.error is None and not self.timed_out

    @property
    def status(self) -> Literal["ok", "failed", "timed_out", "error"]:
        if self.timed_out:
            return "timed_out"
        if self.error is not None:
            return "error"
        return "ok" if self.exit_status == 0 else "failed"

    def raise_for_error(self) -> None:
        """Re-raise the error that kept the command from running, if any."""
        if self.exception is not None:
            raise self.exception


def remote_command(argv: list[str]) -> str:
    """A remote command line from an argv list, each argument quoted for the remote shell."""
    return shlex.join(argv)


PID_HEADER = b"opsconsole-pid:"


def _remote_line(command: str, seconds: float | None) -> str:
    """The line the login shell runs: report its pid, then exec the command under /bin/sh.

    The session's shell leads its own process group, and ``exec`` keeps its pid, so the
    client can kill the whole group from a second channel on timeout or cancel (a
    client-side timeout alone leaves the remote command running). With ``seconds``,
    coreutils ``timeout`` also enforces the limit on the host, in case the client dies.
    /bin/sh rather than the login shell: the same semantics on every host (as Ansible's
    ``shell``), and the user's rc files are not sourced a second time.
    """
    head = f"echo {PID_HEADER.decode()}$$; exec "
    if seconds is None:
        return f"{head}/bin/sh -c {shlex.quote(command)}"
    secs = max(seconds, 0.1)
    return f"{head}timeout -k {KILL_GRACE_SECONDS} {secs:.3f} /bin/sh -c {shlex.quote(command)}"


def _send_signal(chan: paramiko.Channel, signame: str) -> None:
    """RFC 4254 6.9 "signal" request (OpenSSH >= 7.9 kills the session's process group)."""
    from paramiko.common import cMSG_CHANNEL_REQUEST
    from paramiko.message import Message

    m = Message()
    m.add_byte(cMSG_CHANNEL_REQUEST)
    m.add_int(chan.remote_chanid)
    m.add_string("signal")
    m.add_boolean(False)
    m.add_string(signame)
    chan.transport._send_user_message(m)


class _Stream:
    """Collects one output stream up to a byte bound, decoding incrementally."""

    def __init__(self, name: str, limit: int, on_output: OutputCallback | None) -> None:
        self.name, self.limit, self.on_output = name, limit, on_output
        self.parts: list[str] = []
        self.size = 0
        self.truncated = False
        self._decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")

    def feed(self, data: bytes, final: bool = False) -> None:
        room = self.limit - self.size
        if len(data) > room:
            data, self.truncated = data[: max(room, 0)], True
        self.size += len(data)
        text = self._decoder.decode(data, final)
        if text:
            self.parts.append(text)
            if self.on_output is not None:
                self.on_output(self.name, text)

    def text(self) -> str:
        self.feed(b"", final=True)
        return "".join(self.parts)


class _PidHeader:
    """Takes the ``opsconsole-pid:N`` line off the front of stdout; the rest goes on."""

    def __init__(self, out: _Stream) -> None:
        self.out = out
        self.pid: int | None = None
        self.done = False
        self._buf = b""

    def feed(self, data: bytes) -> None:
        if self.done:
            self.out.feed(data)
            return
        self._buf += data
        while not self.done:
            nl = self._buf.find(b"\n")
            if nl < 0:
                if len(self._buf) > 65536:  # no header after this much: stop looking
                    self.flush()
                return
            line, self._buf = self._buf[: nl + 1], self._buf[nl + 1 :]
            text = line.rstrip(b"\r\n")
            if text.startswith(PID_HEADER) and text[len(PID_HEADER) :].isdigit():
                self.pid = int(text[len(PID_HEADER) :])
                self.flush()
            else:
                self.out.feed(line)  # printed by the login shell's rc files, before the header

    def flush(self) -> None:
        self.done = True
        if self._buf:
            self.out.feed(self._buf)
            self._buf = b""


def run_command(
    host: Host,
    command: str,
    *,
    timeout: float,
    known_hosts: Path | None = None,
    alias: str = "",
    on_output: OutputCallback | None = None,
    max_output: int = DEFAULT_MAX_OUTPUT,
    remote_timeout: bool = True,
    pty: bool = False,
    cancel: threading.Event | None = None,
    connect_timeout: float = DEFAULT_CONNECT_TIMEOUT,
) -> CommandResult:
    """Run ``command`` (a shell command line, already rendered) on ``host``; blocking.

    The command runs under ``/bin/sh -c`` on the host, with stdin at EOF. ``timeout``
    bounds connect + run: when it expires — or when ``cancel`` is set (checked twice a
    second) — the remote command's whole process group is killed over a second channel,
    and the result has ``timed_out=True`` (or an error saying "cancelled"). By default
    coreutils/busybox ``timeout`` on the host enforces the limit as well, so the command
    dies even if this client does; ``remote_timeout=False`` leaves it out (hosts without
    ``timeout``). ``pty=True`` requests a pty (stderr is then merged into stdout).

    Connection, authentication and host-key problems never raise: they come back in
    ``error`` / ``exception``. Connecting is bounded by ``min(timeout, connect_timeout)``.
    """
    run = _Run(
        alias,
        timeout,
        cancel,
        _Stream("stdout", max_output, on_output),
        _Stream("stderr", max_output, on_output),
    )
    try:
        client = connect(
            host, timeout=min(timeout, connect_timeout), known_hosts=known_hosts, alias=alias
        )
    except SshError as exc:
        timed_out = isinstance(exc, SshConnectError) and run.remaining() <= 0.01
        return run.result(None, timed_out=timed_out, exception=exc)
    try:
        wrapped = _remote_line(command, run.remaining() if remote_timeout else None)
        return _run_on_client(client, wrapped, pty, run)
    finally:
        client.close()


def run_on_client(
    client: paramiko.SSHClient,
    command: str,
    *,
    timeout: float,
    alias: str = "",
    remote_timeout: bool = True,
    max_output: int = DEFAULT_MAX_OUTPUT,
) -> CommandResult:
    """Like :func:`run_command`, on a client that is already connected (and stays open):
    a new channel on the same connection, for callers that reuse connections (the health
    monitor's SSH probes). A broken connection comes back with ``exit_status None`` and an
    error, never raises."""
    run = _Run(
        alias,
        timeout,
        None,
        _Stream("stdout", max_output, None),
        _Stream("stderr", max_output, None),
    )
    wrapped = _remote_line(command, run.remaining() if remote_timeout else None)
    return _run_on_client(client, wrapped, False, run)


class _Run:
    """The clock, output and cancellation of one run_command call."""

    def __init__(
        self,
        alias: str,
        timeout: float,
        cancel: threading.Event | None,
        out: _Stream,
        err: _Stream,
    ) -> None:
        self.alias, self.timeout, self.cancel = alias, timeout, cancel
        self.out, self.err = out, err
        self.header = _PidHeader(out)
        self.started = time.monotonic()
        self.deadline = self.started + timeout

    def remaining(self) -> float:
        return self.deadline - time.monotonic()

    def result(
        self,
        exit_status: int | None,
        *,
        timed_out: bool = False,
        error: str | None = None,
        exception: OpsError | None = None,
    ) -> CommandResult:
        self.header.flush()
        return CommandResult(
            alias=self.alias,
            exit_status=exit_status,
            stdout=self.out.text(),
            stderr=self.err.text(),
            timed_out=timed_out,
            error=error if error is not None or exception is None else str(exception),
            duration=time.monotonic() - self.started,
            truncated=self.out.truncated or self.err.truncated,
            exception=exception,
        )


def _run_on_client(client: paramiko.SSHClient, command: str, pty: bool, run: _Run) -> CommandResult:
    import paramiko

    try:
        transport = client.get_transport()
        assert transport is not None
        chan = transport.open_session(timeout=max(run.remaining(), 0.1))
        if pty:
            chan.get_pty(term="dumb", width=200, height=50)
        chan.exec_command(command)
        if not pty:
            chan.shutdown_write()  # stdin at EOF: a command reading it must not hang
    except (paramiko.SSHException, OSError, EOFError) as exc:
        where = run.alias or "host"
        return run.result(
            None, exception=SshConnectError(f"cannot start the command on {where}: {exc}")
        )
    try:
        return _drain(chan, run)
    finally:
        chan.close()  # also frees the pipe behind chan.fileno()


def _kill(chan: paramiko.Channel, pid: int | None) -> None:
    """Kill the remote command's process group (best effort, bounded in time)."""
    # The "signal" request alone is not enough: OpenSSH ignores it for root sessions.
    with contextlib.suppress(Exception):
        _send_signal(chan, "KILL")
    if pid is None:
        return
    with contextlib.suppress(Exception):
        killer = chan.get_transport().open_session(timeout=KILL_CHANNEL_TIMEOUT)
        try:
            killer.exec_command(f"kill -s KILL -- -{pid} 2>/dev/null || kill -s KILL {pid}")
            killer.shutdown_write()
            killer.status_event.wait(KILL_CHANNEL_TIMEOUT)
        finally:
            killer.close()


def _drain(chan: paramiko.Channel, run: _Run) -> CommandResult:
    import paramiko

    status_at: float | None = None
    try:
        chan.fileno()  # makes select() usable on the channel (data or EOF wakes it)
        while True:
            progressed = False
            # one read per stream per turn, so endless output cannot starve the deadline
            if chan.recv_ready():
                run.header.feed(chan.recv(_CHUNK))
                progressed = True
            if chan.recv_stderr_ready():
                run.err.feed(chan.recv_stderr(_CHUNK))
                progressed = True
            now = time.monotonic()
            if progressed and status_at is not None:
                status_at = now  # output still flowing after the exit status: keep reading
            if chan.status_event.is_set() and not (chan.recv_ready() or chan.recv_stderr_ready()):
                status_at = status_at or now
                # Output ends with EOF, which sshd may send after the exit status. A
                # background process that inherited stdout can hold it open forever, so
                # once the exit status is in, stop after a quiet spell without EOF.
                if chan.eof_received or chan.closed or now - status_at > EOF_GRACE_SECONDS:
                    break
            remaining = run.deadline - now
            if remaining <= 0:
                _kill(chan, run.header.pid)
                return run.result(
                    None,
                    timed_out=True,
                    error=f"timed out after {run.timeout:g}s; the remote command was killed",
                )
            if run.cancel is not None and run.cancel.is_set():
                _kill(chan, run.header.pid)
                return run.result(None, error="cancelled; the remote command was killed")
            if chan.eof_received and not chan.status_event.is_set():
                chan.status_event.wait(min(remaining, 0.5))  # no more output can come
            elif not progressed:
                select.select([chan], [], [], min(remaining, 0.1 if status_at else 0.5))
    except (paramiko.SSHException, OSError, EOFError) as exc:
        where = run.alias or "host"
        return run.result(None, exception=SshConnectError(f"connection to {where} lost: {exc}"))
    status = chan.exit_status
    if status < 0:
        return run.result(
            None, error="the remote command ended without an exit status (killed by a signal?)"
        )
    return run.result(status)


run_command_async = in_thread(run_command)
"""``run_command`` in a worker thread, for async callers."""
