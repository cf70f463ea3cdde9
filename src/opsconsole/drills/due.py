"""Due dates: which of a drill's due dates are accounted for, and claiming new ones.

The database, not APScheduler, remembers what happened to every due date. A drill's
*anchor* is the latest moment up to which its due dates are accounted for: the last
due date recorded (run or missed), or when its current schedule was first seen.
:func:`claim` walks the schedule from the anchor to now, records each due date that can
no longer run as ``missed`` and begins a run for the latest one if it is still within
the grace window - all in one transaction, so a due date is never dropped nor run twice.
"""

from __future__ import annotations

import json
import sys
from datetime import datetime, timedelta
from typing import IO, TYPE_CHECKING, Any

import sqlite_utils

from opsconsole.drills import store
from opsconsole.drills.execute import DrillContext, begin_run
from opsconsole.store import immediate
from opsconsole.timeutil import isoformat, parse_when, utcnow

if TYPE_CHECKING:
    from opsconsole.drills.model import Drill

__all__ = ["JsonLog", "anchor", "anchor_key", "claim", "forget_anchor", "touch_anchor"]


class JsonLog:
    """One JSON object per line: ``{"ts", "event", ...fields}`` (None fields left out)."""

    def __init__(self, stream: IO[str] | None = None) -> None:
        self.stream = stream

    def __call__(self, event: str, **fields: Any) -> None:
        line = {"ts": isoformat(utcnow()), "event": event}
        line.update({k: v for k, v in fields.items() if v is not None})
        out = self.stream or sys.stdout
        out.write(json.dumps(line, default=str, ensure_ascii=False) + "\n")
        out.flush()


def anchor_key(drill: Drill) -> str:
    """What, when it changes, restarts the count of due dates (schedule, enabled, kind)."""
    sched = drill.schedule.describe() if drill.schedule else "unscheduled"
    return f"{drill.kind} {sched}{'' if drill.enabled else ' disabled'}"


def touch_anchor(
    db: sqlite_utils.Database, drill: str, schedule: str, now: datetime | None = None
) -> datetime:
    """Note when ``drill`` got its current schedule; returns that moment.

    A new drill, or one whose schedule changed, starts counting due dates from now.
    """
    now = now or utcnow()
    with immediate(db):
        row = db.execute(
            "SELECT schedule, since FROM drill_anchors WHERE drill = ?", [drill]
        ).fetchone()
        if row is not None and row[0] == schedule:
            return parse_when(row[1])
        db.execute(
            "INSERT INTO drill_anchors (drill, schedule, since) VALUES (?, ?, ?) "
            "ON CONFLICT (drill) DO UPDATE SET schedule = excluded.schedule, "
            "since = excluded.since",
            (drill, schedule, isoformat(now)),
        )
    return now


def forget_anchor(db: sqlite_utils.Database, drill: str) -> None:
    db.execute("DELETE FROM drill_anchors WHERE drill = ?", [drill])


def anchor(
    db: sqlite_utils.Database, drill: str, one_off: datetime | None = None
) -> datetime | None:
    """The latest moment up to which ``drill``'s due dates are accounted for.

    ``one_off``: the drill's explicit one-off time. It is due even if the definition
    was saved after it (it then runs within the grace window, or is recorded missed).
    """
    row = db.execute(
        "SELECT MAX(scheduled_for) FROM drill_runs WHERE drill = ? AND scheduled_for IS NOT NULL",
        [drill],
    ).fetchone()
    last = parse_when(row[0]) if row and row[0] else None
    row = db.execute("SELECT since FROM drill_anchors WHERE drill = ?", [drill]).fetchone()
    since = parse_when(row[0]) if row else None
    if since is not None and one_off is not None:
        since = min(since, one_off - timedelta(microseconds=1))
    candidates = [t for t in (last, since) if t is not None]
    return max(candidates) if candidates else None


def claim(
    ctx: DrillContext, name: str, now: datetime | None = None, *, busy: bool = False
) -> store.DrillRun | None:
    """Account for every due date of drill ``name`` up to ``now``, atomically.

    Records each due date that can no longer run as ``missed``; begins (and returns) a
    run for the latest if it is within the grace window - unless ``busy`` (a run of
    this drill is still going: at most one at a time), which makes it missed too.
    Tabletop drills are held by people: their due date is logged and audited as a
    reminder and not recorded as a run.
    """
    from opsconsole.drills.schedule import make_trigger, occurrences

    drill = ctx.drills.drills.get(name)
    if drill is None or drill.schedule is None or not drill.enabled:
        return None
    now = now or utcnow()
    trigger = make_trigger(drill.schedule.cron, drill.schedule.at, drill.schedule.timezone)
    grace = ctx.drills.grace(drill)
    with immediate(ctx.db):
        since = anchor(ctx.db, name, drill.schedule.at)
        if since is None:
            touch_anchor(ctx.db, name, anchor_key(drill), now)
            return None
        due = occurrences(trigger, since, now)
        if not due:
            return None
        latest = due[-1]
        if drill.kind == "tabletop":
            ctx.db.execute(
                "UPDATE drill_anchors SET since = ? WHERE drill = ?", (isoformat(latest), name)
            )
            ctx.audit.record("drill.due", name, {"kind": "tabletop", "due": isoformat(latest)})
            ctx.log(
                "drill.due",
                drill=name,
                kind="tabletop",
                due=isoformat(latest),
                hint=f"hold it and record it with `opsconsole drill record {name}`",
            )
            return None
        runnable = (now - latest).total_seconds() <= grace
        for moment in due[:-1] if runnable else due:
            _missed(ctx, name, drill, moment, now, grace, coalesced=runnable)
        if runnable and busy:
            _missed(
                ctx,
                name,
                drill,
                latest,
                now,
                grace,
                coalesced=False,
                reason="the previous run of this drill was still running",
            )
            return None
        if runnable:
            late = (now - latest).total_seconds()
            return begin_run(
                ctx,
                name,
                drill,
                trigger="schedule" if late < 60 else "catch-up",
                scheduled_for=latest,
            )
    return None


def _missed(
    ctx: DrillContext,
    name: str,
    drill: Drill,
    moment: datetime,
    now: datetime,
    grace: float,
    *,
    coalesced: bool,
    reason: str | None = None,
) -> None:
    late = (now - moment).total_seconds()
    reason = reason or (
        "no scheduler ran it in time; coalesced into the run for a later due date"
        if coalesced
        else f"no scheduler ran it: due {isoformat(moment)}, noticed {late:.0f}s later "
        f"(grace {grace:g}s)"
    )
    run = store.DrillRun(
        id=store.new_run_id(moment),
        drill=name,
        plan=drill.plan,
        kind=drill.kind,
        status="missed",
        trigger="schedule",
        actor=ctx.audit.actor,
        interface=ctx.audit.interface,
        scheduled_for=moment,
        runbook=drill.runbook,
        target=drill.target,
        rto_objective=drill.objectives.rto_seconds,
        rpo_objective=drill.objectives.rpo_seconds,
        reason=reason,
    )
    store.insert_run(ctx.db, run)
    ctx.audit.record(
        "drill.missed", name, {"run": run.id, "due": isoformat(moment), "reason": reason}, "missed"
    )
    ctx.log("drill.missed", drill=name, run=run.id, due=isoformat(moment), reason=reason)
