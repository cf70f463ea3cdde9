"""SSH errors: each says what went wrong with which host and what to do about it."""

from __future__ import annotations

from pathlib import Path

from opsconsole.errors import ExitCode, OpsError

__all__ = ["HostKeyChanged", "HostKeyUnknown", "SshAuthError", "SshConnectError", "SshError"]


class SshError(OpsError):
    """Could not run a command on a host (before the command itself started)."""

    exit_code = ExitCode.FAILED


class HostKeyUnknown(SshError):
    """The host presented a key that is not pinned in the known_hosts file."""

    def __init__(
        self,
        *,
        alias: str,
        address: str,
        port: int,
        keytype: str,
        fingerprint: str,
        known_hosts: Path,
    ) -> None:
        self.alias, self.address, self.port = alias, address, port
        self.keytype, self.fingerprint, self.known_hosts = keytype, fingerprint, known_hosts
        name = alias or address
        super().__init__(
            f"unknown host key for {name} ({address}:{port}): {keytype} {fingerprint} is not in "
            f"{known_hosts}; refusing to connect. If this fingerprint is right, pin it with "
            f"`opsconsole ssh trust {name}`."
        )


class HostKeyChanged(SshError):
    """The host presented a key different from the pinned one: possible man-in-the-middle."""

    def __init__(
        self,
        *,
        alias: str,
        address: str,
        port: int,
        keytype: str,
        fingerprint: str,
        expected_fingerprint: str,
        known_hosts: Path,
    ) -> None:
        self.alias, self.address, self.port = alias, address, port
        self.keytype, self.fingerprint, self.known_hosts = keytype, fingerprint, known_hosts
        self.expected_fingerprint = expected_fingerprint
        name = alias or address
        entry = address if port == 22 else f"[{address}]:{port}"
        super().__init__(
            f"HOST KEY CHANGED for {name} ({address}:{port}): it presented {keytype} "
            f"{fingerprint} but {known_hosts} pins {expected_fingerprint}. Someone may be "
            f"intercepting the connection (man-in-the-middle); refusing to connect. Only if "
            f"the host was really rebuilt: check the new fingerprint out of band, then "
            f"`ssh-keygen -R '{entry}' -f {known_hosts}` and `opsconsole ssh trust {name}` "
            f"(or `opsconsole ssh trust {name} --replace`)."
        )


class SshAuthError(SshError):
    """The host refused our key(s)."""


class SshConnectError(SshError):
    """TCP connect or SSH handshake failed."""
