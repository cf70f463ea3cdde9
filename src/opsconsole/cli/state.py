"""Per-invocation state shared by every command: global options and lazily opened resources.

Heavy imports (pydantic models, sqlite-utils) happen on first use, so ``--help`` and
commands that need neither stay fast.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import typer

if TYPE_CHECKING:
    import sqlite_utils
    from rich.console import Console

    from opsconsole.audit import AuditLog
    from opsconsole.config import Config

__all__ = ["State", "state"]


@dataclass
class State:
    config_dir: Path | None = None
    db_path: Path | None = None
    actor: str | None = None
    interface: str = "cli"
    _config: Config | None = field(default=None, repr=False)
    _db: sqlite_utils.Database | None = field(default=None, repr=False)
    _audit: AuditLog | None = field(default=None, repr=False)

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

    def database_path(self) -> Path:
        from opsconsole.store import resolve_db_path

        if self.db_path is not None:
            return self.db_path
        cfg = self.optional_config()
        return resolve_db_path(None, cfg.resolve(cfg.settings.database) if cfg else None)

    def db(self) -> sqlite_utils.Database:
        if self._db is None:
            from opsconsole.store import open_db

            self._db = open_db(self.database_path())
        return self._db

    def audit_key(self) -> bytes | None:
        from opsconsole.audit import load_key

        cfg = self.optional_config()
        return load_key(cfg.resolve(cfg.settings.audit_key_file) if cfg else None)

    def audit(self) -> AuditLog:
        if self._audit is None:
            from opsconsole.audit import AuditLog

            self._audit = AuditLog(
                self.db(),
                actor=self.actor,
                interface=self.interface,  # type: ignore[arg-type]
                key=self.audit_key(),
            )
        return self._audit

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


def print_json(data: Any) -> None:
    import json

    typer.echo(json.dumps(data, indent=2, ensure_ascii=False, default=str))
