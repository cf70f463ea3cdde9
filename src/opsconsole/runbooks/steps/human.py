"""Steps that need a person: ``manual``, ``input`` and the durable ``approval``.

In a drill, ``manual`` and ``input`` run unattended only with ``drill: auto-confirm`` (the
operator gets ``auto_ok=True`` / a default); otherwise an unattended operator raises
``NeedsAPerson``. An ``approval`` is never auto-answered: an unattended drill fails there
("needs approval at step X"), an attended one waits for a second person like any run.
"""

from __future__ import annotations

import asyncio
import re
from typing import Any

from opsconsole.redact import secrets
from opsconsole.runbooks.approvals import approval_for, proven_decision, request_approval
from opsconsole.runbooks.events import ApprovalRequested
from opsconsole.runbooks.schema import ApprovalAction, InputAction, ManualAction
from opsconsole.runbooks.steps import Outcome, StepContext
from opsconsole.templating import render as render_text

__all__ = ["Approval", "Input", "Manual"]

APPROVAL_POLL_SECONDS = 0.5


# How often an attended `input` step asks again after an answer that does not match.
INPUT_ATTEMPTS = 3


class Manual:
    @staticmethod
    def render(spec: ManualAction, tctx: dict[str, Any]) -> dict[str, Any]:
        return {"instructions": render_text(spec.instructions, tctx)}

    @staticmethod
    async def execute(rendered: dict[str, Any], ctx: StepContext) -> Outcome:
        title = ctx.step.title
        await ctx.operator.show(f"{title}\n{rendered['instructions'].rstrip()}")
        done = await ctx.operator.confirm(
            f"{title}: done?", default=False, auto_ok=ctx.auto_confirm
        )
        if not done:
            return Outcome("failed", {"confirmed": False}, "", "the operator did not confirm")
        return Outcome("succeeded", {"confirmed": True, "by": ctx.operator.name}, "confirmed")


class Input:
    @staticmethod
    def render(spec: InputAction, tctx: dict[str, Any]) -> dict[str, Any]:
        return {
            "prompt": render_text(spec.prompt, tctx),
            "secret": spec.secret,
            "default": render_text(spec.default, tctx) if spec.default is not None else None,
            "pattern": spec.pattern,
        }

    @staticmethod
    async def execute(rendered: dict[str, Any], ctx: StepContext) -> Outcome:
        default = rendered["default"]
        if ctx.mode == "drill" and not ctx.auto_confirm:
            # Only auto-confirm steps may be answered unattended, even with a default.
            await ctx.operator.confirm(f"{ctx.step.title}: {rendered['prompt']}", auto_ok=False)
        pattern = rendered["pattern"]
        prompt = rendered["prompt"]
        # A typo re-asks (a person is there to answer) instead of failing the whole run;
        # nobody answers an unattended run, so its default is judged once.
        tries = 1 if ctx.operator.name == "unattended" else INPUT_ATTEMPTS
        for attempt in range(1, tries + 1):
            value = await ctx.operator.ask(prompt, secret=rendered["secret"], default=default)
            if rendered["secret"]:
                secrets.add(value)
            if not pattern or re.fullmatch(pattern, value):
                return Outcome(
                    "succeeded", {"value": value}, "***" if rendered["secret"] else value
                )
            prompt = (
                f"{rendered['prompt']} (the answer must match {pattern!r}; "
                f"try {attempt + 1} of {tries})"
            )
        return Outcome("failed", {}, "", f"answer does not match {pattern!r} (asked {tries}x)")


class Approval:
    @staticmethod
    def render(spec: ApprovalAction, tctx: dict[str, Any]) -> dict[str, Any]:
        return {"message": render_text(spec.message, tctx), "wait": spec.wait}

    @staticmethod
    async def execute(rendered: dict[str, Any], ctx: StepContext) -> Outcome:
        db, audit = ctx.env.db, ctx.env.audit
        step_id = ctx.step.id
        if ctx.mode == "drill" and ctx.operator.name == "unattended":
            # Drills never auto-approve (not even `drill: auto-confirm`): an unattended
            # drill that reaches an approval stops here, named, with nothing changed.
            reason = (
                f"needs approval at step {step_id}: drills are not auto-approved; run this "
                "drill attended so a second person can approve it"
            )
            audit.record(
                "runbook.approval.required", f"{ctx.run_id}/{step_id}", {"mode": "drill"}, "failed"
            )
            return Outcome("failed", {"approved": False}, "", reason)
        existing = approval_for(db, ctx.run_id, step_id)
        if existing is None or existing.decision == "pending":
            req = request_approval(db, audit, ctx.run_id, step_id, rendered["message"])
            if existing is None:
                ctx.env.bus.publish(
                    ApprovalRequested(
                        run_id=ctx.run_id,
                        step_id=step_id,
                        requested_by=req.requested_by,
                        message=rendered["message"],
                    )
                )
        loop = asyncio.get_running_loop()
        deadline = loop.time() + float(rendered["wait"])
        while True:
            current = approval_for(db, ctx.run_id, step_id)
            assert current is not None
            # The decision acted on is the one the audit chain proves, not the table's.
            proof = proven_decision(audit, ctx.run_id, step_id)
            if proof is not None and proof.decision == "approved":
                return Outcome(
                    "succeeded",
                    {"approved": True, "by": proof.by, "comment": proof.comment},
                    f"approved by {proof.by}" + (f": {proof.comment}" if proof.comment else ""),
                )
            if proof is not None:
                reason = f"denied by {proof.by}" + (f": {proof.comment}" if proof.comment else "")
                return Outcome("failed", {"approved": False, "by": proof.by}, reason, reason)
            if current.decision != "pending":
                # The table says decided, the chain does not: someone edited the table.
                reason = (
                    f"run_approvals says {current.decision!r} by {current.decided_by}, but the "
                    "audit log holds no such decision (the table was edited); still waiting "
                    "for an approval recorded with `opsconsole runbook approve`"
                )
                audit.record(
                    "runbook.approval.unproven",
                    f"{ctx.run_id}/{step_id}",
                    {"table_decision": current.decision, "table_decided_by": current.decided_by},
                    "denied",
                )
                # A fresh request, so a real approver can still decide it.
                request_approval(db, audit, ctx.run_id, step_id, rendered["message"])
                return Outcome("waiting_approval", {}, "", reason)
            if loop.time() >= deadline:
                return Outcome(
                    "waiting_approval",
                    {},
                    "",
                    f"waiting for approval by someone other than {current.requested_by}",
                )
            await asyncio.sleep(APPROVAL_POLL_SECONDS)
