"""YAML runbooks: schema, loading, the durable async engine, and dry-run planning.

Public API::

    find_runbook(name_or_path, config) -> Path
    load_runbook(path) -> Runbook
    await start_run(runbook, params, env=RunEnv(...), operator=..., mode="normal"|"drill")
    await resume_run(run_id, env=..., operator=...)
    await rollback_run(run_id, env=..., operator=...)
    abort_run(run_id, env=..., force=False)
    await plan_run(runbook, params, env=...) -> list[PlannedStep]
    decide_approval(db, audit, run_id, approve=True|False, comment=...)
"""

from __future__ import annotations

from opsconsole.runbooks.approvals import ApprovalError, decide_approval, pending_approval
from opsconsole.runbooks.engine import (
    RunbookRunError,
    abort_run,
    exit_code_for,
    resume_run,
    rollback_run,
    start_run,
)
from opsconsole.runbooks.events import (
    ApprovalRequested,
    RunFinished,
    RunStarted,
    StepFinished,
    StepOutput,
    StepStarted,
)
from opsconsole.runbooks.loader import (
    RunbookInvalid,
    find_runbook,
    list_runbooks,
    load_runbook,
    runbook_dirs,
)
from opsconsole.runbooks.locks import LockHeld, release_lock
from opsconsole.runbooks.plan import plan_run
from opsconsole.runbooks.results import PlannedStep, RunEnv, RunResult
from opsconsole.runbooks.schema import Runbook, Step

__all__ = [
    "ApprovalError",
    "ApprovalRequested",
    "LockHeld",
    "PlannedStep",
    "RunEnv",
    "RunFinished",
    "RunResult",
    "RunStarted",
    "Runbook",
    "RunbookInvalid",
    "RunbookRunError",
    "Step",
    "StepFinished",
    "StepOutput",
    "StepStarted",
    "abort_run",
    "decide_approval",
    "exit_code_for",
    "find_runbook",
    "list_runbooks",
    "load_runbook",
    "pending_approval",
    "plan_run",
    "release_lock",
    "resume_run",
    "rollback_run",
    "runbook_dirs",
    "start_run",
]
