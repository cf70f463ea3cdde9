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
from datetime import datetime
from typing import Any, Literal

from opsconsole import leases
from opsconsole.errors import AuditWriteError, OpsError
from opsconsole.operator import NeedsAPerson, Operator
from opsconsole.redact import scoped, secrets
from opsconsole.runbooks import procs
from opsconsole.runbooks.authz import check_others, check_start
from opsconsole.runbooks.context import (
    APPROVAL_STEP_ID,
    ROLLBACK_APPROVAL_STEP_ID,
    RunbookRunError,
    coerce_params,
    expand_steps,
    template_context,
)
from opsconsole.runbooks.events import RunFinished, RunStarted
from opsconsole.runbooks.executor import Driver
from opsconsole.runbooks.loader import RunbookInvalid, find_sub_runbook, load_runbook
from opsconsole.runbooks.locks import acquire_lock, normalize_key, release_lock
from opsconsole.runbooks.pinning import check_pinned, pin_sub_runbooks
from opsconsole.runbooks.preconditions import check_preconditions
from opsconsole.runbooks.results import RunEnv, RunResult
from opsconsole.runbooks.schema import Runbook
from opsconsole.runbooks.state import (
    TERMINAL_RUN,
    RunTampered,
    StepClaimLost,
    claim_run,
    create_run,
    get_run,
    get_steps,
    proven_start,
    release_run,
    run_owner,
    sealed_results,
    set_run,
    set_step,
)
from opsconsole.runbooks.vault import forget_secrets, load_secrets, seal_secret, unseal
from opsconsole.store import immediate
from opsconsole.templating import TemplateRenderError
from opsconsole.templating import render as render_text
from opsconsole.timeutil import parse_when, utcnow
from opsconsole.yamlsource import load_yaml, validate

