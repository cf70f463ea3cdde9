"""Running one step durably: condition, rendering, attempts with retries and timeout,
the recorded transitions around it, and its outputs for later steps.

One commit (one fsync) per step, not two: a step's end (finished, skipped) is not committed
on its own but held (``_pending``) and committed in the same transaction as this run's next
transition - normally the next step's "started" compare-and-set. Nothing acts in between:
from the end of a step to that commit the runner only renders and decides (no ``await``, no
process, no prompt), so the end of step N is still durable before any side effect of step
N+1 starts, and an end is never lost when the run stops: every write, every prompt, a read of
that step's row and the end of :meth:`Driver.run_phase` commit it first (``flush``). If the
combined transaction fails (the next step's claim was lost, the audit log refused it), the
end is committed on its own, as it always was, and the error is raised.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import Any

from opsconsole.errors import AuditWriteError, OpsError
from opsconsole.operator import NeedsAPerson, Operator
from opsconsole.runbooks.events import StepFinished, StepOutput, StepStarted
from opsconsole.runbooks.results import RunEnv
from opsconsole.runbooks.schema import Runbook, Step
from opsconsole.runbooks.state import (
    CLAIMABLE_STEP,
    StepClaimLost,
    StepRow,
    get_step,
    get_steps,
    set_run,
    set_step,
)
from opsconsole.runbooks.steps import Outcome, StepContext, action_for
from opsconsole.store import immediate
from opsconsole.templating import TemplateRenderError, evaluate, render_obj
from opsconsole.timeutil import isoformat, utcnow

__all__ = ["StepRunner", "run_attempt"]


def _now() -> str:
    return isoformat(utcnow())


class StepRunner:
    """The in-memory side of one run; everything that matters is also in the database."""

    def __init__(
        self,
        run_id: str,
        runbook: Runbook,
        steps: list[tuple[str, int, Step]],
        env: RunEnv,
        operator: Operator,
        mode: str,
        tctx: dict[str, Any],
        sub_run: Callable[[str, dict[str, Any], Any, Any], Awaitable[Any]],
    ) -> None:
        self.run_id, self.runbook, self.steps = run_id, runbook, steps
        self.env, self.operator, self.mode, self.tctx = env, operator, mode, tctx
        self._sub_run = sub_run
        self._current: tuple[str, int] | None = None
        # Steps whose sealed result could not be decrypted (key file lost): a template
        # that reads them fails rather than receiving a masked value.
        self.unavailable: set[str] = set()
        # A step's end not committed yet: (phase, idx, set_step fields, event to publish).
        self._pending: tuple[str, int, dict[str, Any], Any] | None = None

    # --- durable writes ------------------------------------------------------------

    def _defer(self, phase: str, idx: int, event: Any, **fields: Any) -> None:
        """Hold a step's end until this run's next write commits it (see module doc)."""
        self.flush()
        self._pending = (phase, idx, fields, event)

    def flush(self) -> None:
        """Commit the held step end, if any, on its own (then publish its event)."""
        pending, self._pending = self._pending, None
        if pending is None:
            return
        phase, idx, fields, event = pending
        set_step(self.env.db, self.env.audit, self.run_id, phase, idx, **fields)
        self.env.bus.publish(event)

    def _commit(self, write: Callable[[], None]) -> None:
        """Run the durable write ``write`` in one transaction with the held step end."""
        pending, self._pending = self._pending, None
        if pending is None:
            write()
            return
        phase, idx, fields, event = pending
        try:
            with immediate(self.env.db):
                set_step(self.env.db, self.env.audit, self.run_id, phase, idx, **fields)
                write()
        except BaseException:
            # Nothing of the two committed: record the step's end alone, as before.
            self._pending = pending
            self.flush()
            raise
        self.env.bus.publish(event)

    def _set_step(self, phase: str, idx: int, **kwargs: Any) -> None:
        self._commit(
            lambda: set_step(self.env.db, self.env.audit, self.run_id, phase, idx, **kwargs)
        )

    def _set_run(self, audit: Any, **kwargs: Any) -> None:
        self._commit(lambda: set_run(self.env.db, audit, self.run_id, **kwargs))

    # --- state helpers -------------------------------------------------------------

    def _rows(self) -> dict[tuple[str, int], StepRow]:
        """Every step row of the run (for whole-run decisions, not once per step)."""
        self.flush()
        return {(r.phase, r.idx): r for r in get_steps(self.env.db, self.run_id)}

    def _row(self, phase: str, idx: int) -> StepRow:
        if self._pending is not None and self._pending[:2] == (phase, idx):
            self.flush()
        return get_step(self.env.db, self.run_id, phase, idx)

    def restore_outputs(
        self,
        rows: list[StepRow],
        sealed: dict[tuple[str, int], bytes] | None = None,
        unseal: Callable[[bytes], Any] | None = None,
    ) -> None:
        """Outputs of finished steps for later templates: the real values where a result
        held secrets (sealed in the vault), never the ``***`` of the stored copy."""
        by_key = {(ph, i): s for ph, i, s in self.steps}
        for r in rows:
            step = by_key.get((r.phase, r.idx))
            if step is None or r.status != "succeeded":
                continue
            result = r.result
            token = (sealed or {}).get((r.phase, r.idx))
            if token is not None and unseal is not None:
                real = unseal(token)
                if not isinstance(real, dict):
                    self.unavailable.add(step.id)
                    continue
                result = real
                learn_secrets(real)
            if isinstance(result, dict):
                self._register(step, result)

    def _register(self, step: Step, value: dict[str, Any]) -> None:
        self.tctx["steps"][step.id] = value
        if step.register_as:
            self.tctx[step.register_as] = value

    def note_sub_run(self, child_id: str) -> None:
        """Store the child run id before the child starts, so a resume finds it."""
        if self._current is not None:
            ph, idx = self._current
            self._set_step(
                ph,
                idx,
                action="runbook.step.subrun",
                details={"child_run": child_id},
                result={"run_id": child_id},
            )

    def _skip(self, phase: str, idx: int, step: Step, reason: str) -> None:
        self._defer(
            phase,
            idx,
            StepFinished(
                run_id=self.run_id, step_id=step.id, status="skipped", phase=phase, note=reason
            ),
            status="skipped",
            finished_at=_now(),
            error=None,
            action="runbook.step.skipped",
            details={"reason": reason},
            expect=CLAIMABLE_STEP,
        )

    # --- one step ------------------------------------------------------------------

    def _condition(self, step: Step) -> bool:
        if step.when is None or isinstance(step.when, bool):
            return step.when is not False
        return bool(evaluate(step.when, self.tctx))

    async def run_step(self, phase: str, idx: int, step: Step) -> Outcome:
        self._current = (phase, idx)
        try:
            if not self._condition(step):
                self._skip(phase, idx, step, "when is false")
                return Outcome("skipped")
        except TemplateRenderError as exc:
            return self._finish(phase, idx, step, 0, Outcome("failed", error=f"when: {exc}"), 0.0)
        if self.mode == "drill" and step.drill == "skip":
            self._skip(phase, idx, step, "skipped in drills (drill: skip)")
            return Outcome("skipped")
        action = action_for(step.action)
        row = self._row(phase, idx)
        attempts = row.attempts
        first_attempt = attempts
        lines: list[str] = []

        def emit(line: str, stream: str, host: str | None) -> None:
            lines.append(f"[{host}] {line}" if host else line)
            self.env.bus.publish(
                StepOutput(run_id=self.run_id, step_id=step.id, line=line, stream=stream, host=host)
            )

        t0 = time.monotonic()
        try:
            while True:
                try:
                    rendered = action.render(step.spec, self.tctx)
                except (TemplateRenderError, ValueError) as exc:
                    return self._finish(
                        phase, idx, step, attempts, Outcome("failed", error=str(exc)), t0
                    )
                attempts += 1
                token = f"{self.run_id}/{phase}/{idx}/{attempts}"
                self._set_step(
                    phase,
                    idx,
                    status="running",
                    attempts=attempts,
                    started_at=row.started_at or _now(),
                    rendered=rendered,
                    error=None,
                    proc_token=token,
                    action="runbook.step.started",
                    details={"attempt": attempts, "action": step.action, "rendered": rendered},
                    expect=CLAIMABLE_STEP,
                )
                self.env.bus.publish(
                    StepStarted(
                        run_id=self.run_id,
                        step_id=step.id,
                        name=step.title,
                        action=step.action,
                        phase=phase,
                        attempt=attempts,
                        rendered=_redacted(rendered),
                    )
                )
                ctx = StepContext(
                    self.run_id,
                    step,
                    phase,
                    self.env,
                    self.operator,
                    self.mode,
                    None,
                    emit,
                    start_sub_run=self._start_sub_run,
                    previous=row.result,
                    proc_token=token,
                )
                out = await run_attempt(action, rendered, ctx, step)
                if (
                    out.status in ("failed", "timed_out")
                    and attempts - first_attempt <= step.retries.count
                ):
                    delay = step.retries.delay(attempts - first_attempt)
                    self._set_step(
                        phase,
                        idx,
                        status="retrying",
                        error=out.error,
                        output=out.output or "\n".join(lines),
                        action="runbook.step.retry",
                        details={"attempt": attempts, "delay_seconds": delay},
                        outcome=out.status,
                    )
                    self.env.bus.publish(
                        StepFinished(
                            run_id=self.run_id,
                            step_id=step.id,
                            status=out.status,
                            phase=phase,
                            attempt=attempts,
                            error=_redacted_text(out.error),
                            note=f"retrying in {delay:g}s",
                        )
                    )
                    await asyncio.sleep(delay)
                    row = self._row(phase, idx)
                    continue
                return self._finish(phase, idx, step, attempts, out, t0, lines)
        except asyncio.CancelledError as exc:
            self._set_step(
                phase,
                idx,
                status="interrupted",
                finished_at=_now(),
                output="\n".join(lines),
                error=f"interrupted by {exc.args[0] if exc.args else 'the operator'}",
                action="runbook.step.interrupted",
                outcome="interrupted",
            )
            self.env.bus.publish(
                StepFinished(
                    run_id=self.run_id,
                    step_id=step.id,
                    status="interrupted",
                    phase=phase,
                    attempt=attempts,
                    duration_seconds=time.monotonic() - t0,
                )
            )
            raise

    async def _start_sub_run(self, name: str, params: dict[str, Any], ctx: StepContext) -> Any:
        return await self._sub_run(name, params, self, ctx.previous)

    def _finish(
        self,
        phase: str,
        idx: int,
        step: Step,
        attempts: int,
        out: Outcome,
        t0: float,
        lines: list[str] | None = None,
    ) -> Outcome:
        final = out.status
        action = "runbook.step.waiting" if final == "waiting_approval" else "runbook.step.finished"
        fields: dict[str, Any] = {
            "status": final,
            "error": out.error,
            "attempts": attempts,
            "output": out.output or "\n".join(lines or []),
            "result": out.value,
        }
        if final == "succeeded" and out.value:
            learn_secrets(out.value)
        if final == "succeeded" and out.value and _redacted(out.value) != out.value:
            # The stored copy is masked; later steps after a resume need the real one.
            from opsconsole.runbooks.vault import seal

            fields["result_sealed"] = seal(self.env.db, out.value)
        if final != "waiting_approval":
            fields["finished_at"] = _now()
        finished = StepFinished(
            run_id=self.run_id,
            step_id=step.id,
            status=final,
            phase=phase,
            attempt=attempts,
            error=_redacted_text(out.error),
            duration_seconds=time.monotonic() - t0 if t0 else 0.0,
        )
        self._defer(phase, idx, finished, action=action, outcome=final, **fields)
        if final == "succeeded":
            self._register(step, out.value)
            self._report(step)
        return out

    def _report(self, step: Step) -> None:
        if not step.report:
            return
        row = self.env.db.execute(
            "SELECT measured FROM runs WHERE id = ?", [self.run_id]
        ).fetchone()
        import json

        measured = json.loads(row[0]) if row else {}
        for key, expr in step.report.items():
            try:
                measured[key] = round(float(render_obj(expr, self.tctx)), 3)
            except (TemplateRenderError, TypeError, ValueError) as exc:
                self.env.bus.publish(
                    StepOutput(
                        run_id=self.run_id,
                        step_id=step.id,
                        line=f"report {key}: {exc}",
                        stream="stderr",
                    )
                )
        self._set_run(None, measured=measured)


async def run_attempt(
    action: Any, rendered: dict[str, Any], ctx: StepContext, step: Step
) -> Outcome:
    """One execution of an action under the step's timeout; errors become outcomes."""
    timeout = step.timeout or getattr(action, "default_timeout", None)
    ctx.timeout = timeout
    # The SSH layer enforces its own timeout remotely; ours is only a backstop.
    guard = timeout + 30 if (timeout and step.action == "ssh") else timeout
    try:
        if guard:
            async with asyncio.timeout(guard):
                return await action.execute(rendered, ctx)  # type: ignore[no-any-return]
        return await action.execute(rendered, ctx)  # type: ignore[no-any-return]
    except TimeoutError:
        return Outcome("timed_out", {}, "", f"timed out after {timeout:g}s")
    except NeedsAPerson as exc:
        return Outcome("failed", {}, "", str(exc))
    except (AuditWriteError, StepClaimLost):
        raise
    except (OpsError, ValueError, OSError) as exc:
        return Outcome("failed", {}, "", str(exc))
    except Exception as exc:
        return Outcome("failed", {}, "", f"{type(exc).__name__}: {exc}")


def _redacted(value: dict[str, Any]) -> dict[str, Any]:
    from opsconsole.redact import redact

    return dict(redact(value))


def _redacted_text(text: str | None) -> str | None:
    from opsconsole.redact import redact

    return redact(text) if text is not None else None


def learn_secrets(data: Any) -> None:
    """Values under secret keys in a step's result (a rotated API key, a token) are
    secrets of this run from now on."""
    from opsconsole.redact import is_secret_key, secrets

    if isinstance(data, dict):
        for key, val in data.items():
            if isinstance(key, str) and is_secret_key(key) and isinstance(val, str):
                secrets.add(val)
            else:
                learn_secrets(val)
    elif isinstance(data, list):
        for item in data:
            learn_secrets(item)
