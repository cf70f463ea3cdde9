"""Starting, resuming, rolling back, aborting and approving runbook runs from any screen.

Every path calls the runbook engine exactly as ``opsconsole runbook run|resume|rollback|
approve`` does; the engine audits each step with the console's audit log (interface tui).
Screens call these functions; none of them imports another screen's internals.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from opsconsole.tui.runs import RunHandle, new_run_id

if TYPE_CHECKING:
    from opsconsole.tui.app import OpsConsoleApp
    from opsconsole.tui.operator import TuiOperator

__all__ = [
    "FAILOVER_RUNBOOK",
    "abort_run",
    "approve_run",
    "failover_in_effect",
    "load_runbook_named",
    "new_operator",
    "offer_failover",
    "offer_launch",
    "offer_task_runbook",
    "open_run",
    "resume_run",
    "rollback_run",
    "run_env",
    "start_runbook",
]

FAILOVER_RUNBOOK = "regional-failover"


def run_env(app: OpsConsoleApp) -> Any:
    from opsconsole.errors import OpsError
    from opsconsole.runbooks import RunEnv

    if app.ctx.config is None:
        raise OpsError("runbooks need a config (--config DIR)")
    return RunEnv(db=app.ctx.db, audit=app.ctx.audit, config=app.ctx.config, bus=app.ctx.bus)


def load_runbook_named(app: OpsConsoleApp, name: str) -> Any:
    from opsconsole.runbooks import find_runbook, load_runbook

    return load_runbook(find_runbook(name, app.ctx.config))


def new_operator(app: OpsConsoleApp, handle: RunHandle) -> TuiOperator:
    """The dialogs that ask the person for ``handle``'s run (its log shows the answers)."""
    from opsconsole.tui.operator import TuiOperator

    handle.operator = TuiOperator(
        app, on_text=handle.add_log, on_change=lambda: app.runs.notify(handle)
    )
    return handle.operator


def open_run(app: OpsConsoleApp, handle: RunHandle) -> None:
    """Show the live view of ``handle`` (above whatever screen is open)."""
    from opsconsole.tui.screens.run_view import RunScreen

    app.push_screen(RunScreen(handle))


def start_runbook(
    app: OpsConsoleApp, name: str, params: dict[str, Any], *, show: bool = True
) -> RunHandle | None:
    """Start a run now (the caller already asked the person); open its live view at once
    ("starting…"), so the person sees the key was taken before the engine's first step."""
    from opsconsole.errors import OpsError
    from opsconsole.runbooks import start_run
    from opsconsole.runbooks.context import expand_steps

    try:
        env = run_env(app)
        book = load_runbook_named(app, name)
    except OpsError as exc:
        app.notify(str(exc), severity="error", timeout=10)
        return None
    if book.name == FAILOVER_RUNBOOK and _refuse_second_failover(app, params.get("region")):
        return None
    handle = RunHandle(runbook=book.name, params=dict(params), run_id=new_run_id())
    handle.load_steps(expand_steps(book))
    handle.add_log(f"── starting {book.name}…")
    operator = new_operator(app, handle)
    if show:
        open_run(app, handle)
    app.runs.launch(
        handle,
        lambda: start_run(book, params, env=env, operator=operator, run_id=handle.run_id),
    )
    return handle


def _stored_handle(app: OpsConsoleApp, run_id: str) -> RunHandle:
    from opsconsole.runbooks.state import get_run, get_steps

    run = get_run(app.ctx.db, run_id)
    handle = RunHandle(
        runbook=run.runbook,
        params=dict(run.params),
        run_id=run.id,
        status=run.status,
        error=run.error,
    )
    handle.load_steps(get_steps(app.ctx.db, run.id))
    return handle


def resume_run(
    app: OpsConsoleApp, run_id: str, *, handle: RunHandle | None = None
) -> RunHandle | None:
    from opsconsole.errors import OpsError
    from opsconsole.runbooks import resume_run as engine_resume

    try:
        env = run_env(app)
        fresh = handle is None
        if handle is None:
            handle = app.runs.find(run_id) or _stored_handle(app, run_id)
    except OpsError as exc:
        app.notify(str(exc), severity="error", timeout=10)
        return None
    handle.status = "starting"
    handle.add_log("── resuming…")
    operator = new_operator(app, handle)
    if fresh:
        open_run(app, handle)
    app.runs.launch(handle, lambda: engine_resume(run_id, env=env, operator=operator))
    return handle


