"""Honest dry runs: every step rendered with its final (redacted) values.

Only read-only steps (``check: true``, and ``health`` gates) really run. A value only a
real run would produce (the output of a step that does not run now) is shown as
``<unknown: steps.X...>``; a step whose condition depends on one says so instead of
guessing, and nothing crashes on it.
"""

from __future__ import annotations

from typing import Any

from opsconsole.operator import UnattendedOperator
from opsconsole.redact import redact
from opsconsole.runbooks.context import coerce_params, expand_steps, template_context
from opsconsole.runbooks.results import PlannedStep, RunEnv
from opsconsole.runbooks.schema import Runbook, Step
from opsconsole.runbooks.stepper import run_attempt
from opsconsole.runbooks.steps import StepContext, action_for
from opsconsole.templating import TemplateRenderError, Unknown, UnknownValue, evaluate, has_unknown

__all__ = ["plan_run"]


def _plain(value: Any) -> Any:
    """Unknown placeholders as their text, so a plan can be printed and serialised."""
    if isinstance(value, Unknown):
        return str(value)
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    return value


def _forget(tctx: dict[str, Any], step: Step) -> None:
    tctx["steps"][step.id] = Unknown(f"steps.{step.id}")
    if step.register_as:
        tctx[step.register_as] = Unknown(step.register_as)


async def plan_run(runbook: Runbook, params: dict[str, Any], *, env: RunEnv) -> list[PlannedStep]:
    """Render every step; run only the read-only ones. Nothing that changes state runs."""
    for name in env.config.settings.secret_env:
        import os

        from opsconsole.redact import secrets

        secrets.add(os.environ.get(name))
    values = coerce_params(runbook, params)
    meta = {
        "id": "(plan)",
        "mode": "plan",
        "actor": env.audit.actor,
        "runbook": runbook.name,
        "parent_run": None,
        "incident_id": None,
    }
    tctx = template_context(runbook, values, env.config, meta, env.db)
    # Read-only steps do run: record that before they do (fail closed).
    env.audit.record("runbook.planned", runbook.name, {"params": values})
    planned: list[PlannedStep] = []
    for phase, idx, step in expand_steps(runbook):
        ps = PlannedStep(phase, idx, step.id, step.title, step.action, rendered={})
        planned.append(ps)
        try:
            if isinstance(step.when, str) and not bool(evaluate(step.when, tctx)):
                ps.will_run = "no"
                ps.notes.append(f"skipped: when `{step.when}` is false")
            elif step.when is False:
                ps.will_run = "no"
        except UnknownValue as exc:
            ps.will_run = "unknown"
            ps.notes.append(
                f"runs only if `{step.when}`, which depends on {exc.path} "
                "(known only in a real run)"
            )
        except TemplateRenderError as exc:
            ps.will_run = "error"
            ps.notes.append(f"when: {exc}")
        action = action_for(step.action)
        try:
            rendered = action.render(step.spec, tctx)
        except UnknownValue as exc:
            rendered = {}
            ps.depends_on_unknown = True
            ps.notes.append(
                f"cannot be rendered before {exc.path} is known (a real run produces it)"
            )
        except (TemplateRenderError, ValueError) as exc:
            rendered = {}
            ps.notes.append(f"render error: {exc}")
            ps.will_run = "error"
        ps.rendered = dict(redact(_plain(rendered)))
        if has_unknown(rendered):
            ps.depends_on_unknown = True
            ps.notes.append("uses values known only in a real run (shown as <unknown: ...>)")
        runnable = (
            phase == "main"
            and step.read_only
            and ps.will_run == "yes"
            and not ps.depends_on_unknown
            and rendered
        )
        if not runnable:
            _forget(tctx, step)
            if phase == "main" and not step.read_only:
                ps.notes.append("not run in a plan (it may change state)")
            continue
        lines: list[str] = []

        def emit(line: str, stream: str, host: str | None, lines: list[str] = lines) -> None:
            lines.append(f"[{host}] {line}" if host else line)

        ctx = StepContext(
            run_id="(plan)",
            step=step,
            phase=phase,
            env=env,
            operator=UnattendedOperator(f"plan step {step.id}"),
            mode="normal",
            timeout=None,
            emit=emit,
            dry_run=True,
        )
        out = await run_attempt(action, rendered, ctx, step)
        ps.executed = True
        ps.status = out.status
        ps.output = redact(out.output or "\n".join(lines))
        if out.status == "succeeded":
            tctx["steps"][step.id] = out.value
            if step.register_as:
                tctx[step.register_as] = out.value
        else:
            _forget(tctx, step)
            if step.action == "wait_until":
                limit = step.timeout or 300
                ps.notes.append(
                    f"not true yet ({redact(out.error)}); a real run waits up to {limit:g}s"
                )
            else:
                ps.notes.append(
                    f"this read-only step {out.status.replace('_', ' ')} now: "
                    f"{redact(out.error)}; a real run would {step.on_failure} here"
                )
    return planned
