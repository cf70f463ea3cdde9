"""Numbered schema changes, registered by each capability and applied per engine.

The store core knows no capability: a capability module creates its own
``Migrations("opsconsole.<name>")`` and decorates its steps; creating the set registers
it, so importing the capability is what makes :func:`opsconsole.store.open_db` create its
tables. A command opens only what it imports.

One migration function serves both engines: it issues portable DDL through
``db.execute`` (the PostgreSQL store maps SQLite's column types, see
:func:`opsconsole.store.postgres.pg_ddl`), and branches on ``db.engine`` where the engines
really differ (triggers). Each engine records what it applied in its own database:
SQLite in sqlite-utils' ``_sqlite_migrations`` table (so databases made before this
module existed keep their history), PostgreSQL in ``opsconsole_migrations``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

__all__ = ["REGISTRY", "Migration", "Migrations"]

MigrationFn = Callable[[Any], None]


@dataclass(frozen=True)
class Migration:
    name: str
    fn: MigrationFn


class Migrations:
    """One capability's ordered migrations (``@migrations(name="0001_...")``)."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.steps: list[Migration] = []
        REGISTRY[name] = self

    def __call__(self, *, name: str) -> Callable[[MigrationFn], MigrationFn]:
        def register(fn: MigrationFn) -> MigrationFn:
            if any(m.name == name for m in self.steps):
                raise ValueError(f"migration {name!r} is already registered in {self.name}")
            self.steps.append(Migration(name, fn))
            return fn

        return register

    def __repr__(self) -> str:
        return f"<Migrations {self.name}: {', '.join(m.name for m in self.steps)}>"


# Registration order is application order (a module's import order).
REGISTRY: dict[str, Migrations] = {}
