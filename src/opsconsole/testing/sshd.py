"""A real OpenSSH ``sshd`` on 127.0.0.1, for tests and benchmarks.

Generates an ed25519 host key and user key in a directory, writes authorized_keys, a
known_hosts pinning the host key, and an sshd_config with high ``MaxStartups`` /
``MaxSessions`` for fan-out, then runs ``sshd -D`` on a free port until :meth:`stop`.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from opsconsole.config import Host

__all__ = ["LoopbackSshd", "SshdUnavailable", "find_sshd", "write_ed25519_key"]

SSHD_CANDIDATES = ("/usr/sbin/sshd", "/usr/local/sbin/sshd", "/sbin/sshd")


class SshdUnavailable(RuntimeError):
    """sshd is not installed or would not start."""


def find_sshd() -> str:
    for candidate in (shutil.which("sshd"), *SSHD_CANDIDATES):
        if candidate and os.access(candidate, os.X_OK):
            return candidate
    raise SshdUnavailable(
        "OpenSSH sshd not found (looked on PATH and in /usr/sbin); the SSH tests need a real "
        "sshd: run ./scripts/install (as root it apt-get installs openssh-server)."
    )


def write_ed25519_key(path: Path, comment: str = "opsconsole-test") -> str:
    """Write a new unencrypted ed25519 private key (OpenSSH format) to ``path`` (mode 0600)
    and ``path.pub``; return the public key line."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    key = Ed25519PrivateKey.generate()
    private = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.OpenSSH,
        serialization.NoEncryption(),
    )
    public = (
        key.public_key()
        .public_bytes(serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH)
        .decode()
    )
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as fh:
        fh.write(private)
    line = f"{public} {comment}"
    Path(f"{path}.pub").write_text(line + "\n")
    return line


