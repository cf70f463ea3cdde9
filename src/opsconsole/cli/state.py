"""Per-invocation state shared by every command: global options and lazily opened resources.

Heavy imports (pydantic models, sqlite-utils) happen on first use, so ``--help`` and
commands that need neither stay fast.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import typer

if TYPE_CHECKING:
    import sqlite_utils
    from rich.console import Console
    from rich.table import Table

    from opsconsole.audit import AuditLog
    from opsconsole.auditing.service import AuditContext
    from opsconsole.config import Config

__all__ = ["State", "console", "err_console", "print_json", "print_table", "state"]


@dataclass
class State:
    config_dir: Path | None = None
    db_path: Path | str | None = None
    # ``--as``: an "on behalf of" annotation only; the actor is always the OS account.
    on_behalf_of: str | None = None
    interface: str = "cli"
    _config: Config | None = field(default=None, repr=False)
    _db: sqlite_utils.Database | None = field(default=None, repr=False)
    _audit: AuditLog | None = field(default=None, repr=False)
    _audit_ctx: AuditContext | None = field(default=None, repr=False)

    def config(self) -> Config:
        if self._config is None:
            from opsconsole.config import load_config

            self._config = load_config(self.config_dir)
        return self._config

    def optional_config(self) -> Config | None:
        """The config if one can be found; a found-but-broken config is still an error."""
        from opsconsole.errors import ConfigError

        try:
            return self.config()
        except ConfigError as exc:
            if len(exc.problems) == 1 and ("no config directory found" in exc.problems[0][2]):
                return None
            raise

    def database_path(self) -> Path | str:
        """The store's location: ``--db``, ``OPSCONSOLE_DB``, settings, or the default - a
        SQLite file or a PostgreSQL URL."""
        from opsconsole.store import resolve_db_path

        if self.db_path is not None:
            return resolve_db_path(self.db_path)
        cfg = self.optional_config()
        configured = cfg.database if cfg and cfg.settings.database else None
        return resolve_db_path(None, configured)

    def db(self) -> sqlite_utils.Database:
        if self._db is None:
            from opsconsole.capabilities import register_all
            from opsconsole.store import open_db

            register_all()
            cfg = self.optional_config()
            group = cfg.settings.shared_group if cfg else None
            self._db = open_db(self.database_path(), group=group)
        return self._db

    def audit_key(self) -> bytes | None:
        from opsconsole.audit import load_key

        cfg = self.optional_config()
        return load_key(cfg.resolve(cfg.settings.audit_key_file) if cfg else None)

    def audit_context(self) -> AuditContext:
        """HMAC keys, the checkpoint signing keys and the witnesses from settings."""
        if self._audit_ctx is None:
            from opsconsole.auditing.service import audit_context

            self._audit_ctx = audit_context(self.optional_config())
        return self._audit_ctx

    def audit(self) -> AuditLog:
        if self._audit is None:
            from opsconsole.identity import current

            # The OS account; on PostgreSQL the session user of the connection.
            me = current(self.on_behalf_of, self.db())
            self._audit = self.audit_for(me.name, self.interface)
        return self._audit

    def audit_for(self, actor: str, interface: str) -> AuditLog:
        """An audit log for ``actor`` (the OS account, or a service identity) that has
        the config's access policy applied to the database (see :mod:`opsconsole.access`),
        the configured keys, and automatic checkpoints (see :mod:`opsconsole.auditing`)."""
        from opsconsole.access import sync_policy

        audit = self.audit_context().audit_log(
            self.db(), actor=actor, interface=interface, on_behalf_of=self.on_behalf_of
        )
        if audit.after_commit:
            import atexit

            # Events recorded inside a command's transaction: announce them (e.g. the
            # automatic checkpoint every N events) once it has committed.
            atexit.register(audit.run_after_commit)
        cfg = self.optional_config()
        warning = sync_policy(audit, cfg.directory if cfg else None)
        if warning:
            typer.echo(warning, err=True)
        return audit

    def readonly_db(self) -> sqlite_utils.Database:
        """The database opened read-only (an evidence copy on read-only media works).

        A database that does not exist yet is created first, as any command would.
        """
        from opsconsole.store import open_readonly

        path = self.database_path()
        if isinstance(path, Path) and not path.exists():
            self.db()
        return open_readonly(path)

    def record(
        self,
        action: str,
        target: str = "",
        details: dict[str, Any] | None = None,
        outcome: str = "ok",
    ) -> int:
        return self.audit().record(action, target, details, outcome)


state = State()


def console() -> Console:
    from rich.console import Console

    return Console(highlight=False)


def err_console() -> Console:
    from rich.console import Console

    return Console(stderr=True, highlight=False)


def print_table(table: Table, keep: Iterable[str]) -> None:
    """Print a Rich table whose ``keep`` columns (ids, paths) are never wrapped or shortened.

    Rich fits a table to the terminal, or to 80 columns when the output is piped, by
    wrapping and finally truncating cells (``ap-south…`` for both ``ap-south-1`` and
    ``ap-southeast-1``). Here other columns still wrap; a borderless table first closes up to
    one space between columns; if it still does not fit, it is printed wider than the
    terminal rather than cut.
    """
    from rich.cells import cell_len
    from rich.measure import Measurement

    out = console()
    wanted = set(keep)
    extra = 0
    for column in table.columns:
        if column.header not in wanted:
            continue
        column.no_wrap = True
        cells = [str(column.header), *(str(c) for c in column.cells)]
        # Rich's minimum for a column is its longest word; a kept column needs all of it.
        extra += max(cell_len(c) for c in cells) - max(
            (cell_len(w) for c in cells for w in c.split()), default=0
        )

    def needed() -> int:
        # Measured without the terminal's limit: Measurement.get clamps to the given width.
        return Measurement.get(out, out.options.update_width(100_000), table).minimum + extra

    if needed() > out.width and table.box is None:
        table.padding = (0, 1, 0, 0)  # one space between columns before anything else
    if needed() > out.width:
        from rich.console import Console

        out = Console(highlight=False, width=needed())
    out.print(table)


def print_json(data: Any) -> None:
    import json

    typer.echo(json.dumps(data, indent=2, ensure_ascii=False, default=str))
