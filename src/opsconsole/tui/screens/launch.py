"""Starting, resuming, rolling back and approving runbook runs from any screen.

Every path calls the runbook engine exactly as ``opsconsole runbook run|resume|rollback|
approve`` does; the engine audits each step with the console's audit log (interface tui).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, ClassVar

from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.widgets import Button, Input, Label, Static

from opsconsole.tui.runs import RunHandle, new_run_id
from opsconsole.tui.screens.base import OpsModal
from opsconsole.tui.screens.modals import ConfirmModal

if TYPE_CHECKING:
    from opsconsole.tui.app import OpsConsoleApp

__all__ = [
    "FAILOVER_RUNBOOK",
    "LaunchModal",
    "approve_run",
    "offer_failover",
    "offer_launch",
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


def _load(app: OpsConsoleApp, name: str) -> Any:
    from opsconsole.runbooks import find_runbook, load_runbook

    return load_runbook(find_runbook(name, app.ctx.config))


def _operator(app: OpsConsoleApp, handle: RunHandle) -> Any:
    from opsconsole.tui.operator import TuiOperator

    handle.operator = TuiOperator(app, on_text=handle.add_log)
    return handle.operator


def _show(app: OpsConsoleApp, handle: RunHandle) -> None:
    from opsconsole.tui.screens.run_view import RunScreen

    app.push_screen(RunScreen(handle))


def start_runbook(
    app: OpsConsoleApp, name: str, params: dict[str, Any], *, show: bool = True
) -> RunHandle | None:
    """Start a run now (the caller already asked the person); open its live view."""
    from opsconsole.errors import OpsError
    from opsconsole.runbooks import start_run
    from opsconsole.runbooks.context import expand_steps

    try:
        env = run_env(app)
        book = _load(app, name)
    except OpsError as exc:
        app.notify(str(exc), severity="error", timeout=10)
        return None
    if book.name == FAILOVER_RUNBOOK and _refuse_second_failover(app, params.get("region")):
        return None
    handle = RunHandle(runbook=book.name, params=dict(params), run_id=new_run_id())
    handle.load_steps(expand_steps(book))
    operator = _operator(app, handle)
    app.runs.launch(
        handle,
        lambda: start_run(book, params, env=env, operator=operator, run_id=handle.run_id),
    )
    if show:
        _show(app, handle)
    return handle


def resume_run(
    app: OpsConsoleApp, run_id: str, *, handle: RunHandle | None = None
) -> RunHandle | None:
    from opsconsole.errors import OpsError
    from opsconsole.runbooks import resume_run as engine_resume
    from opsconsole.runbooks.state import get_run, get_steps

    try:
        env = run_env(app)
        run = get_run(app.ctx.db, run_id)
    except OpsError as exc:
        app.notify(str(exc), severity="error", timeout=10)
        return None
    fresh = handle is None
    if handle is None:
        handle = RunHandle(runbook=run.runbook, params=dict(run.params), run_id=run.id)
        handle.load_steps(get_steps(app.ctx.db, run.id))
    handle.status = "starting"
    operator = _operator(app, handle)
    app.runs.launch(handle, lambda: engine_resume(run.id, env=env, operator=operator))
    if fresh:
        _show(app, handle)
    return handle


def rollback_run(app: OpsConsoleApp, run_id: str, *, handle: RunHandle | None = None) -> None:
    """Fail back: run the rollback steps of a finished run, after a confirmation."""
    from opsconsole.runbooks import rollback_run as engine_rollback

    def go(yes: object) -> None:
        if not yes:
            return
        target = handle
        try:
            env = run_env(app)
        except Exception as exc:
            app.notify(str(exc), severity="error")
            return
        if target is None:
            from opsconsole.runbooks.state import get_run, get_steps

            run = get_run(app.ctx.db, run_id)
            target = RunHandle(runbook=run.runbook, params=dict(run.params), run_id=run.id)
            target.load_steps(get_steps(app.ctx.db, run.id))
            _show(app, target)
        target.status = "starting"
        operator = _operator(app, target)
        app.runs.launch(target, lambda: engine_rollback(run_id, env=env, operator=operator))

    app.push_screen(
        ConfirmModal(f"Run the rollback steps of run {run_id}?", title="Roll back"), callback=go
    )


def approve_run(app: OpsConsoleApp, run_id: str) -> None:
    """Approve another person's run (the engine refuses the requester)."""
    from opsconsole.errors import OpsError
    from opsconsole.runbooks import decide_approval

    def go(yes: object) -> None:
        if yes is None:
            return
        try:
            decide_approval(
                app.ctx.db,
                app.ctx.audit,
                run_id,
                approve=bool(yes),
                comment="from the console",
                config=app.ctx.config,
            )
        except OpsError as exc:
            app.notify(str(exc), severity="error", timeout=10)
            return
        app.notify(f"run {run_id} {'approved' if yes else 'denied'}")

    app.push_screen(
        ConfirmModal(f"Approve run {run_id}? (n denies, esc cancels)", title="Approval"),
        callback=go,
    )


