"""run_command against a real sshd: exit status, output, timeouts that kill, auth errors."""

from __future__ import annotations

import os
import uuid
from pathlib import Path

import pytest

from opsconsole.ssh import (
    CommandResult,
    SshAuthError,
    SshConnectError,
    remote_command,
    run_command,
    run_command_async,
)
from opsconsole.testing.sshd import LoopbackSshd, write_ed25519_key
from tests.ssh.procs import DEADLINE, process_alive, processes_with_arg, wait_until


def test_success_returns_stdout_stderr_and_exit_zero(sshd: LoopbackSshd) -> None:
    res = run_command(sshd.host(), "echo out; echo err >&2", timeout=30, alias="h01")
    assert res.ok, res
    assert (res.alias, res.exit_status, res.stdout, res.stderr) == ("h01", 0, "out\n", "err\n")
    assert res.status == "ok" and not res.timed_out and res.error is None


def test_failure_reports_exit_status(sshd: LoopbackSshd) -> None:
    res = run_command(sshd.host(), "echo nope >&2; exit 3", timeout=30)
    assert res.exit_status == 3
    assert res.status == "failed" and not res.ok and res.error is None
    assert res.stderr == "nope\n"


def test_output_streams_to_callback(sshd: LoopbackSshd) -> None:
    seen: list[tuple[str, str]] = []
    res = run_command(
        sshd.host(),
        "printf 'a\\n'; printf 'b\\n' >&2; printf 'c\\n'",
        timeout=30,
        on_output=lambda stream, text: seen.append((stream, text)),
    )
    assert res.ok
    assert "".join(t for s, t in seen if s == "stdout") == "a\nc\n"
    assert "".join(t for s, t in seen if s == "stderr") == "b\n"


def test_large_output_is_drained_and_bounded(sshd: LoopbackSshd) -> None:
    # 5 MB on each stream: without draining, the remote side would block on a full window
    cmd = "head -c 5000000 /dev/zero | tr '\\0' x; head -c 5000000 /dev/zero | tr '\\0' y >&2"
    res = run_command(sshd.host(), cmd, timeout=60, max_output=1000)
    assert res.exit_status == 0 and res.truncated
    assert res.stdout == "x" * 1000 and res.stderr == "y" * 1000


def test_timeout_kills_the_remote_command(sshd: LoopbackSshd, tmp_path: Path) -> None:
    marker = f"9{uuid.uuid4().int % 10**6}.5"  # a unique sleep length to find the process
    pidfile, done = tmp_path / "pid", tmp_path / "done"
    cmd = f"sleep {marker} & echo $! > {pidfile}; wait; touch {done}"
    # generous: the command must have started (connecting can be slow on a loaded machine)
    res = run_command(sshd.host(), cmd, timeout=10)
    assert res.timed_out and res.status == "timed_out" and res.exit_status is None
    assert "timed out" in (res.error or "")
    assert pidfile.exists(), "the command did not even start within the timeout"
    pid = int(pidfile.read_text())
    assert wait_until(lambda: not process_alive(pid)), f"remote sleep {pid} still running"
    assert wait_until(lambda: not processes_with_arg(marker))
    assert not done.exists()


@pytest.mark.parametrize("pty", [False, True], ids=["no-pty", "pty"])
def test_timeout_without_the_remote_wrapper_still_kills(
    sshd: LoopbackSshd, tmp_path: Path, pty: bool
) -> None:
    """Hosts without coreutils `timeout`: the client kills the process group itself."""
    if pty and os.geteuid() != 0:
        # The loopback sshd runs as this user; only a root sshd can chown a pty to its user.
        pytest.skip("a non-root sshd cannot allocate a pty (chown of /dev/pts/N fails)")
    marker = f"8{uuid.uuid4().int % 10**6}.5"
    pidfile = tmp_path / "pid"
    cmd = f"sleep {marker} & echo $! > {pidfile}; wait"
    res = run_command(sshd.host(), cmd, timeout=10, remote_timeout=False, pty=pty)
    assert res.timed_out
    assert pidfile.exists(), "the command did not even start within the timeout"
    pid = int(pidfile.read_text())
    assert wait_until(lambda: not process_alive(pid)), f"remote sleep {pid} still running"


def test_remote_wrapper_kills_even_if_the_client_goes_away(
    sshd: LoopbackSshd, tmp_path: Path
) -> None:
    """The host-side `timeout` is the backstop when the client dies mid-command."""
    import paramiko

    from opsconsole.ssh.client import _remote_line

    marker = f"6{uuid.uuid4().int % 10**6}.5"
    pidfile = tmp_path / "pid"
    client = paramiko.SSHClient()
    client.load_host_keys(str(sshd.known_hosts))
    client.connect(
        "127.0.0.1",
        port=sshd.port,
        username=sshd.user,
        key_filename=str(sshd.key_file),
        look_for_keys=False,
    )
    chan = client.get_transport().open_session()  # type: ignore[union-attr]
    chan.exec_command(_remote_line(f"sleep {marker} & echo $! > {pidfile}; wait", 1.0))
    assert wait_until(pidfile.exists)
    pid = int(pidfile.read_text())
    client.close()  # vanish without killing anything
    assert wait_until(lambda: not process_alive(pid)), f"remote sleep {pid} still running"


