"""Running a live drill: the production guard, the runbook run in drill mode, and the
record of what it measured against the drill's objectives.

A drill run is recorded in two audited steps: :func:`begin_run` commits the ``running``
row with its ``drill.run.started`` event *before* anything touches the target (fail
closed); :func:`finish_live` runs the runbook and commits the result with
``drill.run.finished``. Only :func:`execute_runbook` knows the runbook engine.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from opsconsole.drills import plans, store
from opsconsole.drills.loader import check_target
from opsconsole.drills.store import DrillRun
from opsconsole.timeutil import isoformat, utcnow

if TYPE_CHECKING:
    import sqlite_utils

    from opsconsole.audit import AuditLog
    from opsconsole.config import Config
    from opsconsole.drills.model import Drill, DrillsFile
    from opsconsole.operator import Operator

__all__ = [
    "DrillContext",
    "LiveOutcome",
    "begin_run",
    "evaluate",
    "execute_runbook",
    "finish_live",
    "run_drill",
]

Emit = Callable[..., None]


def _no_log(event: str, **fields: Any) -> None:
    return None


@dataclass
class DrillContext:
    """What running and recording a drill needs."""

    db: sqlite_utils.Database
    audit: AuditLog
    config: Config
    drills: DrillsFile
    log: Emit = _no_log
    on_event: Callable[[Any], None] | None = None  # runbook events, e.g. to show progress


@dataclass
class LiveOutcome:
    """What the runbook engine reported for one drill-mode run."""

    status: str  # the run's status: succeeded, failed, timed_out, ...
    run_id: str | None = None
    error: str | None = None
    measured: dict[str, float] = field(default_factory=dict)
    started_at: datetime | None = None
    finished_at: datetime | None = None


async def execute_runbook(
    drill: Drill, ctx: DrillContext, operator: Operator, on_run_id: Callable[[str], None]
) -> LiveOutcome:
    """Run the drill's runbook once, in drill mode, through the runbook engine."""
    try:
        from opsconsole.runbooks import (
            RunEnv,
            find_runbook,
            load_runbook,
            rollback_run,
            start_run,
        )
    except ImportError as exc:
        return LiveOutcome("failed", error=f"the runbook engine is not available ({exc})")
    from opsconsole.events import Event, EventBus
    from opsconsole.operator import NeedsAPerson, UnattendedOperator

    bus = EventBus()

    def capture(event: Event) -> None:
        run_id = getattr(event, "run_id", None)
        if run_id:
            on_run_id(run_id)
        step_id = getattr(event, "step_id", None)
        if step_id and isinstance(operator, UnattendedOperator) and event.kind == "StepStarted":
            # So that "needs a person" names the step it happened at.
            operator.where = f"step {step_id}"

    bus.subscribe(capture)
    if ctx.on_event is not None:
        bus.subscribe(ctx.on_event)
    assert drill.runbook is not None
    runbook = load_runbook(find_runbook(drill.runbook, ctx.config))
    env = RunEnv(db=ctx.db, audit=ctx.audit, config=ctx.config, bus=bus)
    try:
        result = await start_run(
            runbook, dict(drill.params), env=env, operator=operator, mode="drill"
        )
    except NeedsAPerson as exc:
        return LiveOutcome("failed", error=str(exc))
    status, fail_back_error = result.status, None
    if drill.fail_back and result.status == "succeeded":
        # The fail-back is part of the drill: the target must end in normal service.
        try:
            back = await rollback_run(result.run_id, env=env, operator=operator)
        except NeedsAPerson as exc:
            back = None
            fail_back_error = f"fail-back: {exc}"
        if back is not None and back.status != "rolled_back":
            fail_back_error = f"fail-back ended {back.status}: {back.error or 'no detail'}"
        if fail_back_error:
            status = "failed"
    measured: dict[str, float] = {}
    for key, value in (result.measured or {}).items():
        try:
            measured[key] = float(value)
        except (TypeError, ValueError):
            continue  # a report value that is not a number is not a measurement
    error = result.error
    if error and "needs a person at" in error:
        error = error[error.index("needs a person at") :]
    error = fail_back_error or error
    return LiveOutcome(
        status=status,
        run_id=result.run_id,
        error=error,
        measured=measured,
        started_at=result.started_at,
        finished_at=result.finished_at,
    )


def begin_run(
    ctx: DrillContext,
    name: str,
    drill: Drill,
    *,
    trigger: str,
    scheduled_for: datetime | None = None,
) -> DrillRun:
    """Record the start of a drill run (or its refusal by the production guard).

    Joins the caller's transaction if there is one, so a scheduler can claim a due
    date and start its run atomically.
    """
    now = utcnow()
    refused = check_target(drill, ctx.config.inventory)
    run = DrillRun(
        id=store.new_run_id(now),
        drill=name,
        plan=drill.plan,
        kind=drill.kind,
        status="refused" if refused else "running",
        trigger=trigger,
        actor=ctx.audit.actor,
        interface=ctx.audit.interface,
        scheduled_for=scheduled_for,
        started_at=now,
        finished_at=now if refused else None,
        runbook=drill.runbook,
        target=drill.target,
        rto_objective=drill.objectives.rto_seconds,
        rpo_objective=drill.objectives.rpo_seconds,
        reason=refused,
        findings=[refused] if refused else [],
    )
    details = {
        "run": run.id,
        "plan": drill.plan,
        "kind": drill.kind,
        "trigger": trigger,
        "runbook": drill.runbook,
        "target": drill.target,
        "params": drill.params,
        "scheduled_for": isoformat(scheduled_for) if scheduled_for else None,
    }
    action, outcome = ("drill.run.refused", "refused") if refused else ("drill.run.started", "ok")
    with store.audited(ctx.db, ctx.audit, action, name, {**details, "reason": refused}, outcome):
        store.insert_run(ctx.db, run)
    ctx.log(
        action,
        drill=name,
        run=run.id,
        trigger=trigger,
        reason=refused,
        scheduled_for=isoformat(scheduled_for) if scheduled_for else None,
    )
    return run