class LaunchModal(OpsModal):
    """Parameters of a runbook, prefilled; enter runs, ``p`` plans (dry run)."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape", "close", "Cancel"),
        Binding("ctrl+r", "go('run')", "Run"),
        Binding("ctrl+d", "go('plan')", "Plan (dry run)"),
    ]

    def __init__(self, runbook: Any, params: dict[str, Any], *, note: str = "") -> None:
        super().__init__()
        self.runbook = runbook
        self.params = params
        self.note = note

    def compose(self) -> ComposeResult:
        rb = self.runbook
        with Vertical(classes="dialog"):
            yield Label(f"Run {rb.name}", classes="dialog-title")
            with VerticalScroll(classes="dialog-body"):
                if self.note:
                    yield Static(self.note, markup=False, classes="launch-note")
                yield Static(" ".join(rb.description.split()), markup=False, classes="dialog-hint")
                for name, spec in rb.params.items():
                    value = self.params.get(name, spec.default)
                    need = " (required)" if spec.required else ""
                    yield Label(f"{name}{need}: {spec.description}")
                    yield Input(
                        value=""
                        if value is None
                        else str(value).lower()
                        if isinstance(value, bool)
                        else str(value),
                        password=spec.secret,
                        id=f"param-{name}",
                        compact=True,
                        placeholder=spec.type + (f" one of {spec.choices}" if spec.choices else ""),
                    )
            with Horizontal(classes="dialog-buttons"):
                yield Button("Run (enter)", id="run", variant="error")
                yield Button("Plan (^d)", id="plan")
                yield Button("Cancel (esc)", id="cancel")

    def on_mount(self) -> None:
        missing = [i for i in self.query(Input) if not i.value]
        (missing[0] if missing else self.query_one("#run", Button)).focus()

    def values(self) -> dict[str, str]:
        out: dict[str, str] = {}
        for name in self.runbook.params:
            value = self.query_one(f"#param-{name}", Input).value
            if value != "":
                out[name] = value
        return out

    def on_input_submitted(self, event: Input.Submitted) -> None:
        event.stop()
        self.action_go("run")

    def on_button_pressed(self, event: Button.Pressed) -> None:
        event.stop()
        if event.button.id == "cancel":
            self.dismiss(None)
        else:
            self.action_go(event.button.id or "run")

    def action_go(self, what: str) -> None:
        self.dismiss((what, self.values()))


def offer_launch(app: OpsConsoleApp, name: str, params: dict[str, Any], *, note: str = "") -> None:
    """The launch dialog for ``name``; on enter the run starts and its view opens."""
    from opsconsole.errors import OpsError

    try:
        book = _load(app, name)
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

    app.push_screen(LaunchModal(book, params, note=note), callback=chosen)


def offer_failover(app: OpsConsoleApp, region: str | None) -> None:
    """From a down region: the failover runbook with the region filled in (enter runs).

    A region already failed over (its last failover succeeded and was not rolled back)
    is not offered again: the person is told who serves it and how to fail back."""
    if _refuse_second_failover(app, region):
        return
    note = ""
    if region is not None and app.ctx.config is not None:
        reg = app.ctx.config.inventory.regions.get(region)
        if reg is not None:
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
    from opsconsole.tui.screens.dashboard import served_by_text

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

    try:
        book = _load(app, task.runbook)
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
        operator = _operator(app, handle)
        svc = incident_service(app.ctx)

        async def work() -> Any:
            try:
                return await run_task_runbook(
                    svc, incident_id, task.id, env=env, operator=operator, params=values
                )
            finally:
                if on_done is not None:
                    on_done()

        app.runs.launch(handle, work, known_id=False)
        _show(app, handle)

    app.push_screen(
        LaunchModal(book, params, note=f"for {incident_id} task {task.id}: {task.title}"),
        callback=chosen,
    )
