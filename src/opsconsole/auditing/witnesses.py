"""Witnesses: places that keep copies of the signed checkpoints, out of reach of whoever
can write the database - a directory (local, or a mount such as an append-only NFS or
object-store export), a host over SSH (SFTP through the project's paramiko layer, host
key verified against known_hosts), or an HTTP endpoint (PUT to store, GET to fetch).

Each witness holds ``checkpoint-NNNNNNNN.json`` (one per checkpoint, never overwritten)
and ``latest.json``. ``audit verify`` reads ``latest.json`` from every witness, and the
numbered file before it to check the two are chained.
"""

from __future__ import annotations

import contextlib
import os
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

from opsconsole.errors import OpsError

if TYPE_CHECKING:
    from opsconsole.auditing.settings import WitnessSpec
    from opsconsole.config import Config, Host

__all__ = ["DirectoryWitness", "HttpWitness", "SshWitness", "Witness", "WitnessError", "build"]


class WitnessError(OpsError):
    """A witness could not be written or read."""


class Witness(Protocol):
    name: str

    def put(self, filename: str, data: bytes) -> None:
        """Store ``data`` as ``filename`` (write-once); WitnessError if it cannot."""

    def get(self, filename: str) -> bytes | None:
        """The file's bytes, None if the witness does not have it; WitnessError if the
        witness cannot be reached."""


@dataclass
class DirectoryWitness:
    path: Path
    name: str = ""

    def __post_init__(self) -> None:
        self.name = self.name or f"dir:{self.path}"

    def put(self, filename: str, data: bytes) -> None:
        target = self.path / filename
        tmp = self.path / f".{filename}.tmp{os.getpid()}"
        try:
            if filename != "latest.json" and target.exists():
                raise WitnessError(f"{self.name}: {filename} exists (checkpoints are write-once)")
            with open(tmp, "wb") as fh:
                fh.write(data)
                fh.flush()
                os.fsync(fh.fileno())
            os.replace(tmp, target)
        except OSError as exc:
            with contextlib.suppress(OSError):
                tmp.unlink()
            raise WitnessError(f"{self.name}: cannot write {filename}: {exc.strerror}") from None

    def get(self, filename: str) -> bytes | None:
        try:
            return (self.path / filename).read_bytes()
        except FileNotFoundError:
            if not self.path.is_dir():
                raise WitnessError(f"{self.name}: directory not found") from None
            return None
        except OSError as exc:
            raise WitnessError(f"{self.name}: cannot read {filename}: {exc.strerror}") from None


@dataclass
class SshWitness:
    host: Host
    path: str
    alias: str
    timeout: float = 15.0
    name: str = ""

    def __post_init__(self) -> None:
        self.name = self.name or f"ssh:{self.alias}:{self.path}"

    def _sftp(self):  # type: ignore[no-untyped-def]
        from opsconsole.ssh.connection import connect

        client = connect(self.host, timeout=self.timeout, alias=self.alias)
        try:
            return client, client.open_sftp()
        except Exception as exc:  # paramiko raises SSHException and OSError
            client.close()
            raise WitnessError(f"{self.name}: cannot open SFTP: {exc}") from None

    def put(self, filename: str, data: bytes) -> None:
        from opsconsole.ssh.errors import SshError

        try:
            client, sftp = self._sftp()
        except SshError as exc:
            raise WitnessError(f"{self.name}: {exc}") from None
        remote = f"{self.path.rstrip('/')}/{filename}"
        tmp = f"{self.path.rstrip('/')}/.{filename}.tmp{os.getpid()}"
        try:
            if filename != "latest.json":
                with contextlib.suppress(FileNotFoundError):
                    sftp.stat(remote)
                    raise WitnessError(f"{self.name}: {filename} exists (write-once)")
            with sftp.open(tmp, "wb") as fh:
                fh.write(data)
            sftp.posix_rename(tmp, remote)
        except OSError as exc:
            raise WitnessError(f"{self.name}: cannot write {filename}: {exc}") from None
        finally:
            sftp.close()
            client.close()

    def get(self, filename: str) -> bytes | None:
        from opsconsole.ssh.errors import SshError

        try:
            client, sftp = self._sftp()
        except SshError as exc:
            raise WitnessError(f"{self.name}: {exc}") from None
        try:
            with sftp.open(f"{self.path.rstrip('/')}/{filename}", "rb") as fh:
                return bytes(fh.read())
        except FileNotFoundError:
            return None
        except OSError as exc:
            raise WitnessError(f"{self.name}: cannot read {filename}: {exc}") from None
        finally:
            sftp.close()
            client.close()


@dataclass
class HttpWitness:
    url: str
    headers: dict[str, str]
    timeout: float = 10.0
    name: str = ""

    def __post_init__(self) -> None:
        self.name = self.name or f"http:{self.url}"

    def _url(self, filename: str) -> str:
        return f"{self.url.rstrip('/')}/{filename}"

    def put(self, filename: str, data: bytes) -> None:
        import httpx

        try:
            r = httpx.put(
                self._url(filename),
                content=data,
                headers={**self.headers, "Content-Type": "application/json"},
                timeout=self.timeout,
            )
        except httpx.HTTPError as exc:
            raise WitnessError(f"{self.name}: {exc}") from None
        if r.status_code >= 300:
            raise WitnessError(f"{self.name}: PUT {filename} answered {r.status_code}")

    def get(self, filename: str) -> bytes | None:
        import httpx

        try:
            r = httpx.get(self._url(filename), headers=self.headers, timeout=self.timeout)
        except httpx.HTTPError as exc:
            raise WitnessError(f"{self.name}: {exc}") from None
        if r.status_code == 404:
            return None
        if r.status_code >= 300:
            raise WitnessError(f"{self.name}: GET {filename} answered {r.status_code}")
        return r.content


def build(specs: list[WitnessSpec], config: Config) -> list[Witness]:
    """Witness objects for the configured specs (paths relative to the config dir)."""
    out: list[Witness] = []
    for spec in specs:
        if spec.dir is not None:
            path = config.resolve(spec.dir)
            assert path is not None
            out.append(DirectoryWitness(path, spec.name or ""))
        elif spec.ssh is not None:
            from opsconsole.ssh.hosts import resolve_host

            host = resolve_host(config, spec.ssh.host)
            out.append(SshWitness(host, spec.ssh.path, spec.ssh.host, name=spec.name or ""))
        elif spec.http is not None:
            out.append(
                HttpWitness(
                    str(spec.http.url),
                    dict(spec.http.headers),
                    spec.http.timeout_seconds,
                    spec.name or "",
                )
            )
    return out