def rollback_run(app: OpsConsoleApp, run_id: str, *, handle: RunHandle | None = None) -> None:
    """Fail back: run the rollback steps of a finished run, after a confirmation (``y``;
    ``enter`` rests on "No")."""
    from opsconsole.errors import OpsError
    from opsconsole.runbooks import rollback_run as engine_rollback
    from opsconsole.tui.screens.modals import ConfirmModal

    def go(yes: object) -> None:
        if yes is not True:
            return
        target = handle
        try:
            env = run_env(app)
            if target is None:
                target = app.runs.find(run_id) or _stored_handle(app, run_id)
                open_run(app, target)
        except OpsError as exc:
            app.notify(str(exc), severity="error", timeout=10)
            return
        target.status = "starting"
        target.add_log("── rolling back…")
        operator = new_operator(app, target)
        app.runs.launch(target, lambda: engine_rollback(run_id, env=env, operator=operator))

    app.push_screen(
        ConfirmModal(
            f"Run the rollback steps of run {run_id}?",
            title="Roll back",
            destructive=True,
            yes_label="Roll back",
            no_label="Keep as is",
        ),
        callback=go,
    )


def abort_run(app: OpsConsoleApp, handle: RunHandle) -> None:
    """``x``: stop the run after a confirmation; the engine then asks about rolling back."""
    from opsconsole.tui.screens.modals import ConfirmModal

    def go(yes: object) -> None:
        if yes is True and handle.worker is not None and handle.active:
            handle.add_log("■ abort requested")
            handle.worker.cancel()
            app.runs.notify(handle)

    app.push_screen(
        ConfirmModal(
            f"Abort run {handle.run_id or handle.runbook}? The current step is stopped; "
            "you are then asked whether to roll back.",
            title="Abort",
            destructive=True,
            yes_label="Abort",
            no_label="Keep running",
        ),
        callback=go,
    )


def approve_run(app: OpsConsoleApp, run_id: str, *, detail: str = "") -> None:
    """Approve (``a``) or deny (``d``, asked twice) another person's run; ``esc`` and
    ``enter`` decide nothing. The engine refuses the requester."""
    from opsconsole.errors import OpsError
    from opsconsole.runbooks import decide_approval
    from opsconsole.tui.screens.modals import ApprovalModal

    def go(answer: object) -> None:
        if answer not in ("approve", "deny"):
            return
        try:
            decide_approval(
                app.ctx.db,
                app.ctx.audit,
                run_id,
                approve=answer == "approve",
                comment="from the console",
                config=app.ctx.config,
            )
        except OpsError as exc:
            app.notify(str(exc), severity="error", timeout=10)
            return
        app.notify(f"run {run_id} {'approved' if answer == 'approve' else 'denied'}")

    app.push_screen(ApprovalModal(run_id, detail), callback=go)


def offer_launch(app: OpsConsoleApp, name: str, params: dict[str, Any], *, note: str = "") -> None:
    """The launch dialog for ``name``; on enter the run starts and its view opens."""
    from opsconsole.errors import OpsError
    from opsconsole.tui.screens.launch import LaunchModal

    try:
        book = load_runbook_named(app, name)
    except OpsError as exc:
        app.notify(str(exc), severity="error", timeout=10)
        return

    def chosen(answer: object) -> None:
        if not isinstance(answer, tuple):
            return
        what, values = answer
        if what == "plan":
            from opsconsole.tui.screens.plan import PlanScreen

            app.push_screen(PlanScreen(book, values))
        else:
            start_runbook(app, name, values)

    app.push_screen(LaunchModal(book, params, note=note, regions=_regions(app)), callback=chosen)


def _regions(app: OpsConsoleApp) -> list[tuple[str, str]]:
    if app.ctx.config is None:
        return []
    return [(rid, r.name) for rid, r in app.ctx.config.inventory.regions.items()]