def _die_with_parent() -> None:
    """In the child: get SIGTERM when the test process dies, even by SIGKILL (Linux)."""
    if sys.platform.startswith("linux"):
        import ctypes

        with contextlib.suppress(OSError, AttributeError):
            ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class LoopbackSshd:
    """One sshd process on 127.0.0.1, with its keys and a known_hosts for it."""

    def __init__(self, directory: Path, *, max_startups: int = 200) -> None:
        self.directory = directory
        self.max_startups = max_startups
        from opsconsole.identity import os_user

        self.user = os_user()
        self.address = "127.0.0.1"
        self.port = 0
        self.host_key = directory / "ssh_host_ed25519_key"
        self.key_file = directory / "id_ed25519"
        self.authorized_keys = directory / "authorized_keys"
        self.known_hosts = directory / "known_hosts"
        self.config_file = directory / "sshd_config"
        self.log_file = directory / "sshd.log"
        self.pid_file = directory / "sshd.pid"
        self.host_public_key = ""
        self._proc: subprocess.Popen[bytes] | None = None

    # -- lifecycle -------------------------------------------------------------------

    def start(self, *, timeout: float = 20.0) -> LoopbackSshd:
        sshd = find_sshd()
        self.directory.mkdir(parents=True, exist_ok=True)
        try:
            Path("/run/sshd").mkdir(mode=0o755, exist_ok=True)  # privilege-separation dir
        except PermissionError:
            if not Path("/run/sshd").is_dir():
                raise SshdUnavailable(
                    "/run/sshd does not exist and cannot be created; create it as root "
                    "(mkdir -m 755 /run/sshd) or run ./scripts/install"
                ) from None
        self.host_public_key = write_ed25519_key(self.host_key, "opsconsole-test-host")
        user_public = write_ed25519_key(self.key_file, "opsconsole-test-user")
        self.authorized_keys.write_text(user_public + "\n")
        last_error = ""
        for _attempt in range(5):  # the free port may be taken between probe and bind
            self.port = _free_port()
            self._write_config()
            self._write_known_hosts()
            check = subprocess.run(
                [sshd, "-t", "-f", str(self.config_file)], capture_output=True, text=True
            )
            if check.returncode != 0:
                raise SshdUnavailable(f"sshd rejected its test config: {check.stderr.strip()}")
            self.log_file.write_text("")
            self._proc = subprocess.Popen(
                [sshd, "-D", "-f", str(self.config_file), "-E", str(self.log_file)],
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
                preexec_fn=_die_with_parent,
            )
            if self._wait_ready(timeout):
                return self
            last_error = self.log_file.read_text()[-2000:]
            self.stop()
        raise SshdUnavailable(f"sshd did not start on 127.0.0.1; its log:\n{last_error}")

    def _wait_ready(self, timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self._proc is None or self._proc.poll() is not None:
                return False
            try:
                with socket.create_connection((self.address, self.port), timeout=1) as s:
                    s.settimeout(2)
                    if s.recv(64).startswith(b"SSH-"):
                        return True
            except OSError:
                pass
            time.sleep(0.05)
        return False

    def stop(self) -> None:
        proc, self._proc = self._proc, None
        if proc is None:
            return
        if proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=10)

    def __enter__(self) -> LoopbackSshd:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    # -- files -----------------------------------------------------------------------

    def _write_config(self) -> None:
        n = self.max_startups
        self.config_file.write_text(
            f"Port {self.port}\n"
            f"ListenAddress {self.address}\n"
            f"HostKey {self.host_key}\n"
            f"AuthorizedKeysFile {self.authorized_keys}\n"
            f"PidFile {self.pid_file}\n"
            "PasswordAuthentication no\n"
            "KbdInteractiveAuthentication no\n"
            "PubkeyAuthentication yes\n"
            "PermitRootLogin prohibit-password\n"
            "StrictModes no\n"
            "UsePAM no\n"
            "UseDNS no\n"
            f"MaxStartups {n}\n"
            f"MaxSessions {n}\n"
            "MaxAuthTries 10\n"
            "LogLevel VERBOSE\n"
            # bash sources ~/.bashrc for a command run by sshd unless SHLVL says it is
            # nested; this machine's rc files (e.g. `pyenv init`, which takes a lock) are
            # not what the tests and the benchmark are about.
            "SetEnv SHLVL=1\n"
            # SFTP: the audit SSH witness stores checkpoints through it.
            "Subsystem sftp internal-sftp\n"
        )

    @property
    def known_hosts_line(self) -> str:
        keytype, key = self.host_public_key.split()[:2]
        return f"[{self.address}]:{self.port} {keytype} {key}"

    def _write_known_hosts(self) -> None:
        self.known_hosts.write_text(self.known_hosts_line + "\n")

    # -- inventory helpers -----------------------------------------------------------

    def host(self, **overrides: Any) -> Host:
        """A :class:`~opsconsole.config.Host` pointing at this sshd (known_hosts pinned)."""
        from opsconsole.config import Host

        fields: dict[str, Any] = {
            "address": self.address,
            "port": self.port,
            "user": self.user,
            "key_file": self.key_file,
            "known_hosts": self.known_hosts,
        }
        fields.update(overrides)
        return Host(**fields)

    def hosts(self, n: int, prefix: str = "h", **overrides: Any) -> dict[str, Host]:
        """``n`` host aliases (``h01``...) all pointing at this sshd, for fan-out."""
        width = max(2, len(str(n)))
        return {f"{prefix}{i:0{width}d}": self.host(**overrides) for i in range(1, n + 1)}

    def inventory_yaml(
        self,
        aliases: list[str] | None = None,
        *,
        region: str = "test-1",
        known_hosts: Path | None = None,
    ) -> str:
        """An inventory.yaml with these host aliases (default one ``h01``) on this sshd."""
        kh = known_hosts if known_hosts is not None else self.known_hosts
        lines = [
            "regions:",
            f"  {region}:",
            "    name: Test",
            "    environment: test",
            "    hosts:",
        ]
        for alias in aliases or ["h01"]:
            lines.append(
                f"      {alias}: {{address: {self.address}, port: {self.port}, "
                f"user: {self.user}, key_file: '{self.key_file}', known_hosts: '{kh}', "
                f"groups: [sshd]}}"
            )
        return "\n".join(lines) + "\n"
