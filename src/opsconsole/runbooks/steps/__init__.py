"""Step actions. Each action module offers ``render(spec, tctx) -> dict`` (the final
values, used by runs, plans and the audit log) and ``async execute(rendered, ctx) ->
Outcome``. The engine owns retries, timeouts, state and audit; actions only act."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from opsconsole.operator import Operator
    from opsconsole.runbooks.results import RunEnv
    from opsconsole.runbooks.schema import Step

__all__ = ["Action", "Outcome", "StepContext", "action_for"]


@dataclass
class Outcome:
    status: str  # succeeded | failed | timed_out | waiting_approval
    value: dict[str, Any] = field(default_factory=dict)
    output: str = ""
    error: str | None = None


@dataclass
class StepContext:
    run_id: str
    step: Step
    phase: str
    env: RunEnv
    operator: Operator
    mode: str  # normal | drill
    timeout: float | None
    emit: Callable[[str, str, str | None], None]  # (line, stream, host)
    dry_run: bool = False
    # Sub-runs: the engine passes itself so actions need not import it (no cycle).
    start_sub_run: Callable[..., Awaitable[Any]] | None = None
    previous: Any = None  # the step row's stored result (e.g. a sub-run id on resume)
    # Marks every process the step starts (see runbooks.procs): run/phase/idx/attempt.
    proc_token: str | None = None

    @property
    def auto_confirm(self) -> bool:
        return self.mode == "drill" and self.step.drill == "auto-confirm"


class Action(Protocol):
    def render(self, spec: Any, tctx: dict[str, Any]) -> dict[str, Any]: ...

    async def execute(self, rendered: dict[str, Any], ctx: StepContext) -> Outcome: ...


def action_for(name: str) -> Action:
    """The implementation of one action kind."""
    from opsconsole.runbooks.steps import flow, health, http, human, shell, ssh

    table: dict[str, Any] = {
        "shell": shell,
        "ssh": ssh,
        "http": http,
        "health": health,
        "wait_until": health.WaitUntil,
        "manual": human.Manual,
        "input": human.Input,
        "approval": human.Approval,
        "notify": flow.Notify,
        "sleep": flow.Sleep,
        "runbook": flow.SubRun,
    }
    return table[name]  # type: ignore[no-any-return]