def offer_failover(app: OpsConsoleApp, region: str | None) -> None:
    """From a down region: the failover runbook with the region filled in (enter runs).

    A region that is not in the inventory is refused with the known ones named. A region
    already failed over is not offered again: the person is told who serves it and how to
    fail back."""
    if region is not None and app.ctx.config is not None:
        regions = app.ctx.config.inventory.regions
        if region not in regions:
            app.notify(
                f"unknown region {region!r}; regions are {', '.join(regions)}",
                title="Fail over",
                severity="error",
                timeout=10,
            )
            return
    if _refuse_second_failover(app, region):
        return
    note = ""
    if region is not None and app.ctx.config is not None:
        reg = app.ctx.config.inventory.regions[region]
        note = f"{reg.name} ({region}) → standby {reg.standby or 'none'}"
        feed_state = _region_state(app, region)
        if feed_state and feed_state != "down":
            note += (
                f"\n▲ {region} is {feed_state}, not down: the health gate will refuse "
                "unless force is true"
            )
    offer_launch(app, FAILOVER_RUNBOOK, {"region": region} if region else {}, note=note)


def _refuse_second_failover(app: OpsConsoleApp, region: object) -> bool:
    """True (and the person told why and how to fail back) if ``region`` is failed over."""
    info = failover_in_effect(app, region) if isinstance(region, str) and region else None
    if info is None:
        return False
    from opsconsole.tui.widgets.common import served_by_text

    app.notify(
        f"{region} is already failed over: {served_by_text(info)}.\n"
        f"To fail back: Runbooks (2), open run {info.run_id} (o), press b; "
        f"or `{info.rollback_command}`.",
        title="Already failed over",
        severity="warning",
        timeout=20,
    )
    return True


def failover_in_effect(app: OpsConsoleApp, region: str) -> Any:
    """The region's failover in effect (``FailoverInfo``) or None, read now from the run
    records (one small read; the dashboard's copy may be up to a sweep old)."""
    from opsconsole.runbooks.failovers import failovers_in_effect

    try:
        current = failovers_in_effect(app.ctx.db, config=app.ctx.config, runbook=FAILOVER_RUNBOOK)
    except Exception:  # the database is unreadable: fall back to what the dashboard saw
        current = getattr(app, "failovers", {})
    return current.get(region)


def _region_state(app: OpsConsoleApp, region: str) -> str | None:
    snap = app.last_snapshot
    view = snap.region(region) if snap is not None else None
    return view.state if view else None


def offer_task_runbook(
    app: OpsConsoleApp,
    incident_id: str,
    task: Any,
    params: dict[str, Any],
    *,
    on_done: Any = None,
) -> None:
    """An incident task's runbook: prefilled from the incident; the run is linked to it."""
    from opsconsole.errors import OpsError
    from opsconsole.incidents.runlink import run_task_runbook
    from opsconsole.runbooks.context import expand_steps
    from opsconsole.tui.incident_feed import incident_service
    from opsconsole.tui.screens.launch import LaunchModal

    try:
        book = load_runbook_named(app, task.runbook)
        env = run_env(app)
    except OpsError as exc:
        app.notify(str(exc), severity="error", timeout=10)
        return

    def chosen(answer: object) -> None:
        if not isinstance(answer, tuple) or answer[0] != "run":
            return
        values = answer[1]
        handle = RunHandle(runbook=book.name, params=dict(values))
        handle.load_steps(expand_steps(book))
        handle.add_log(f"── starting {book.name} for {incident_id}…")
        operator = new_operator(app, handle)
        svc = incident_service(app.ctx)

        async def work() -> Any:
            try:
                return await run_task_runbook(
                    svc, incident_id, task.id, env=env, operator=operator, params=values
                )
            finally:
                if on_done is not None:
                    on_done()

        open_run(app, handle)
        app.runs.launch(handle, work, known_id=False)

    app.push_screen(
        LaunchModal(
            book,
            params,
            note=f"for {incident_id} task {task.id}: {task.title}",
            regions=_regions(app),
        ),
        callback=chosen,
    )
