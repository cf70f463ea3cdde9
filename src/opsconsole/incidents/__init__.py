"""Incident command: incidents, playbooks, deadlines, timeline, report, alert intake.

Plain Python: the CLI and the TUI both call :class:`IncidentService`. Names are
imported lazily so that opening the database (which imports this package's migrations)
does not pull in pydantic.
"""

from __future__ import annotations

import importlib
from typing import Any

__all__ = [
    "ROLES",
    "SEVERITIES",
    "STATUSES",
    "TRANSITIONS",
    "DeadlineState",
    "Incident",
    "IncidentError",
    "IncidentEvent",
    "IncidentService",
    "IncidentView",
    "IngestResult",
    "Playbook",
    "Task",
    "TimelineEntry",
    "find_playbook",
    "human_duration",
    "load_playbook",
    "run_task_runbook",
]

_WHERE = {
    "DeadlineState": "deadlines",
    "human_duration": "deadlines",
    "Playbook": "playbook",
    "find_playbook": "playbook",
    "load_playbook": "playbook",
    "IncidentService": "service",
    "IncidentView": "service",
    "IngestResult": "intake",
    "run_task_runbook": "runlink",
}


def __getattr__(name: str) -> Any:
    if name not in __all__:
        raise AttributeError(f"module 'opsconsole.incidents' has no attribute {name!r}")
    module = importlib.import_module(f"opsconsole.incidents.{_WHERE.get(name, 'model')}")
    return getattr(module, name)
