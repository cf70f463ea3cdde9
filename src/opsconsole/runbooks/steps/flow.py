"""``sleep``, ``notify`` (through :mod:`opsconsole.notify`) and ``runbook`` (a sub-run)."""

from __future__ import annotations

import asyncio
import importlib
from typing import Any

from opsconsole.runbooks.schema import NotifyAction, RunbookAction
from opsconsole.runbooks.steps import Outcome, StepContext
from opsconsole.templating import render as render_text
from opsconsole.templating import render_obj

__all__ = ["Notify", "Sleep", "SubRun", "notify_available"]


class Sleep:
    @staticmethod
    def render(spec: float, tctx: dict[str, Any]) -> dict[str, Any]:
        return {"seconds": spec}

    @staticmethod
    async def execute(rendered: dict[str, Any], ctx: StepContext) -> Outcome:
        await asyncio.sleep(rendered["seconds"])
        return Outcome("succeeded", {"slept": rendered["seconds"]}, "")


def notify_available() -> bool:
    try:
        importlib.import_module("opsconsole.notify")
    except ImportError:
        return False
    return True


class Notify:
    @staticmethod
    def render(spec: NotifyAction, tctx: dict[str, Any]) -> dict[str, Any]:
        return {
            "message": render_text(spec.message, tctx),
            "webhook": spec.webhook,
            "severity": spec.severity,
        }

    @staticmethod
    async def execute(rendered: dict[str, Any], ctx: StepContext) -> Outcome:
        try:
            notify = importlib.import_module("opsconsole.notify")
        except ImportError:
            return Outcome(
                "failed", {}, "", "notifications are not available (no opsconsole.notify)"
            )
        settings = ctx.env.config.settings
        data = {"run_id": ctx.run_id, "step": ctx.step.id, "severity": rendered["severity"]}
        text = rendered["message"]
        if rendered["webhook"]:
            hook = notify.find_webhook(settings, rendered["webhook"])  # NotFoundError: step fails
            deliveries = [await notify.post(hook, text, data=data, event="runbook.notify")]
        else:
            deliveries = await notify.post_event(settings.webhooks, "runbook.notify", text, data)
        if not deliveries:
            return Outcome(
                "failed", {}, "", "no webhook configured for runbook.notify (settings.webhooks)"
            )
        sent = [d.webhook for d in deliveries if d.ok]
        failed = [f"{d.webhook}: {d.error or d.status_code}" for d in deliveries if not d.ok]
        ctx.emit(f"notified {', '.join(sent) or 'nobody'}", "stdout", None)
        value = {"sent": sent, "failed": failed}
        if failed:
            return Outcome("failed", value, text, "webhook delivery failed: " + "; ".join(failed))
        return Outcome("succeeded", value, text)


class SubRun:
    @staticmethod
    def render(spec: RunbookAction, tctx: dict[str, Any]) -> dict[str, Any]:
        return {"name": render_text(spec.name, tctx), "params": render_obj(spec.params, tctx)}

    @staticmethod
    async def execute(rendered: dict[str, Any], ctx: StepContext) -> Outcome:
        assert ctx.start_sub_run is not None
        result = await ctx.start_sub_run(rendered["name"], rendered["params"], ctx)
        value = {"run_id": result.run_id, "status": result.status, "measured": result.measured}
        text = f"sub-run {result.run_id}: {result.status}"
        if result.status == "succeeded":
            return Outcome("succeeded", value, text)
        if result.status == "waiting_approval":
            return Outcome(
                "waiting_approval", value, text, f"sub-run {result.run_id} waits for approval"
            )
        status = "timed_out" if result.status == "timed_out" else "failed"
        return Outcome(
            status, value, text, f"sub-run {result.run_id} {result.status}: {result.error}"
        )
