"""Reminders that come from the clock, not from a change: a deadline approaching and a
status update falling due. ``serve`` checks every open incident periodically; each
reminder is an outbox message with a de-duplication key, so it is written once however
often (and by however many processes) the check runs."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import TYPE_CHECKING

from opsconsole.incidents.deadlines import human_duration
from opsconsole.outbox import enqueue
from opsconsole.timeutil import isoformat

if TYPE_CHECKING:
    from opsconsole.incidents import IncidentService

__all__ = ["remind"]


def remind(svc: IncidentService, now: datetime, warn_before: timedelta) -> list[int]:
    """Record missed deadlines (via ``view``) and queue approaching-deadline and
    status-update-due reminders; the new outbox ids."""
    from opsconsole.errors import OpsError
    from opsconsole.incidents.store import list_ids

    out: list[int] = []
    for inc_id in list_ids(svc.db, open_only=True):
        try:
            view = svc.view(inc_id)  # records deadlines that passed unmet (audited)
        except OpsError:
            continue
        inc = view.incident
        if inc.status in ("resolved", "closed"):
            continue
        for s in view.deadlines:
            if s.state != "running" or s.due is None or s.due - now > warn_before:
                continue
            d = s.deadline
            new = enqueue(
                svc.db,
                "incident.deadline_approaching",
                f"{inc.id}: {d.title} due in {human_duration(s.due - now)}",
                f"{d.title} [{d.jurisdiction}, {d.citation}] is due {isoformat(s.due)[:16]}Z "
                f"(in {human_duration(s.due - now)}).",
                subject=inc.id,
                data={
                    "incident": inc.id,
                    "deadline": d.id,
                    "due": isoformat(s.due),
                    "severity": inc.severity,
                },
                dedup_key=f"deadline-approaching:{inc.id}:{d.id}",
            )
            if new is not None:
                out.append(new)
        due = view.update_due
        if due is not None and now >= due:
            new = enqueue(
                svc.db,
                "incident.status_update_due",
                f"{inc.id}: status update due",
                f"The last status update of {inc.id} ({inc.title}) was "
                f"{human_duration(now - view.last_update)} ago; one was due "
                f"{isoformat(due)[:16]}Z. Post one with `opsconsole incident update {inc.id}`.",
                subject=inc.id,
                data={"incident": inc.id, "due": isoformat(due), "severity": inc.severity},
                dedup_key=f"update-due:{inc.id}:{isoformat(due)}",
            )
            if new is not None:
                out.append(new)
    return out
