"""Launching a task's runbook and linking the run to the incident.

A small adapter over the runbook engine (``opsconsole.runbooks``):
the launch is recorded on the timeline before the run starts (fail closed), the run
carries ``incident_id``, and its id and outcome land on the task and the timeline.
"""

from __future__ import annotations

import importlib
import re
from typing import TYPE_CHECKING, Any

from opsconsole.incidents.model import Incident, IncidentError, Task

if TYPE_CHECKING:
    from opsconsole.incidents.service import IncidentService
    from opsconsole.operator import Operator

__all__ = ["engine", "render_params", "run_task_runbook"]

_PLACEHOLDER = re.compile(r"\{\{\s*(\w+)\s*\}\}")


def render_params(task: Task, inc: Incident) -> dict[str, str]:
    """Fill ``{{ region }}``-style placeholders of a task's runbook params from the incident."""
    values = {
        "incident_id": inc.id,
        "region": inc.regions[0] if inc.regions else "",
        "regions": ",".join(inc.regions),
        "service": inc.services[0] if inc.services else "",
        "services": ",".join(inc.services),
        "severity": inc.severity,
        "category": inc.category,
    }

    def fill(match: re.Match[str]) -> str:
        name = match[1]
        if name not in values:
            raise IncidentError(
                f"task {task.id}: unknown placeholder {{{{ {name} }}}} in runbook params; "
                f"known: {', '.join(values)}"
            )
        return values[name]

    return {k: _PLACEHOLDER.sub(fill, v) for k, v in task.runbook_params.items()}


def engine() -> Any:
    """The runbook engine module, or a clear error while it is not installed."""
    try:
        return importlib.import_module("opsconsole.runbooks")
    except ModuleNotFoundError as exc:
        if exc.name not in ("opsconsole.runbooks",):
            raise
        raise IncidentError("the runbook engine (opsconsole.runbooks) is not available") from None


async def run_task_runbook(
    svc: IncidentService,
    incident_id: str,
    task_id: str,
    *,
    env: Any,
    operator: Operator,
    params: dict[str, str] | None = None,
) -> Any:
    """Run the task's runbook for the incident; returns the engine's ``RunResult``."""
    inc = svc.get(incident_id)
    task = inc.task(task_id)
    if not task.runbook:
        raise IncidentError(f"task {task.id} has no runbook")
    if not inc.is_open:
        raise IncidentError(f"{inc.id} is closed")
    values = {**render_params(task, inc), **(params or {})}
    rb = engine()
    book = rb.load_runbook(rb.find_runbook(task.runbook, svc.config))
    region = values.get("region") or None
    svc.record_run_start(inc.id, task.id, task.runbook, values, region=region)
    try:
        result = await rb.start_run(book, values, env=env, operator=operator, incident_id=inc.id)
    except Exception as exc:
        svc.link_run(inc.id, task.id, "-", task.runbook, "failed to start", str(exc), region=region)
        raise
    svc.link_run(
        inc.id, task.id, result.run_id, task.runbook, result.status, result.error, region=region
    )
    return result
