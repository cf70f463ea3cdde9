"""The data the engine API takes and returns: :class:`RunEnv`, :class:`RunResult`,
:class:`PlannedStep`."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any

from opsconsole.events import EventBus

if TYPE_CHECKING:
    import sqlite_utils

    from opsconsole.audit import AuditLog
    from opsconsole.config import Config

__all__ = ["RUN_STATUSES", "PlannedStep", "RunEnv", "RunResult"]

RUN_STATUSES = (
    "succeeded",
    "failed",
    "timed_out",
    "rolled_back",
    "waiting_approval",
    "aborted",
    "interrupted",
)


@dataclass
class RunEnv:
    """What a run needs from its surroundings. ``audit.actor`` is who runs it."""

    db: sqlite_utils.Database
    audit: AuditLog
    config: Config
    bus: EventBus = field(default_factory=EventBus)


@dataclass
class RunResult:
    run_id: str
    status: str  # one of RUN_STATUSES
    started_at: datetime
    finished_at: datetime | None = None
    error: str | None = None
    measured: dict[str, float] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return self.status == "succeeded"


@dataclass
class PlannedStep:
    """One step of a dry run, rendered with its final (redacted) values.

    ``will_run``: ``yes`` | ``no`` (its ``when`` is false, or a drill skips it) |
    ``unknown`` (its ``when`` depends on a value only a real run produces).
    ``executed``: it is read-only (``check: true``) and really ran during the plan.
    """

    phase: str
    index: int
    id: str
    name: str
    action: str
    rendered: dict[str, Any]
    will_run: str = "yes"
    executed: bool = False
    status: str | None = None  # for executed steps: succeeded | failed | timed_out
    output: str = ""
    notes: list[str] = field(default_factory=list)
    depends_on_unknown: bool = False