__all__ = [
    "EXIT_CODES",
    "RunbookRunError",
    "abort_run",
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


async def _start_run(
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
    check_preconditions(runbook, values, env.db)  # refused before anything is recorded
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
            lock_key = normalize_key(render_text(runbook.lock, tctx))
        except TemplateRenderError as exc:
            raise RunbookRunError(f"lock key: {exc}") from None
    steps = expand_steps(runbook)
    # Secret values are stored only sealed (vault): a resume uses them, or asks again.
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
        pinned=pin_sub_runbooks(runbook, env, tctx),
        lease_seconds=env.config.settings.lease_seconds,
    )
    if secret_names:
        with immediate(env.db):
            for name in secret_names:
                seal_secret(env.db, run_id, f"param:{name}", str(values[name]))
    if lock_key is not None or runbook.preconditions:
        try:
            if lock_key is not None:
                acquire_lock(env.db, env.audit, lock_key, run_id)
            # Again under the lock: a run that finished meanwhile may have changed it.
            check_preconditions(runbook, values, env.db)
        except OpsError as exc:
            if lock_key is not None:
                with contextlib.suppress(OpsError):
                    release_lock(env.db, env.audit, lock_key, run_id=run_id)
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


def _check_pinned(name: str, rb: Runbook, parent: Driver) -> None:
    from opsconsole.access import proven_event

    start = proven_event(parent.env.audit, ["runbook.run.started"], parent.run_id)
    pinned = (start or {}).get("details", {}).get("sub_runbooks") or {}
    _, text = _source_text(rb)
    why = check_pinned(name, text, rb.source, pinned, parent.run_id)
    if why is not None:
        parent.env.audit.record(
            "runbook.run.tampered",
            parent.run_id,
            {"reason": why, "path": str(rb.source)},
            "denied",
        )
        raise RunTampered(why)


def _now_iso() -> str:
    from opsconsole.timeutil import isoformat

    return isoformat(utcnow())


async def _drive(driver: Driver, phase: str, lock_key: str | None) -> RunResult:
    """Run ``phase`` to its end; this process's lease on the run ends with it."""
    try:
        return await _drive_phase(driver, phase, lock_key)
    finally:
        with contextlib.suppress(Exception):  # the database may be what failed
            release_run(driver.env.db, driver.run_id)


async def _drive_phase(driver: Driver, phase: str, lock_key: str | None) -> RunResult:
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
    except StepClaimLost:
        raise  # another process owns the run now: its state is not ours to change
    except Exception as exc:
        status, error = "failed", f"internal error: {type(exc).__name__}: {exc}"
        _fail_current(driver, error)
    return _finish(driver, status, error, lock_key)


def _fail_current(driver: Driver, error: str) -> None:
    """Mark the step that was running when the engine failed as failed (best effort)."""
    if driver._current is None:
        return
    phase, idx = driver._current
    with contextlib.suppress(Exception):
        row = get_steps(driver.env.db, driver.run_id)
        if any(r.phase == phase and r.idx == idx and r.status == "running" for r in row):
            set_step(
                driver.env.db,
                driver.env.audit,
                driver.run_id,
                phase,
                idx,
                status="failed",
                error=error,
                finished_at=_now_iso(),
                action="runbook.step.finished",
                outcome="failed",
            )


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
    if status in ("rolled_back", "aborted"):
        forget_secrets(env.db, driver.run_id)  # nothing can need them any more
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
    proven_start(env.audit, run)  # never act on an edited runbook text, params or starter
    data, marks = load_yaml(_path_of(run.path), run.source)
    try:
        rb = validate(Runbook, data, marks)
    except OpsError as exc:
        raise RunbookInvalid(getattr(exc, "problems", [])) from None
    recorded = {(s.phase, s.step_id) for s in get_steps(env.db, run.id)}
    if not rb.requires_approval and ("main", APPROVAL_STEP_ID) in recorded:
        # Started with an approval gate its launcher added (a rule not marked safe).
        rb = rb.model_copy(update={"requires_approval": True})
    params = dict(run.params)
    sealed = load_secrets(env.db, run.id)
    for name in run.secret_params:
        if f"param:{name}" in sealed:
            params[name] = sealed[f"param:{name}"]
            secrets.add(params[name])
            continue
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
    steps = expand_steps(rb, rollback_gate=("rollback", ROLLBACK_APPROVAL_STEP_ID) in recorded)
    driver = Driver(run.id, rb, steps, env, operator, run.mode, tctx, _sub_run)
    driver.restore_outputs(
        get_steps(env.db, run.id),
        sealed_results(env.db, run.id),
        lambda b: unseal(env.db, b),
    )
    return driver, run


def _path_of(text: str) -> Any:
    from pathlib import Path

    return Path(text)


def _end_leftovers(run_id: str) -> list[int]:
    """End every process a dead owner of ``run_id`` left behind (found by step token)."""
    return procs.kill_all([], f"{run_id}/", scan=True, grace=1.0)


async def _claimed(
    run_id: str, env: RunEnv, operator: Operator, previous: str
) -> tuple[Driver, Any]:
    """After a claim: end leftovers, then rebuild the driver; undo the claim on failure."""
    ended = _end_leftovers(run_id)
    if ended:
        env.audit.record("runbook.run.leftovers_ended", run_id, {"pids": ended})
    try:
        return await _reload(run_id, env, operator)
    except BaseException:
        with contextlib.suppress(Exception):
            set_run(env.db, None, run_id, status=previous, pid=None)
            release_run(env.db, run_id)
        raise


async def _resume_run(run_id: str, *, env: RunEnv, operator: Operator) -> RunResult:
    """Continue a run at its first unfinished step (or keep waiting for its approval).

    The run is claimed first (one compare-and-set): a second resume of the same run,
    from any process, is refused naming the owner."""
    run = get_run(env.db, run_id)
    if run.status in TERMINAL_RUN:
        raise RunbookRunError(f"run {run.id} already finished: {run.status}; nothing to resume")
    check_others(env, run, "runbook.resume-others")
    claimed = claim_run(
        env.db,
        env.audit,
        run.id,
        allowed=("interrupted", "waiting_approval"),
        verb="resumed",
        action="runbook.run.resumed",
        lease_seconds=env.config.settings.lease_seconds,
    )
    driver, run = await _claimed(run.id, env, operator, _resumable(run.status))
    if run.lock_key:
        acquire_lock(env.db, env.audit, run.lock_key, run.id)
    env.bus.publish(
        RunStarted(
            run_id=run.id,
            runbook=run.runbook,
            mode=run.mode,
            resumed=True,
            parent_run=run.parent_run,
        )
    )
    del claimed
    return await _drive(driver, run.phase, run.lock_key)


def _resumable(status: str) -> str:
    return status if status in ("interrupted", "waiting_approval") else "interrupted"


async def _rollback_run(run_id: str, *, env: RunEnv, operator: Operator) -> RunResult:
    """Run the rollback steps of a run that finished (e.g. fail back after a failover)."""
    run = get_run(env.db, run_id)
    if run.status in ("rolled_back", "waiting_approval") or (
        run.phase == "rollback" and run.status in TERMINAL_RUN
    ):
        raise RunbookRunError(f"run {run.id} is {run.status}; its rollback cannot start now")
    check_others(env, run, "runbook.rollback-others")
    claim_run(
        env.db,
        env.audit,
        run.id,
        allowed=("succeeded", "failed", "timed_out", "aborted", "interrupted"),
        verb="rolled back",
        action="runbook.rollback.requested",
        phase="rollback",
        finished_at=None,
        lease_seconds=env.config.settings.lease_seconds,
    )
    try:
        driver, run = await _claimed(run.id, env, operator, run.status)
        if not driver.runbook.rollback:
            raise RunbookRunError(f"runbook {run.runbook} has no rollback steps")
    except BaseException:
        with contextlib.suppress(Exception):
            set_run(env.db, None, run.id, status=run.status, phase=run.phase, pid=None)
            release_run(env.db, run.id)
        raise
    if run.lock_key:
        acquire_lock(env.db, env.audit, run.lock_key, run.id)
    env.bus.publish(RunStarted(run_id=run.id, runbook=run.runbook, mode=run.mode, resumed=True))
    return await _drive(driver, "rollback", run.lock_key)


def abort_run(run_id: str, *, env: RunEnv, force: bool = False) -> RunResult:
    """End a run that is not finished: interrupted, waiting, or left ``running`` by a dead
    process. Its leftover step processes are ended and its lock released (audited).

    A run whose owner process is alive is refused unless ``force``: then the owner is
    sent SIGTERM (same host only) and the abort proceeds once it has stopped."""
    run = get_run(env.db, run_id)
    if run.status in TERMINAL_RUN:
        raise RunbookRunError(f"run {run.id} already finished: {run.status}; nothing to abort")
    check_others(env, run, "runbook.abort-others")
    owner = run_owner(env.db, run.id) if run.status == "running" else None
    if force and owner is not None:
        _stop_owner(run, owner)
    claim_run(
        env.db,
        env.audit,
        run.id,
        allowed=("interrupted", "waiting_approval"),
        verb="aborted",
        action="runbook.run.abort_requested",
        lease_seconds=env.config.settings.lease_seconds,
    )
    try:
        _abort_claimed(env, run, force)
    finally:
        release_run(env.db, run.id)
    if run.lock_key:
        with contextlib.suppress(OpsError):
            release_lock(env.db, env.audit, run.lock_key, run_id=run.id)
    run = get_run(env.db, run.id)
    env.bus.publish(
        RunFinished(
            run_id=run.id, runbook=run.runbook, status="aborted", error=run.error, measured={}
        )
    )
    return _result(run)


def _abort_claimed(env: RunEnv, run: Any, force: bool) -> None:
    """End a claimed run's leftovers, interrupt its unfinished steps, mark it aborted."""
    ended = _end_leftovers(run.id)
    with immediate(env.db):
        for row in get_steps(env.db, run.id):
            if row.status in ("running", "retrying", "waiting_approval"):
                set_step(
                    env.db,
                    env.audit,
                    run.id,
                    row.phase,
                    row.idx,
                    status="interrupted",
                    error="the run was aborted",
                    action="runbook.step.interrupted",
                    outcome="aborted",
                )
        set_run(
            env.db,
            env.audit,
            run.id,
            status="aborted",
            error=f"aborted by {env.audit.actor}",
            finished_at=_now_iso(),
            pid=None,
            action="runbook.run.aborted",
            outcome="aborted",
            details={"leftover_pids_ended": ended, "forced": force},
        )
        forget_secrets(env.db, run.id)


def _stop_owner(run: Any, owner: Any) -> None:
    """SIGTERM the process that holds ``run``'s lease (on this host only), and wait."""
    import signal
    import time

    holder = owner.holder
    if holder.host != leases.local_host() or not holder.pid:
        raise RunbookRunError(
            f"run {run.id} is owned by pid {holder.pid} on {holder.host}; stop it there first "
            f"(or wait until its lease expires, {owner.seconds:g} s after its last heartbeat)"
        )
    with contextlib.suppress(ProcessLookupError):
        os.kill(holder.pid, signal.SIGTERM)
    end = time.monotonic() + 15
    while time.monotonic() < end and procs.alive(holder.pid, holder.pid_start):
        time.sleep(0.05)
    if procs.alive(holder.pid, holder.pid_start):
        raise RunbookRunError(f"run {run.id}: its owner pid {holder.pid} did not stop on SIGTERM")


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
    """Run ``runbook`` to its end, a durable wait (approval), or an interruption.

    Each run works in its own secret registry (a child of the caller's)."""
    with scoped():
        return await _start_run(
            runbook,
            params,
            env=env,
            operator=operator,
            mode=mode,
            parent_run=parent_run,
            incident_id=incident_id,
            run_id=run_id,
        )


async def resume_run(run_id: str, *, env: RunEnv, operator: Operator) -> RunResult:
    """Continue a run at its first unfinished step (or keep waiting for its approval).

    The run is claimed first (one compare-and-set): a second resume of the same run,
    from any process, is refused naming the owner."""
    with scoped():
        return await _resume_run(run_id, env=env, operator=operator)


async def rollback_run(run_id: str, *, env: RunEnv, operator: Operator) -> RunResult:
    """Run the rollback steps of a run that finished (e.g. fail back after a failover)."""
    with scoped():
        return await _rollback_run(run_id, env=env, operator=operator)


async def _sub_run(name: str, params: dict[str, Any], parent: Driver, previous: Any) -> RunResult:
    """A ``runbook`` step: resume the child started by an earlier attempt, else start one."""
    env = parent.env
    child_id = previous.get("run_id") if isinstance(previous, dict) else None
    if child_id:
        child = get_run(env.db, child_id)
        if child.status in TERMINAL_RUN:
            return _result(child)
        return await resume_run(child_id, env=env, operator=parent.operator)
    rb = load_runbook(find_sub_runbook(name, parent.runbook, env.config), config=env.config)
    _check_pinned(name, rb, parent)
    chain = _ancestry(env, parent.run_id)
    if rb.name in chain or len(chain) >= MAX_SUB_RUN_DEPTH:
        shown = " -> ".join([*reversed(chain), rb.name])
        raise RunbookRunError(f"sub-runbook cycle: {shown}; the sub-run was not started")
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


MAX_SUB_RUN_DEPTH = 20


def _ancestry(env: RunEnv, run_id: str | None) -> list[str]:
    """Runbook names from ``run_id`` up through its parents."""
    names: list[str] = []
    seen: set[str] = set()
    while run_id and run_id not in seen and len(names) <= MAX_SUB_RUN_DEPTH:
        seen.add(run_id)
        row = env.db.execute(
            "SELECT runbook, parent_run FROM runs WHERE id = ?", [run_id]
        ).fetchone()
        if row is None:
            break
        names.append(row[0])
        run_id = row[1]
    return names


def started_at(run: Any) -> datetime:
    return parse_when(run.started_at)
