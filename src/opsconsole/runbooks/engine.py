"""The durable runbook engine: start, resume and roll back runs.

Every step transition is committed (with its audit record) before the step acts and
after it finishes, so after ``kill -9`` a resume continues at the first unfinished step.
A step found ``running`` by a resume was interrupted: it re-runs only if it is
``idempotent`` or the operator says so; a finished step never re-runs.
"""

from __future__ import annotations

import contextlib
import os
import secrets as pysecrets
import socket
from datetime import datetime
from typing import Any, Literal

from opsconsole.errors import AuditWriteError, OpsError
from opsconsole.operator import NeedsAPerson, Operator
from opsconsole.redact import secrets
from opsconsole.runbooks.authz import check_others, check_start
from opsconsole.runbooks.context import (
    APPROVAL_STEP_ID,
    RunbookRunError,
    coerce_params,
    expand_steps,
    template_context,
)
from opsconsole.runbooks.events import RunFinished, RunStarted
from opsconsole.runbooks.executor import Driver
from opsconsole.runbooks.loader import RunbookInvalid, find_runbook, load_runbook
from opsconsole.runbooks.locks import acquire_lock, pid_alive, release_lock
from opsconsole.runbooks.results import RunEnv, RunResult
from opsconsole.runbooks.schema import Runbook
from opsconsole.runbooks.state import (
    TERMINAL_RUN,
    create_run,
    get_run,
    get_steps,
    set_run,
)
from opsconsole.templating import TemplateRenderError
from opsconsole.templating import render as render_text
from opsconsole.timeutil import parse_when, utcnow
from opsconsole.yamlsource import load_yaml, validate

__all__ = [
    "EXIT_CODES",
    "RunbookRunError",
    "exit_code_for",
    "resume_run",
    "rollback_run",
    "start_run",
]

EXIT_CODES = {
    "succeeded": 0,
    "failed": 10,
    "timed_out": 11,
    "rolled_back": 12,
    "waiting_approval": 13,
    "aborted": 14,
    "interrupted": 14,
}


def exit_code_for(status: str) -> int:
    """The CLI exit code of a run status (invalid runbook: 15, see loader)."""
    return EXIT_CODES.get(status, 1)


def _new_run_id() -> str:
    return f"{utcnow():%Y%m%d-%H%M%S}-{pysecrets.token_hex(3)}"


def _register_env_secrets(env: RunEnv) -> None:
    for name in env.config.settings.secret_env:
        secrets.add(os.environ.get(name))


def _source_text(rb: Runbook) -> tuple[str, str]:
    path = rb.source
    if path is None:
        raise RunbookRunError("a runbook must be loaded from a file (load_runbook) to run")
    return str(path), path.read_text(encoding="utf-8")


async def start_run(
    runbook: Runbook,
    params: dict[str, Any],
    *,
    env: RunEnv,
    operator: Operator,
    mode: Literal["normal", "drill"] = "normal",
    parent_run: str | None = None,
    incident_id: str | None = None,
    run_id: str | None = None,
) -> RunResult:
    """Run ``runbook`` to its end, a durable wait (approval), or an interruption."""
    _register_env_secrets(env)
    values = coerce_params(runbook, params)
    run_id = run_id or _new_run_id()
    check_start(env, runbook, values, run_id)  # access policy: before anything is written
    path, source = _source_text(runbook)
    meta = {
        "id": run_id,
        "mode": mode,
        "actor": env.audit.actor,
        "runbook": runbook.name,
        "parent_run": parent_run,
        "incident_id": incident_id,
    }
    tctx = template_context(runbook, values, env.config, meta, env.db)
    lock_key = None
    if runbook.lock:
        try:
            lock_key = render_text(runbook.lock, tctx)
        except TemplateRenderError as exc:
            raise RunbookRunError(f"lock key: {exc}") from None
    steps = expand_steps(runbook)
    # Secret values are never stored: a resume asks again for those given explicitly.
    secret_names = [
        n
        for n, p in runbook.params.items()
        if p.secret and params.get(n) is not None and values[n] != p.default
    ]
    stored = {k: v for k, v in values.items() if not runbook.params[k].secret}
    create_run(
        env.db,
        env.audit,
        run_id=run_id,
        runbook=runbook.name,
        path=path,
        source=source,
        params=stored,
        secret_params=secret_names,
        mode=mode,
        parent_run=parent_run,
        incident_id=incident_id,
        steps=[(ph, i, s.id, s.name, s.action) for ph, i, s in steps],
    )
    if lock_key is not None:
        try:
            acquire_lock(env.db, env.audit, lock_key, run_id)
        except OpsError as exc:
            set_run(
                env.db,
                env.audit,
                run_id,
                status="aborted",
                error=str(exc),
                finished_at=_now_iso(),
                action="runbook.run.finished",
                outcome="aborted",
            )
            raise
    env.bus.publish(
        RunStarted(run_id=run_id, runbook=runbook.name, mode=mode, parent_run=parent_run)
    )
    driver = Driver(run_id, runbook, steps, env, operator, mode, tctx, _sub_run)
    return await _drive(driver, "main", lock_key)


