"""Host keys: fingerprints, known_hosts lookup, fetching a host's key, and pinning it."""

from __future__ import annotations

import base64
import contextlib
import hashlib
import os
import socket
from pathlib import Path
from typing import TYPE_CHECKING, NamedTuple

from opsconsole.ssh.errors import HostKeyChanged, SshConnectError

if TYPE_CHECKING:
    import paramiko

    from opsconsole.config import Host

__all__ = [
    "HostKeyInfo",
    "default_known_hosts",
    "effective_known_hosts",
    "fetch_host_key",
    "fingerprint",
    "known_hosts_name",
    "load_host_keys",
    "trust_host",
]


class HostKeyInfo(NamedTuple):
    keytype: str
    key: str
    """base64 of the public key blob, as in a known_hosts line"""
    fingerprint: str
    """``SHA256:...`` as OpenSSH prints it"""


def fingerprint(key_blob: bytes) -> str:
    """OpenSSH's SHA256 fingerprint of a public key blob."""
    digest = base64.b64encode(hashlib.sha256(key_blob).digest()).decode().rstrip("=")
    return f"SHA256:{digest}"


def key_info(key: paramiko.PKey) -> HostKeyInfo:
    blob = key.asbytes()
    return HostKeyInfo(key.get_name(), base64.b64encode(blob).decode(), fingerprint(blob))


def known_hosts_name(address: str, port: int) -> str:
    """The name a known_hosts entry uses: ``addr`` for port 22, else ``[addr]:port``."""
    return address if port == 22 else f"[{address}]:{port}"


def default_known_hosts() -> Path:
    return Path("~/.ssh/known_hosts").expanduser()


def effective_known_hosts(host: Host, default: Path | None = None) -> Path:
    """The host's own known_hosts, else ``default`` (the inventory's), else ~/.ssh/known_hosts."""
    path = host.known_hosts or default
    return path.expanduser() if path is not None else default_known_hosts()


def load_host_keys(path: Path) -> paramiko.HostKeys:
    """Keys pinned in ``path``; a missing file pins nothing."""
    import paramiko

    keys = paramiko.HostKeys()
    if path.is_file():
        keys.load(str(path))
    return keys


def fetch_host_key(host: Host, *, timeout: float = 10.0) -> HostKeyInfo:
    """Connect (no authentication) and return the key the host presents. Trusts nothing."""
    import paramiko

    try:
        sock = socket.create_connection((host.address, host.port), timeout=timeout)
    except OSError as exc:
        raise SshConnectError(f"cannot connect to {host.address}:{host.port}: {exc}") from None
    transport = paramiko.Transport(sock)
    transport.banner_timeout = timeout
    try:
        transport.start_client(timeout=timeout)
        return key_info(transport.get_remote_server_key())
    except (paramiko.SSHException, OSError, EOFError) as exc:
        raise SshConnectError(
            f"SSH handshake with {host.address}:{host.port} failed: {exc or type(exc).__name__}"
        ) from None
    finally:
        transport.close()
        sock.close()


def _line_matches(line: str, name: str) -> bool:
    import hmac

    import paramiko

    fields = line.split()
    if not fields or line.lstrip().startswith("#"):
        return False
    for pattern in fields[0].split(","):
        if pattern.startswith("|1|"):
            if hmac.compare_digest(paramiko.HostKeys.hash_host(name, pattern), pattern):
                return True
        elif pattern == name:
            return True
    return False


def trust_host(
    alias: str,
    host: Host,
    known_hosts_path: Path,
    *,
    key: HostKeyInfo | None = None,
    hashed: bool = False,
    replace: bool = False,
    timeout: float = 10.0,
) -> HostKeyInfo:
    """Pin ``key`` (fetched from the host when not given) for ``host`` in ``known_hosts_path``.

    Pass the key the operator confirmed, so that what gets pinned is what they saw. A
    different key already pinned for the same name and key type raises
    :class:`HostKeyChanged` unless ``replace``; then every entry for that name is removed.
    Pinning a key that is already pinned changes nothing.
    """
    import paramiko

    info = key if key is not None else fetch_host_key(host, timeout=timeout)
    name = known_hosts_name(host.address, host.port)
    path = known_hosts_path.expanduser()
    pinned = load_host_keys(path).lookup(name)
    if pinned is not None and info.keytype in pinned:
        current = key_info(pinned[info.keytype])
        if current.key == info.key:
            return info
        if not replace:
            raise HostKeyChanged(
                alias=alias,
                address=host.address,
                port=host.port,
                keytype=info.keytype,
                fingerprint=info.fingerprint,
                expected_fingerprint=current.fingerprint,
                known_hosts=path,
            )
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    entry_name = paramiko.HostKeys.hash_host(name) if hashed else name
    entry = f"{entry_name} {info.keytype} {info.key}\n"
    text = path.read_text() if path.is_file() else ""
    if not replace:
        # append in place: keeps the file's owner and mode (it may be shared)
        fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
        with os.fdopen(fd, "a") as fh:
            fh.write(("\n" if text and not text.endswith("\n") else "") + entry)
        return info
    lines = [ln for ln in text.splitlines(keepends=True) if not _line_matches(ln, name)]
    if lines and not lines[-1].endswith("\n"):
        lines[-1] += "\n"
    lines.append(entry)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as fh:
        fh.writelines(lines)
    if path.exists():
        st = path.stat()
        os.chmod(tmp, st.st_mode & 0o7777)
        with contextlib.suppress(PermissionError):
            os.chown(tmp, st.st_uid, st.st_gid)
    os.replace(tmp, path)  # atomic: readers see the old file or the new one
    return info
