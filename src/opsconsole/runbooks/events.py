"""Events the runbook engine publishes on the :class:`~opsconsole.events.EventBus`.

The CLI renders them live and the TUI subscribes. Every text field is already redacted.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from opsconsole.events import Event

__all__ = [
    "ApprovalRequested",
    "RunFinished",
    "RunStarted",
    "StepFinished",
    "StepOutput",
    "StepStarted",
]


@dataclass(frozen=True, kw_only=True)
class RunStarted(Event):
    run_id: str
    runbook: str
    mode: str = "normal"
    resumed: bool = False
    parent_run: str | None = None


@dataclass(frozen=True, kw_only=True)
class StepStarted(Event):
    run_id: str
    step_id: str
    name: str
    action: str
    phase: str = "main"
    attempt: int = 1
    rendered: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, kw_only=True)
class StepOutput(Event):
    run_id: str
    step_id: str
    line: str
    stream: str = "stdout"
    host: str | None = None


@dataclass(frozen=True, kw_only=True)
class StepFinished(Event):
    run_id: str
    step_id: str
    status: str  # succeeded | failed | timed_out | skipped | interrupted | waiting_approval
    phase: str = "main"
    attempt: int = 1
    error: str | None = None
    duration_seconds: float = 0.0
    note: str | None = None


@dataclass(frozen=True, kw_only=True)
class ApprovalRequested(Event):
    run_id: str
    step_id: str
    requested_by: str
    message: str


@dataclass(frozen=True, kw_only=True)
class RunFinished(Event):
    run_id: str
    runbook: str
    status: str
    error: str | None = None
    measured: dict[str, float] = field(default_factory=dict)