def _now_iso() -> str:
    from opsconsole.timeutil import isoformat

    return isoformat(utcnow())


async def _drive(driver: Driver, phase: str, lock_key: str | None) -> RunResult:
    env = driver.env
    try:
        status, error = await driver.run_phase(phase)
    except AuditWriteError:
        # Fail closed: the step never started. Leave a known state if the db allows it.
        # The database may be the thing that is broken: best effort.
        with contextlib.suppress(Exception):
            set_run(
                env.db,
                None,
                driver.run_id,
                status="failed",
                finished_at=_now_iso(),
                error="audit log not writable; stopped before the next action",
            )
        raise
    return _finish(driver, status, error, lock_key)


def _finish(driver: Driver, status: str, error: str | None, lock_key: str | None) -> RunResult:
    env = driver.env
    run = get_run(env.db, driver.run_id)
    measured = driver.measure(run, finished=status in TERMINAL_RUN)
    fields: dict[str, Any] = {"status": status, "error": error, "measured": measured}
    if status in TERMINAL_RUN:
        fields["finished_at"] = _now_iso()
    set_run(
        env.db,
        env.audit,
        driver.run_id,
        action="runbook.run.finished" if status in TERMINAL_RUN else f"runbook.run.{status}",
        outcome=status,
        details={"measured": measured},
        **fields,
    )
    if lock_key is not None and status in TERMINAL_RUN:
        release_lock(env.db, env.audit, lock_key, run_id=driver.run_id)
    run = get_run(env.db, driver.run_id)
    env.bus.publish(
        RunFinished(
            run_id=run.id, runbook=run.runbook, status=status, error=run.error, measured=measured
        )
    )
    return _result(run)


def _result(run: Any) -> RunResult:
    return RunResult(
        run_id=run.id,
        status=run.status,
        started_at=parse_when(run.started_at),
        finished_at=parse_when(run.finished_at) if run.finished_at else None,
        error=run.error,
        measured=dict(run.measured),
    )


async def _reload(run_id: str, env: RunEnv, operator: Operator) -> tuple[Driver, Any]:
    """Rebuild a driver from the stored run: same runbook text, params, outputs."""
    run = get_run(env.db, run_id)
    data, marks = load_yaml(_path_of(run.path), run.source)
    try:
        rb = validate(Runbook, data, marks)
    except OpsError as exc:
        raise RunbookInvalid(getattr(exc, "problems", [])) from None
    if not rb.requires_approval and any(
        s.step_id == APPROVAL_STEP_ID for s in get_steps(env.db, run.id)
    ):
        # Started with an approval gate its launcher added (a rule not marked safe).
        rb = rb.model_copy(update={"requires_approval": True})
    params = dict(run.params)
    for name in run.secret_params:
        try:
            value = await operator.ask(
                f"secret parameter {name} (not stored; needed to resume)", secret=True
            )
        except NeedsAPerson as exc:
            raise RunbookRunError(f"run {run.id}: {exc}") from None
        secrets.add(value)
        params[name] = value
    _register_env_secrets(env)
    values = coerce_params(rb, params)
    meta = {
        "id": run.id,
        "mode": run.mode,
        "actor": run.actor,
        "runbook": rb.name,
        "parent_run": run.parent_run,
        "incident_id": run.incident_id,
    }
    tctx = template_context(rb, values, env.config, meta, env.db)
    steps = expand_steps(rb)
    driver = Driver(run.id, rb, steps, env, operator, run.mode, tctx, _sub_run)
    driver.restore_outputs(get_steps(env.db, run.id))
    return driver, run


