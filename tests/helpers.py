"""Running the CLI from tests: in-process (fast) or as a real subprocess."""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import opsconsole

SRC = Path(opsconsole.__file__).resolve().parent.parent


@dataclass
class Result:
    exit_code: int
    stdout: str
    stderr: str

    @property
    def output(self) -> str:
        return self.stdout + self.stderr


def cli(*args: str, input: str | None = None, env: dict[str, str] | None = None) -> Result:
    """Invoke the CLI in this process, exactly as ``main()`` would handle errors."""
    from typer.testing import CliRunner

    from opsconsole.cli.main import app
    from opsconsole.errors import OpsError

    runner = CliRunner()
    result = runner.invoke(app, list(args), input=input, env=env, catch_exceptions=True)
    stderr = result.stderr if result.stderr_bytes is not None else ""
    exc = result.exception
    if isinstance(exc, OpsError):
        return Result(int(exc.exit_code), result.stdout, stderr + f"error: {exc}\n")
    if exc is not None and not isinstance(exc, SystemExit):
        raise exc
    return Result(result.exit_code, result.stdout, stderr)


def cli_subprocess(
    *args: str, input: str | None = None, env: dict[str, str] | None = None, timeout: float = 60
) -> subprocess.CompletedProcess[str]:
    """Run ``python -m opsconsole`` as a separate process with this tree's sources."""
    full_env = dict(os.environ)
    full_env["PYTHONPATH"] = str(SRC) + os.pathsep + full_env.get("PYTHONPATH", "")
    if env:
        full_env.update(env)
    return subprocess.run(
        [sys.executable, "-m", "opsconsole", *args],
        input=input,
        env=full_env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def refuse_inserts(db: Any, table: str, message: str = "disk full") -> None:
    """A trigger that makes every INSERT into ``table`` fail, on either engine (a stand-in
    for a full disk or a revoked grant: the write fails inside the action's transaction)."""
    if db.engine == "postgresql":
        db.execute(
            f"CREATE FUNCTION refuse_{table}() RETURNS trigger LANGUAGE plpgsql AS "
            f"$$ BEGIN RAISE EXCEPTION '{message}'; END $$"
        )
        db.execute(
            f"CREATE TRIGGER refuse BEFORE INSERT ON {table} "
            f"FOR EACH ROW EXECUTE FUNCTION refuse_{table}()"
        )
    else:
        db.execute(
            f"CREATE TRIGGER refuse BEFORE INSERT ON {table} "
            f"BEGIN SELECT RAISE(ABORT, '{message}'); END"
        )


def drop_append_only(db: Any, table: str = "audit_events") -> None:
    """What someone with write access to the database (the owner, or an attacker holding
    its credentials) does before editing history: drop the append-only triggers."""
    on = f" ON {table}" if db.engine == "postgresql" else ""
    for op in ("update", "delete"):
        db.execute(f"DROP TRIGGER IF EXISTS {table}_no_{op}{on}")


def dump(db: Any) -> str:
    """Everything the database holds, as text (to prove a value is nowhere in it): SQLite's
    ``iterdump``; on PostgreSQL every row of every table (bytes as their Python repr)."""
    if db.engine != "postgresql":
        return "\n".join(db.conn.iterdump())
    lines = []
    for table in sorted(db.table_names()):
        for row in db.execute(f"SELECT * FROM {table}").fetchall():
            lines.append(f"{table}: {row!r}")
    return "\n".join(lines)


def set_read_only(db: Any, on: bool) -> None:
    """Make this connection's database refuse writes (``PRAGMA query_only`` on SQLite, a
    read-only session on PostgreSQL) - what a read-only file or a revoked grant does."""
    if db.engine == "postgresql":
        db.execute(f"SET default_transaction_read_only = {'on' if on else 'off'}")
    else:
        db.execute(f"PRAGMA query_only = {'ON' if on else 'OFF'}")


def save_copy(location: Any, to: Path) -> None:
    """An older copy of the whole database, as a backup would keep it: a SQLite file copy
    (through the backup API), or a ``pg_dump`` archive of the PostgreSQL database."""
    import sqlite3

    if isinstance(location, str):
        from tests.pg import pg_bin

        subprocess.run(
            [str(pg_bin() / "pg_dump"), "-Fc", "-f", str(to), "-d", location],  # type: ignore[operator]
            check=True,
            capture_output=True,
        )
        return
    src, dst = sqlite3.connect(location), sqlite3.connect(to)
    src.backup(dst)
    src.close()
    dst.close()


def put_back(copy: Path, location: Any) -> None:
    """Restore a copy made by :func:`save_copy` over the live database (close it first)."""
    import sqlite3

    if isinstance(location, str):
        from tests.pg import pg_bin

        subprocess.run(
            [str(pg_bin() / "pg_restore"), "--clean", "--if-exists", "-d", location, str(copy)],  # type: ignore[operator]
            check=True,
            capture_output=True,
        )
        return
    src, dst = sqlite3.connect(copy), sqlite3.connect(location)
    src.backup(dst)
    src.close()
    dst.close()


@contextlib.contextmanager
def opened(location: Any) -> Iterator[Any]:
    """The test's database (a SQLite path or a PostgreSQL URL) opened for a look, closed
    after: how a test peeks at what the code under test wrote, on either engine."""
    from opsconsole.store import open_db

    db = open_db(location, migrate=False)
    try:
        yield db
    finally:
        db.close()


def acting_as(location: Any) -> str:
    """Who the CLI records as the actor on this database: the OS account on SQLite, the
    authenticated session user on PostgreSQL."""
    from opsconsole.identity import current

    with opened(location) as db:
        return current(db=db).name


def allow_inserts(db: Any, table: str) -> None:
    """Remove the trigger :func:`refuse_inserts` made."""
    on = f" ON {table}" if db.engine == "postgresql" else ""
    db.execute(f"DROP TRIGGER refuse{on}")
