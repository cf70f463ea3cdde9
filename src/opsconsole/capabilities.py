"""The capabilities whose tables an entry point (CLI, TUI, serve, scheduler) opens.

Each capability registers its own migrations when its store module is imported (see
:mod:`opsconsole.store.migrations`); the store core knows none of them. This list is the
composition root's: an entry point imports it before opening the database so that a
command finds every table, whichever capability it touches first. A program that uses
one capability (a test, a script) imports just that one.
"""

from __future__ import annotations

import importlib

__all__ = ["SCHEMA_MODULES", "register_all"]

SCHEMA_MODULES = (
    "opsconsole.audit",
    "opsconsole.leases",
    "opsconsole.incidents.store",
    "opsconsole.drills.store",
    "opsconsole.health.storage",
    "opsconsole.runbooks.state",
    "opsconsole.runbooks.approvals",
    "opsconsole.outbox",
    "opsconsole.incidents.alertgroups",
    "opsconsole.rules.state",
    "opsconsole.changes",  # PostgreSQL: audit rows notify listeners (after opsconsole.audit)
)


def register_all() -> None:
    """Import every capability's store module (each registers its migrations)."""
    for name in SCHEMA_MODULES:
        importlib.import_module(name)