def test_cancel_kills_the_running_command(sshd: LoopbackSshd, tmp_path: Path) -> None:
    import threading

    marker = f"5{uuid.uuid4().int % 10**6}.5"
    pidfile = tmp_path / "pid"
    cancel = threading.Event()
    results: list[CommandResult] = []
    worker = threading.Thread(
        target=lambda: results.append(
            run_command(
                sshd.host(),
                f"sleep {marker} & echo $! > {pidfile}; wait",
                timeout=600,
                cancel=cancel,
            )
        )
    )
    worker.start()
    assert wait_until(pidfile.exists)
    cancel.set()
    worker.join(DEADLINE)
    assert results and "cancelled" in (results[0].error or "")
    assert results[0].status == "error" and not results[0].timed_out
    pid = int(pidfile.read_text())
    assert wait_until(lambda: not process_alive(pid)), f"remote sleep {pid} still running"


def test_stdin_is_at_eof(sshd: LoopbackSshd) -> None:
    res = run_command(sshd.host(), "cat; echo done", timeout=30)
    assert res.ok and res.stdout == "done\n"


def test_pid_header_is_stripped_even_after_rc_file_noise() -> None:
    from opsconsole.ssh.client import _PidHeader, _Stream

    out = _Stream("stdout", 1000, None)
    header = _PidHeader(out)
    for chunk in (b"Welcome!\r\nopsconsole-", b"pid:4242\r\nreal", b" output\n"):
        header.feed(chunk)
    assert header.pid == 4242 and out.text() == "Welcome!\r\nreal output\n"


def test_endless_output_still_times_out(sshd: LoopbackSshd) -> None:
    res = run_command(sshd.host(), "yes", timeout=2, max_output=10_000)
    assert res.timed_out and res.truncated and len(res.stdout) == 10_000


def test_command_runs_under_posix_sh_with_quoted_argv(sshd: LoopbackSshd, tmp_path: Path) -> None:
    marker = tmp_path / "pwned"
    evil = f"x; touch {marker}"
    res = run_command(sshd.host(), remote_command(["printf", "%s\\n", evil, "$HOME"]), timeout=30)
    assert res.ok, res
    assert res.stdout == f"{evil}\n$HOME\n"
    assert not marker.exists()


def test_unauthorized_key_is_an_auth_error(sshd: LoopbackSshd, tmp_path: Path) -> None:
    other = tmp_path / "other_key"
    write_ed25519_key(other)
    res = run_command(sshd.host(key_file=other), "true", timeout=30, alias="h01")
    assert res.status == "error" and res.exit_status is None
    assert isinstance(res.exception, SshAuthError)
    assert "authentication" in (res.error or "") and "h01" in (res.error or "")
    with pytest.raises(SshAuthError):
        res.raise_for_error()


def test_closed_port_is_a_connect_error(sshd: LoopbackSshd) -> None:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # bound but not listening: connection refused
        res = run_command(sshd.host(port=port), "true", timeout=10, alias="gone")
    assert isinstance(res.exception, SshConnectError)
    assert res.status == "error" and "gone" in (res.error or "")


async def test_async_wrapper_runs_in_a_thread(sshd: LoopbackSshd) -> None:
    res = await run_command_async(sshd.host(), "echo async", timeout=30)
    assert isinstance(res, CommandResult) and res.stdout == "async\n"


def test_background_process_holding_stdout_does_not_hang_the_step(
    sshd: LoopbackSshd,
) -> None:
    marker = f"7{uuid.uuid4().int % 10**6}.5"
    res = run_command(sshd.host(), f"sleep {marker} & echo started", timeout=30)
    assert res.ok and not res.timed_out and res.stdout == "started\n"
    for pid in processes_with_arg(marker):  # clean up what the command left behind
        os.kill(pid, 9)


def test_no_file_descriptors_leak(sshd: LoopbackSshd) -> None:
    run_command(sshd.host(), "true", timeout=30)
    before = len(os.listdir("/proc/self/fd"))
    for _ in range(10):
        assert run_command(sshd.host(), "echo x", timeout=30).ok
    run_command(sshd.host(), "sleep 5", timeout=0.5)
    assert len(os.listdir("/proc/self/fd")) <= before


def test_agent_auth_when_the_host_has_no_key_file(
    sshd: LoopbackSshd, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import shutil
    import subprocess

    agent_bin, add_bin = shutil.which("ssh-agent"), shutil.which("ssh-add")
    assert agent_bin and add_bin, "ssh-agent/ssh-add (openssh-client) are needed"
    monkeypatch.setenv("HOME", str(tmp_path / "home"))  # no ~/.ssh/id_* to fall back on
    monkeypatch.delenv("SSH_AUTH_SOCK", raising=False)
    host = sshd.host(key_file=None)
    assert isinstance(run_command(host, "true", timeout=30).exception, SshAuthError)
    sock = tmp_path / "agent.sock"
    agent = subprocess.Popen([agent_bin, "-D", "-a", str(sock)], stdout=subprocess.DEVNULL)
    try:
        assert wait_until(sock.exists)
        env = {**os.environ, "SSH_AUTH_SOCK": str(sock)}
        subprocess.run([add_bin, str(sshd.key_file)], env=env, check=True, capture_output=True)
        monkeypatch.setenv("SSH_AUTH_SOCK", str(sock))
        res = run_command(host, "echo via-agent", timeout=30)
        assert res.ok, res.error
        assert res.stdout == "via-agent\n"
    finally:
        agent.terminate()
        agent.wait(10)
