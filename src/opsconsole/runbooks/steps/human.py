"""Steps that need a person: ``manual``, ``input`` and the durable ``approval``.

In a drill, these run unattended only with ``drill: auto-confirm`` (the operator gets
``auto_ok=True`` / a default); otherwise an unattended operator raises ``NeedsAPerson``.
"""

from __future__ import annotations

import asyncio
import re
from typing import Any

from opsconsole.redact import secrets
from opsconsole.runbooks.approvals import approval_for, request_approval
from opsconsole.runbooks.events import ApprovalRequested
from opsconsole.runbooks.schema import ApprovalAction, InputAction, ManualAction
from opsconsole.runbooks.steps import Outcome, StepContext
from opsconsole.templating import render as render_text

__all__ = ["Approval", "Input", "Manual"]

APPROVAL_POLL_SECONDS = 0.5


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
        value = await ctx.operator.ask(
            rendered["prompt"], secret=rendered["secret"], default=default
        )
        if rendered["secret"]:
            secrets.add(value)
        if rendered["pattern"] and not re.fullmatch(rendered["pattern"], value):
            return Outcome("failed", {}, "", f"answer does not match {rendered['pattern']!r}")
        return Outcome("succeeded", {"value": value}, "***" if rendered["secret"] else value)


class Approval:
    @staticmethod
    def render(spec: ApprovalAction, tctx: dict[str, Any]) -> dict[str, Any]:
        return {"message": render_text(spec.message, tctx), "wait": spec.wait}

    @staticmethod
    async def execute(rendered: dict[str, Any], ctx: StepContext) -> Outcome:
        db, audit = ctx.env.db, ctx.env.audit
        step_id = ctx.step.id
        if ctx.mode == "drill":
            ok = await ctx.operator.confirm(
                f"approve '{ctx.step.title}' (drill): {rendered['message']}",
                auto_ok=ctx.auto_confirm,
            )
            if not ok:
                return Outcome("failed", {"approved": False}, "", "not approved")
            audit.record("runbook.approval.auto", f"{ctx.run_id}/{step_id}", {"mode": "drill"})
            return Outcome(
                "succeeded", {"approved": True, "by": "drill auto-confirm"}, "auto-approved"
            )
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
            if current.decision == "approved":
                return Outcome(
                    "succeeded",
                    {"approved": True, "by": current.decided_by, "comment": current.comment},
                    f"approved by {current.decided_by}"
                    + (f": {current.comment}" if current.comment else ""),
                )
            if current.decision == "denied":
                reason = f"denied by {current.decided_by}" + (
                    f": {current.comment}" if current.comment else ""
                )
                return Outcome(
                    "failed", {"approved": False, "by": current.decided_by}, reason, reason
                )
            if loop.time() >= deadline:
                return Outcome(
                    "waiting_approval",
                    {},
                    "",
                    f"waiting for approval by someone other than {current.requested_by}",
                )
            await asyncio.sleep(APPROVAL_POLL_SECONDS)
