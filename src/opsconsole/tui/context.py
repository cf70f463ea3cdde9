"""What every screen of the console needs: config, database, audit log, event bus.

Screens never open their own resources; the app factory builds one :class:`TuiContext`
so tests can hand the console a temporary database and the demo inventory.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any

from opsconsole.audit import AuditLog
from opsconsole.events import EventBus
from opsconsole.timeutil import utcnow

if TYPE_CHECKING:
    import sqlite_utils

    from opsconsole.config import Config
    from opsconsole.store import Location

__all__ = ["MUTATING_ACTIONS", "TuiContext"]

# Actions (Textual action names, on any screen) that change something. ``--read-only``
# hides every binding, button and command-palette entry whose action is listed here.
MUTATING_ACTIONS: frozenset[str] = frozenset(
    {
        "failover",
        "run_runbook",
        "resume_run",
        "abort_run",
        "rollback_run",
        "launch_runbook",
        "task_waive",
        "decide",
        "assign_role",
        "approve_run",
        "declare_incident",
        "task_done",
        "task_skip",
        "task_start",
        "launch_task_runbook",
        "add_note",
        "add_update",
        "set_status",
        "export_report",
        "run_drill",
    }
)


@dataclass
class TuiContext:
    """Resources shared by every screen; ``audit`` records with interface ``tui``."""

    db: sqlite_utils.Database
    audit: AuditLog
    config: Config | None = None
    read_only: bool = False
    bus: EventBus = field(default_factory=EventBus)
    # "Now" for every clock the console shows (tests fix it for snapshots).
    clock: Callable[[], datetime] = utcnow

    @property
    def db_path(self) -> Location:
        """Where the database is (a file or a URL), so worker threads can open their own
        connection."""
        return self.db.location

    @property
    def actor(self) -> str:
        return self.audit.actor

    def record(
        self,
        action: str,
        target: str = "",
        details: dict[str, Any] | None = None,
        outcome: str = "ok",
    ) -> int:
        """Append an audit event for a TUI action (raises AuditWriteError: fail closed)."""
        return self.audit.record(action, target, details, outcome)
