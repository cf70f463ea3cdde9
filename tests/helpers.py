"""Running the CLI from tests: in-process (fast) or as a real subprocess."""

from __future__ import annotations

import os
import subprocess
import sys
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


def allow_inserts(db: Any, table: str) -> None:
    """Remove the trigger :func:`refuse_inserts` made."""
    on = f" ON {table}" if db.engine == "postgresql" else ""
    db.execute(f"DROP TRIGGER refuse{on}")


def stored_text(db: Any) -> str:
    """Everything the database holds, as text (to show that a secret was never stored):
    SQLite's SQL dump, or every row of every table on PostgreSQL."""
    if db.engine == "sqlite":
        return "\n".join(db.conn.iterdump())
    return "\n".join(
        row[0]
        for table in sorted(db.table_names())
        for row in db.execute(f"SELECT t::text FROM {table} AS t").fetchall()
    )