def evaluate(drill: Drill, outcome: LiveOutcome) -> dict[str, Any]:
    """The recorded verdict: measurements, pass/fail per objective, findings."""
    succeeded = outcome.status == "succeeded"
    # A run that did not finish did not recover: its duration is no recovery time.
    rto = outcome.measured.get("rto_seconds") if succeeded else None
    if rto is None and succeeded and outcome.started_at and outcome.finished_at:
        rto = (outcome.finished_at - outcome.started_at).total_seconds()
    rpo = outcome.measured.get("rpo_seconds") if succeeded else None
    obj = drill.objectives
    rto_met = None if obj.rto_seconds is None or rto is None else rto <= obj.rto_seconds
    rpo_met = None if obj.rpo_seconds is None or rpo is None else rpo <= obj.rpo_seconds
    findings: list[str] = []
    if not succeeded:
        findings.append(f"runbook run {outcome.status}: {outcome.error or 'no reason given'}")
    if rto_met is False:
        findings.append(f"RTO {rto:.1f}s exceeded the objective of {obj.rto_seconds:g}s")
    if rpo_met is False:
        findings.append(f"RPO {rpo:.1f}s exceeded the objective of {obj.rpo_seconds:g}s")
    if succeeded and obj.rpo_seconds is not None and rpo is None:
        findings.append("RPO objective set but the runbook reported no rpo_seconds")
    passed = succeeded and rto_met is not False and rpo_met is not False
    if outcome.status == "interrupted":
        # Stopped on purpose (scheduler shutdown): neither passed nor failed; resumable.
        return {
            "status": "interrupted",
            "run_id": outcome.run_id,
            "run_status": outcome.status,
            "reason": outcome.error,
            "findings": [],
        }
    reason = (
        None
        if passed
        else (outcome.error if not succeeded else "; ".join(f for f in findings if "exceeded" in f))
    )
    return {
        "status": "passed" if passed else "failed",
        "run_id": outcome.run_id,
        "run_status": outcome.status,
        "rto_seconds": rto,
        "rpo_seconds": rpo,
        "rto_met": rto_met,
        "rpo_met": rpo_met,
        "reason": reason,
        "findings": findings,
    }


async def finish_live(
    ctx: DrillContext,
    run: DrillRun,
    drill: Drill,
    operator: Operator,
) -> DrillRun:
    """Run the runbook for a begun drill run and record the verdict.

    If the task is cancelled (a second SIGTERM), the run is recorded ``interrupted``
    with the runbook run's id, so ``runbook resume RUN_ID`` can continue it.
    """
    seen: dict[str, str] = {}

    def on_run_id(run_id: str) -> None:
        seen.setdefault("run_id", run_id)

    try:
        outcome = await execute_runbook(drill, ctx, operator, on_run_id)
    except asyncio.CancelledError:
        values = {
            "status": "interrupted",
            "finished_at": utcnow(),
            "run_id": seen.get("run_id"),
            "reason": "interrupted by the scheduler's shutdown; the runbook run is resumable",
        }
        with store.audited(
            ctx.db,
            ctx.audit,
            "drill.run.finished",
            run.drill,
            {"run": run.id, "status": "interrupted", "runbook_run": seen.get("run_id")},
            "interrupted",
        ):
            store.update_run(ctx.db, run.id, **values)
        ctx.log(
            "drill.run.interrupted", drill=run.drill, run=run.id, runbook_run=seen.get("run_id")
        )
        raise
    except Exception as exc:  # a broken runbook, missing file, engine error: record it
        outcome = LiveOutcome("failed", run_id=seen.get("run_id"), error=str(exc) or repr(exc))
    verdict = evaluate(drill, outcome)
    verdict["finished_at"] = utcnow()
    with store.audited(
        ctx.db,
        ctx.audit,
        "drill.run.finished",
        run.drill,
        {k: v for k, v in {"run": run.id, **verdict}.items() if k != "finished_at"},
        verdict["status"],
    ):
        store.update_run(ctx.db, run.id, **verdict)
        if verdict["status"] == "failed":
            due = (utcnow() + timedelta(days=ctx.drills.scheduler.followup_days)).date()
            plans.add_followup(
                ctx.db,
                run.id,
                f"Investigate failed drill {run.drill}: {verdict['reason']}",
                drill.owner,
                due.isoformat(),
            )
    ctx.log(
        "drill.run.finished",
        drill=run.drill,
        run=run.id,
        status=verdict["status"],
        runbook_run=verdict["run_id"],
        rto_seconds=verdict.get("rto_seconds"),
        rto_objective=drill.objectives.rto_seconds,
        rpo_seconds=verdict.get("rpo_seconds"),
        reason=verdict["reason"],
    )
    final = store.get_run(ctx.db, run.id)
    assert final is not None
    return final


async def run_drill(
    ctx: DrillContext,
    name: str,
    drill: Drill,
    operator: Operator,
    *,
    trigger: str = "manual",
    scheduled_for: datetime | None = None,
) -> DrillRun:
    """Begin and run one live drill now."""
    from opsconsole.errors import OpsError

    if drill.kind != "live":
        raise OpsError(
            f"{name} is a tabletop drill: people hold it; record it with "
            f"`opsconsole drill record {name} --participants ... --notes ...`"
        )
    run = begin_run(ctx, name, drill, trigger=trigger, scheduled_for=scheduled_for)
    if run.status == "refused":
        return run
    return await finish_live(ctx, run, drill, operator)
