"""Open incidents for the dashboard strip, through the incidents capability."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from opsconsole.tui.feed import IncidentView

if TYPE_CHECKING:
    from opsconsole.tui.context import TuiContext

__all__ = ["incident_service", "open_incidents"]


def incident_service(ctx: TuiContext) -> Any:
    """The same :class:`IncidentService` the CLI uses, auditing as interface ``tui``."""
    from opsconsole.incidents import IncidentService

    return IncidentService(ctx.db, ctx.audit, ctx.config, bus=ctx.bus, clock=ctx.clock)


def open_incidents(ctx: TuiContext) -> list[IncidentView]:
    """Open incidents, each with its nearest running deadline (or none)."""
    try:
        svc = incident_service(ctx)
    except ModuleNotFoundError:
        return []
    out: list[IncidentView] = []
    for inc in svc.list_incidents(open_only=True):
        running = [
            d for d in svc.deadlines(inc) if d.due is not None and d.state in ("running", "overdue")
        ]
        nearest = min(running, key=lambda d: d.due) if running else None
        out.append(
            IncidentView(
                id=inc.id,
                title=inc.title,
                severity=inc.severity,
                status=inc.status,
                deadline_name=nearest.deadline.title if nearest else None,
                deadline_due=nearest.due if nearest else None,
            )
        )
    return out
