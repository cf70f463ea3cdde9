"""A throw-away PostgreSQL cluster for the tests (Debian's postgresql, as CI installs it).

One cluster per test session: ``initdb`` as the ``postgres`` OS account in a temp dir,
``pg_ctl start`` on a free loopback port. The schema is migrated once into a template
database; each test gets its own database copied from it (``CREATE DATABASE ... TEMPLATE``,
a file copy, much faster than migrating).

Authentication is real: the ``owner`` superuser connects over the Unix socket (trust, as a
host's ``postgres`` account does with peer auth); every other role logs in over TCP with
a SCRAM password, so a test acting as ``alice`` is alice because it knows her password.

The cluster trades durability for speed (``fsync=off``): it is thrown away. The
benchmark (``bench/store.py``) runs its own cluster with the default settings.
"""

from __future__ import annotations

import itertools
import os
import shutil
import socket
import subprocess
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

__all__ = ["PgCluster", "pg_bin", "start_cluster"]


def pg_bin() -> Path | None:
    found = sorted(Path("/usr/lib/postgresql").glob("*/bin/initdb"))
    return found[-1].parent if found else None


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class PgCluster:
    directory: Path
    port: int
    bin: Path
    template: str | None = None
    _counter: Iterator[int] = field(default_factory=lambda: itertools.count(1))

    def url(self, database: str = "postgres", user: str = "owner", password: str = "") -> str:
        if password:
            return f"postgresql://{user}:{password}@127.0.0.1:{self.port}/{database}"
        # The owner over the socket directory (trust, like peer auth on a host).
        return f"postgresql://{user}@/{database}?host={self.directory}&port={self.port}"

    def sql(self, statement: str, database: str = "postgres") -> str:
        import psycopg

        with psycopg.connect(self.url(database), autocommit=True) as conn:
            cur = conn.execute(statement)  # type: ignore[arg-type]
            rows = cur.fetchall() if cur.description else []
        return "\n".join("|".join(str(v) for v in r) for r in rows)

    def new_database(self) -> str:
        """A fresh, migrated database; returns its owner URL."""
        name = f"t{os.getpid()}_{next(self._counter)}"
        template = f" TEMPLATE {self.template}" if self.template else ""
        self.sql(f"CREATE DATABASE {name}{template}")
        return self.url(name)

    def drop_database(self, url: str) -> None:
        name = url.split("?", 1)[0].rsplit("/", 1)[1]
        self.sql(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")

    def role(self, name: str, password: str, *grants: str) -> str:
        """A login role (a person) with a password, member of ``grants``; its URL is
        returned by :meth:`url` with that password."""
        exists = self.sql(f"SELECT 1 FROM pg_roles WHERE rolname = '{name}'")
        if not exists:
            self.sql(f"CREATE ROLE {name} LOGIN PASSWORD '{password}'")
        for group in grants:
            self.sql(f"GRANT {group} TO {name}")
        return name

    def stop(self) -> None:
        subprocess.run(
            [
                "runuser",
                "-u",
                "postgres",
                "--",
                str(self.bin / "pg_ctl"),
                "-D",
                str(self.directory / "data"),
                "stop",
                "-m",
                "immediate",
            ],
            capture_output=True,
            check=False,
        )
        shutil.rmtree(self.directory, ignore_errors=True)


def _runuser() -> str:
    return shutil.which("runuser") or shutil.which("runuser", path="/usr/sbin:/sbin") or "runuser"


def start_cluster(*, durable: bool = False) -> PgCluster:
    """Start a cluster (``durable``: keep fsync on, for the benchmark)."""
    binary = pg_bin()
    why = None
    if binary is None:
        why = "PostgreSQL is not installed (./scripts/install installs Debian's postgresql)"
    elif os.geteuid() != 0:
        why = "the PostgreSQL tests start a cluster as the postgres account and need root"
    if why:
        if os.environ.get("CI"):
            pytest.fail(why)
        pytest.skip(why)
    assert binary is not None
    directory = Path(tempfile.mkdtemp(prefix="opsconsole-pg-"))
    os.chmod(directory, 0o755)
    shutil.chown(directory, "postgres", "postgres")
    data = directory / "data"
    run = [_runuser(), "-u", "postgres", "--"]
    subprocess.run(
        [
            *run,
            str(binary / "initdb"),
            "-D",
            str(data),
            "-A",
            "trust",
            "-U",
            "owner",
            "--no-sync",
            "-E",
            "UTF8",
            "--locale=C.UTF-8",
        ],
        check=True,
        capture_output=True,
    )
    # The owner over the socket; everyone else over TCP with a password.
    (data / "pg_hba.conf").write_text(
        "local all all trust\n"
        "host all owner 127.0.0.1/32 reject\n"
        "host all all 127.0.0.1/32 scram-sha-256\n"
    )
    port = _free_port()
    options = f"-p {port} -k {directory} -c listen_addresses=127.0.0.1 -c max_connections=200"
    if not durable:
        options += " -c fsync=off -c synchronous_commit=off -c full_page_writes=off"
    subprocess.run(
        [
            *run,
            str(binary / "pg_ctl"),
            "-D",
            str(data),
            "-o",
            options,
            "-l",
            str(directory / "log"),
            "-w",
            "start",
        ],
        check=True,
        capture_output=True,
    )
    _stop_with(os.getpid(), binary, directory)
    return PgCluster(directory=directory, port=port, bin=binary)


def _stop_with(pid: int, binary: Path, directory: Path) -> None:
    """A watchdog that stops the cluster and removes its directory once process ``pid``
    (the test session) is gone, even when it was killed and ran no finalizer."""
    script = (
        f"while kill -0 {pid} 2>/dev/null; do sleep 1; done; "
        f"runuser -u postgres -- {binary / 'pg_ctl'} -D {directory / 'data'} stop -m immediate "
        f">/dev/null 2>&1; rm -rf {directory}"
    )
    subprocess.Popen(
        ["sh", "-c", script],
        start_new_session=True,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


@pytest.fixture(scope="session")
def pg_cluster() -> Iterator[PgCluster]:
    cluster = start_cluster()
    try:
        from opsconsole.capabilities import register_all
        from opsconsole.store import open_db

        register_all()
        cluster.sql("CREATE DATABASE opsconsole_template")
        open_db(cluster.url("opsconsole_template")).close()
        cluster.template = "opsconsole_template"
        yield cluster
    finally:
        cluster.stop()