def _path_of(text: str) -> Any:
    from pathlib import Path

    return Path(text)


def _check_not_live(run: Any) -> None:
    if (
        run.status == "running"
        and run.pid
        and run.hostname == socket.gethostname()
        and run.pid != os.getpid()
        and pid_alive(run.pid)
    ):
        raise RunbookRunError(
            f"run {run.id} is still running (pid {run.pid}); it cannot be resumed twice"
        )


async def resume_run(run_id: str, *, env: RunEnv, operator: Operator) -> RunResult:
    """Continue a run at its first unfinished step (or keep waiting for its approval)."""
    run = get_run(env.db, run_id)
    if run.status in TERMINAL_RUN:
        raise RunbookRunError(f"run {run.id} already finished: {run.status}; nothing to resume")
    check_others(env, run, "runbook.resume-others")
    _check_not_live(run)
    driver, run = await _reload(run.id, env, operator)
    if run.lock_key:
        acquire_lock(env.db, env.audit, run.lock_key, run.id)
    set_run(
        env.db,
        env.audit,
        run.id,
        status="running",
        pid=os.getpid(),
        hostname=socket.gethostname(),
        action="runbook.run.resumed",
        details={"previous_status": run.status},
    )
    env.bus.publish(
        RunStarted(
            run_id=run.id,
            runbook=run.runbook,
            mode=run.mode,
            resumed=True,
            parent_run=run.parent_run,
        )
    )
    return await _drive(driver, run.phase, run.lock_key)


async def rollback_run(run_id: str, *, env: RunEnv, operator: Operator) -> RunResult:
    """Run the rollback steps of a run that finished (e.g. fail back after a failover)."""
    run = get_run(env.db, run_id)
    if run.status in ("rolled_back", "waiting_approval") or (
        run.phase == "rollback" and run.status in TERMINAL_RUN
    ):
        raise RunbookRunError(f"run {run.id} is {run.status}; its rollback cannot start now")
    check_others(env, run, "runbook.rollback-others")
    _check_not_live(run)
    driver, run = await _reload(run.id, env, operator)
    if not driver.runbook.rollback:
        raise RunbookRunError(f"runbook {run.runbook} has no rollback steps")
    if run.lock_key:
        acquire_lock(env.db, env.audit, run.lock_key, run.id)
    set_run(
        env.db,
        env.audit,
        run.id,
        status="running",
        phase="rollback",
        finished_at=None,
        pid=os.getpid(),
        hostname=socket.gethostname(),
        action="runbook.rollback.requested",
        details={"previous_status": run.status},
    )
    env.bus.publish(RunStarted(run_id=run.id, runbook=run.runbook, mode=run.mode, resumed=True))
    return await _drive(driver, "rollback", run.lock_key)


async def _sub_run(name: str, params: dict[str, Any], parent: Driver, previous: Any) -> RunResult:
    """A ``runbook`` step: resume the child started by an earlier attempt, else start one."""
    env = parent.env
    child_id = previous.get("run_id") if isinstance(previous, dict) else None
    if child_id:
        child = get_run(env.db, child_id)
        if child.status in TERMINAL_RUN:
            return _result(child)
        return await resume_run(child_id, env=env, operator=parent.operator)
    rb = load_runbook(find_runbook(name, env.config))
    child_id = _new_run_id()
    parent.note_sub_run(child_id)
    return await start_run(
        rb,
        params,
        env=env,
        operator=parent.operator,
        mode=parent.mode,  # type: ignore[arg-type]
        parent_run=parent.run_id,
        incident_id=parent.tctx["run"].get("incident_id"),
        run_id=child_id,
    )


def started_at(run: Any) -> datetime:
    return parse_when(run.started_at)
