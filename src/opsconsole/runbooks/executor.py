"""Driving one run through its phases: failure policy, rollback in reverse, interruption
(Ctrl-C) and steps a killed process left unfinished."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Any

from opsconsole.operator import NeedsAPerson
from opsconsole.runbooks.context import APPROVAL_STEP_ID, ROLLBACK_APPROVAL_STEP_ID
from opsconsole.runbooks.schema import Step
from opsconsole.runbooks.state import FINISHED_STEP, StepRow
from opsconsole.runbooks.stepper import StepRunner, run_attempt
from opsconsole.timeutil import parse_when, utcnow

__all__ = ["Driver", "run_attempt"]

STARTED = frozenset(
    {"succeeded", "failed", "timed_out", "interrupted", "running", "retrying", "waiting_approval"}
)


@dataclass
class PhaseEnd:
    kind: str  # done | waiting | abort | rollback
    status: str = "succeeded"
    error: str | None = None


class Driver(StepRunner):
    """Drives the phases of one run; steps are run by :class:`StepRunner`."""

    def measure(self, run: Any, *, finished: bool) -> dict[str, float]:
        measured = dict(run.measured)
        rows = self._rows()
        marks: dict[str, Any] = {}
        for ph, i, step in self.steps:
            row = rows.get((ph, i))
            if step.marker and row is not None:
                marks[step.marker] = (
                    row.started_at if step.marker == "recovery_start" else row.finished_at
                )
        if marks.get("recovery_start") and marks.get("recovery_end"):
            delta = parse_when(marks["recovery_end"]) - parse_when(marks["recovery_start"])
            measured["rto_seconds"] = round(delta.total_seconds(), 3)
        if finished:
            duration = round((utcnow() - parse_when(run.started_at)).total_seconds(), 3)
            measured["duration_seconds"] = duration
            measured.setdefault("rto_seconds", duration)
        return measured

    # --- phases --------------------------------------------------------------------

    async def run_phase(self, phase: str) -> tuple[str, str | None]:
        """Drive ``phase`` (main, or rollback after a resume) to an end state; the last
        step's end is committed before this returns or raises."""
        try:
            return await self._run_phase(phase)
        finally:
            self.flush()

    async def _run_phase(self, phase: str) -> tuple[str, str | None]:
        if phase == "rollback":
            return await self._rollback(None, announce=False)
        try:
            end = await self._main()
        except asyncio.CancelledError as exc:
            task = asyncio.current_task()
            if task is not None:
                task.uncancel()
            return await self._on_interrupt(exc.args[0] if exc.args else None)
        if end.kind == "done":
            return "succeeded", None
        if end.kind == "waiting":
            return "waiting_approval", end.error
        if end.kind == "rollback":
            status, error = await self._rollback(end.error)
            return status, error
        return end.status, end.error

    async def _main(self) -> PhaseEnd:
        for phase, idx, step in self.steps:
            if phase != "main":
                continue
            end = await self._one(phase, idx, step)
            if end is not None:
                return end
        return PhaseEnd("done")

    async def _one(self, phase: str, idx: int, step: Step) -> PhaseEnd | None:
        row = self._row(phase, idx)
        if row.status in FINISHED_STEP:
            if not self._unproven_gate(phase, idx, step, row):
                return None
            row = self._row(phase, idx)
        if row.status in ("running", "interrupted", "retrying"):
            decision = await self._decide_interrupted(phase, idx, step, row)
            if decision == "skip":
                return None
            if decision != "rerun":
                return PhaseEnd("abort", "aborted", decision)
        out = await self.run_step(phase, idx, step)
        if out.status in ("succeeded", "skipped"):
            return None
        if out.status == "waiting_approval":
            return PhaseEnd("waiting", "waiting_approval", out.error)
        error = f"step {step.id} {out.status.replace('_', ' ')}: {out.error}"
        if step.on_failure == "continue":
            return None
        if step.on_failure == "rollback" and phase == "main" and self.runbook.rollback:
            return PhaseEnd("rollback", out.status, error)
        return PhaseEnd("abort", out.status, error)

    def _unproven_gate(self, phase: str, idx: int, step: Step, row: StepRow) -> bool:
        """An approval step the table calls finished but the audit chain does not.

        ``run_steps`` can be edited by anyone who can write the database (a bastion's
        group): ``UPDATE run_steps SET status = 'succeeded'`` on the gate must not let a
        resume walk past it. Such a row is put back to pending (audited
        ``runbook.approval.unproven``, denied), so the gate asks again."""
        if step.action != "approval":
            return False
        from opsconsole.access import proven_event

        event = proven_event(
            self.env.audit,
            ["runbook.step.finished", "runbook.step.skipped", "runbook.step.waiting"],
            f"{self.run_id}/{step.id}",
        )
        if event is not None and event["details"].get("status") == row.status:
            return False
        self._set_step(
            phase,
            idx,
            status="pending",
            finished_at=None,
            action="runbook.approval.unproven",
            details={
                "table_status": row.status,
                "reason": "the step row says finished; the audit log does not",
            },
            outcome="denied",
        )
        return True

    async def _on_interrupt(self, signal_name: str | None = None) -> tuple[str, str | None]:
        where = self._current[1] if self._current else None
        step = next((s for ph, i, s in self.steps if (ph, i) == self._current), None)
        by = f"by {signal_name}" if signal_name else "by the operator"
        error = f"interrupted {by} at step {step.id if step else where}"
        self._set_run(
            self.env.audit,
            status="interrupted",
            error=error,
            action="runbook.run.interrupted",
        )
        roll = False
        # A signal (SIGTERM, SIGHUP) means nobody is there to answer: leave it resumable.
        if self.runbook.rollback and signal_name is None:
            try:
                roll = await self.operator.confirm(
                    f"Run interrupted at step {step.id if step else '?'}. "
                    "Roll back the steps done so far?",
                    default=False,
                )
            except (NeedsAPerson, EOFError):
                roll = False
        if roll:
            return await self._rollback(error)
        return "interrupted", error + f"; resume with `opsconsole runbook resume {self.run_id}`"

    async def _rollback(
        self, reason: str | None, *, announce: bool = True
    ) -> tuple[str, str | None]:
        if announce:
            self._set_run(
                self.env.audit,
                phase="rollback",
                status="running",
                action="runbook.rollback.started",
                details={"reason": reason},
            )
        reason = reason or self._stored_error()
        rows = self._rows()
        main_status = {s.id: rows[(ph, i)].status for ph, i, s in self.steps if ph == "main"}
        rollback = [(ph, i, s) for ph, i, s in self.steps if ph == "rollback"]

        def undoes_nothing(step: Step) -> bool:
            return bool(step.undoes) and main_status.get(step.undoes) not in STARTED

        try:
            for phase, idx, step in reversed(rollback):
                skip = None
                if undoes_nothing(step):
                    skip = f"{step.undoes} did not run"
                elif step.id == ROLLBACK_APPROVAL_STEP_ID:
                    skip = self._gate_not_needed(rollback, undoes_nothing, automatic=announce)
                if skip is not None:
                    row = self._row(phase, idx)
                    if row.status not in FINISHED_STEP:
                        self._skip(phase, idx, step, skip)
                    continue
                self._current = (phase, idx)
                end = await self._one(phase, idx, step)
                if end is not None and end.kind == "waiting":
                    return "waiting_approval", end.error
                if end is not None and end.kind != "done":
                    return "failed", f"rollback failed: {end.error}" + (
                        f" (after: {reason})" if reason else ""
                    )
        except asyncio.CancelledError:
            task = asyncio.current_task()
            if task is not None:
                task.uncancel()
            error = "interrupted during rollback"
            self._set_run(
                self.env.audit,
                status="interrupted",
                error=error,
                action="runbook.run.interrupted",
            )
            return "interrupted", error + f"; resume with `opsconsole runbook resume {self.run_id}`"
        return "rolled_back", reason

    def _gate_not_needed(
        self, rollback: list[tuple[str, int, Step]], undoes_nothing: Any, *, automatic: bool
    ) -> str | None:
        """Why the rollback's approval gate is skipped (None: it asks). A rollback the
        run starts itself (a failed step's ``on_failure``, Ctrl-C) is covered by the
        approval of the run - if the audit chain proves the run was approved; one asked
        for later (``runbook rollback``) is a new change and needs its own approval."""
        steps = [s for _, _, s in rollback if s.id != ROLLBACK_APPROVAL_STEP_ID]
        if all(undoes_nothing(s) for s in steps):
            return "nothing to roll back"
        if not automatic:
            return None
        from opsconsole.access import proven_event

        event = proven_event(
            self.env.audit, ["runbook.step.finished"], f"{self.run_id}/{APPROVAL_STEP_ID}"
        )
        if event is not None and event["details"].get("status") == "succeeded":
            return "approved with the run"
        return None

    def _stored_error(self) -> str | None:
        self.flush()
        row = self.env.db.execute("SELECT error FROM runs WHERE id = ?", [self.run_id]).fetchone()
        return row[0] if row else None

    async def _decide_interrupted(self, phase: str, idx: int, step: Step, row: StepRow) -> str:
        """A step that did not finish. Returns rerun | skip | the reason to abort."""
        self.flush()  # the operator is asked below: nothing stays uncommitted meanwhile
        if row.status == "running":
            self._set_step(
                phase,
                idx,
                status="interrupted",
                error="the process running this step stopped",
                action="runbook.step.interrupted",
                expect=("running",),
            )
        safe = (
            step.idempotent
            or step.read_only
            or row.status == "retrying"
            or step.action in ("approval", "runbook", "health", "wait_until", "sleep")
        )
        if safe:
            return "rerun"
        try:
            again = await self.operator.confirm(
                f"Step '{step.title}' was interrupted while running and may have partly run. "
                "Run it again?",
                default=False,
            )
            if again:
                return "rerun"
            done = await self.operator.confirm(
                f"Treat '{step.title}' as done and continue with the next step?", default=False
            )
        except NeedsAPerson as exc:
            return str(exc)
        if done:
            self._skip(phase, idx, step, "marked done by the operator after an interruption")
            return "skip"
        return f"step {step.id} was interrupted and the operator chose not to re-run it"
