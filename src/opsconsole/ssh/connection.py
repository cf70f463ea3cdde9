"""Opening an authenticated SSH connection with strict host-key checking."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from opsconsole.ssh.errors import (
    HostKeyChanged,
    HostKeyUnknown,
    SshAuthError,
    SshConnectError,
    SshError,
)
from opsconsole.ssh.hostkeys import effective_known_hosts, key_info

if TYPE_CHECKING:
    import paramiko

    from opsconsole.config import Host

__all__ = ["connect"]


def connect(
    host: Host, *, timeout: float, known_hosts: Path | None = None, alias: str = ""
) -> paramiko.SSHClient:
    """An authenticated client, or an :class:`SshError` (host key, auth, connection).

    Host keys come from ``effective_known_hosts(host, known_hosts)``; unknown keys are
    rejected (:class:`HostKeyUnknown`), changed keys too (:class:`HostKeyChanged`).
    """
    import paramiko

    kh_path = effective_known_hosts(host, known_hosts)

    class _Reject(paramiko.RejectPolicy):
        def missing_host_key(self, client: object, hostname: str, key: paramiko.PKey) -> None:
            info = key_info(key)
            raise HostKeyUnknown(
                alias=alias,
                address=host.address,
                port=host.port,
                keytype=info.keytype,
                fingerprint=info.fingerprint,
                known_hosts=kh_path,
            )

    client = paramiko.SSHClient()
    if kh_path.is_file():  # a missing file pins nothing: every key is unknown
        try:
            client.load_host_keys(str(kh_path))
        except (OSError, paramiko.SSHException) as exc:
            raise SshError(f"cannot read known_hosts {kh_path}: {exc}") from None
    client.set_missing_host_key_policy(_Reject())
    key_file = str(host.key_file.expanduser()) if host.key_file is not None else None
    name = alias or host.address
    where = f"{name} ({host.user}@{host.address}:{host.port})"
    try:
        client.connect(
            host.address,
            port=host.port,
            username=host.user,
            key_filename=key_file,
            look_for_keys=key_file is None,
            allow_agent=True,
            timeout=timeout,
            banner_timeout=timeout,
            auth_timeout=timeout,
            channel_timeout=timeout,
        )
    except SshError:
        client.close()
        raise
    except paramiko.BadHostKeyException as exc:
        client.close()
        got, expected = key_info(exc.key), key_info(exc.expected_key)
        raise HostKeyChanged(
            alias=alias,
            address=host.address,
            port=host.port,
            keytype=got.keytype,
            fingerprint=got.fingerprint,
            expected_fingerprint=expected.fingerprint,
            known_hosts=kh_path,
        ) from None
    except paramiko.AuthenticationException as exc:
        client.close()
        how = f"key {key_file}" if key_file else "the SSH agent or ~/.ssh keys"
        raise SshAuthError(f"authentication to {where} failed with {how}: {exc}") from None
    except (FileNotFoundError, PermissionError) as exc:
        client.close()
        raise SshAuthError(f"cannot read key file for {where}: {exc}") from None
    except paramiko.SSHException as exc:
        client.close()
        if "no authentication methods" in str(exc).lower():  # paramiko has no subclass for it
            raise SshAuthError(
                f"no key to log in to {where} with: set key_file for the host in the "
                "inventory, or load a key into the SSH agent (SSH_AUTH_SOCK)"
            ) from None
        raise SshConnectError(f"cannot connect to {where}: {exc or type(exc).__name__}") from None
    except (TimeoutError, OSError, EOFError) as exc:
        client.close()
        raise SshConnectError(f"cannot connect to {where}: {exc or type(exc).__name__}") from None
    return client
