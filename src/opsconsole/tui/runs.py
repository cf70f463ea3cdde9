"""Runbook runs started from the console, followed live through the event bus.

A :class:`RunHandle` keeps what the run screen shows (steps, output, status) while the
person looks elsewhere; :class:`RunManager` starts runs as Textual workers on the app's
loop, through the same engine functions as ``opsconsole runbook run``.
"""

from __future__ import annotations

import secrets as pysecrets
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from opsconsole.events import Event
from opsconsole.timeutil import utcnow

if TYPE_CHECKING:
    from textual.worker import Worker

    from opsconsole.tui.app import OpsConsoleApp

__all__ = ["RunHandle", "RunManager", "StepLine", "new_run_id"]

TERMINAL = ("succeeded", "failed", "timed_out", "rolled_back", "aborted", "interrupted")


def new_run_id() -> str:
    # Same shape as the engine's own ids, so the CLI's prefix matching works on them.
    return f"{utcnow():%Y%m%d-%H%M%S}-{pysecrets.token_hex(3)}"


@dataclass
class StepLine:
    phase: str
    id: str
    name: str
    action: str
    status: str = "pending"
    attempt: int = 1
    error: str | None = None
    duration: float | None = None


@dataclass
class RunHandle:
    runbook: str
    params: dict[str, Any]
    run_id: str | None = None
    status: str = "starting"
    steps: dict[tuple[str, str], StepLine] = field(default_factory=dict)
    log: deque[str] = field(default_factory=lambda: deque(maxlen=5000))
    logged: int = 0  # lines ever appended (the view tracks how many it has drawn)
    error: str | None = None
    measured: dict[str, float] = field(default_factory=dict)
    children: set[str] = field(default_factory=set)
    worker: Worker[Any] | None = None
    approval: str | None = None
    current: str | None = None
    operator: Any = None  # the TuiOperator asking for this run
    decided: str | None = None  # "approved by bob: u resumes", from the store's changes

    @property
    def active(self) -> bool:
        return self.status not in TERMINAL and self.status != "waiting_approval"

    def add_log(self, line: str) -> None:
        self.log.append(line)
        self.logged += 1

    def load_steps(self, rows: list[Any]) -> None:
        """Steps from the stored run (``run_steps`` rows) or the runbook definition."""
        for r in rows:
            key = (r.phase, r.step_id) if hasattr(r, "step_id") else (r[0], r[2].id)
            if hasattr(r, "step_id"):
                self.steps[key] = StepLine(
                    r.phase,
                    r.step_id,
                    r.name or r.step_id,
                    r.action,
                    r.status,
                    r.attempts or 1,
                    r.error,
                )
            else:
                phase, _idx, step = r
                self.steps[key] = StepLine(phase, step.id, step.title, step.action)

    @property
    def local(self) -> bool:
        """This console's engine drives the run (its events arrive on the bus)."""
        return self.worker is not None and not self.worker.is_finished

    def apply_stored(self, run: Any, rows: list[Any]) -> bool:
        """Catch up with the stored run (``runs`` row and ``run_steps`` rows) after another
        process changed it: statuses, and the output of steps that finished since.
        True if anything changed."""
        changed = False
        for r in rows:
            key = (r.phase, r.step_id)
            line = self.steps.get(key)
            if line is None:
                line = StepLine(r.phase, r.step_id, r.name or r.step_id, r.action)
                self.steps[key] = line
            if (line.status, line.error) == (r.status, r.error):
                continue
            changed = True
            line.status, line.error, line.attempt = r.status, r.error, r.attempts or 1
            if r.status == "running":
                self.current = r.step_id
                self.add_log(f"▶ {r.step_id}: {line.name}")
            elif r.status != "pending":
                why = f": {r.error}" if r.error else ""
                self.add_log(f"{_mark(r.status)} {r.step_id} {r.status}{why}")
                for text in (r.output or "").splitlines()[-50:]:
                    self.add_log(f"  {text}")
        if (self.status, self.error) != (run.status, run.error):
            changed = True
            self.status, self.error = run.status, run.error
            self.measured = dict(run.measured or {})
            self.add_log(f"── run {run.status}" + (f": {run.error}" if run.error else ""))
        return changed

    def apply(self, event: Event) -> None:
        """Update from one engine event (already redacted by the engine)."""
        ev: Any = event
        kind = ev.kind
        run_id = getattr(event, "run_id", None)
        child = run_id != self.run_id
        prefix = f"[{run_id}] " if child else ""
        if kind == "RunStarted":
            if child:
                self.children.add(run_id)
                self.add_log(f"── sub-run {run_id} ({ev.runbook}) started")
                return
            self.status = "running"
            resumed = " (resumed)" if getattr(event, "resumed", False) else ""
            self.add_log(f"── run {run_id} of {self.runbook} started{resumed}")
        elif kind == "StepStarted" and not child:
            key = (ev.phase, ev.step_id)
            line = self.steps.get(key) or StepLine(ev.phase, ev.step_id, ev.name, ev.action)
            line.status, line.attempt = "running", ev.attempt
            self.steps[key] = line
            self.current = ev.step_id
            again = f" (attempt {line.attempt})" if line.attempt > 1 else ""
            self.add_log(f"▶ {ev.step_id}: {ev.name}{again}")
        elif kind == "StepStarted":
            self.add_log(f"{prefix}▶ {ev.step_id}: {ev.name}")
        elif kind == "StepOutput":
            host = f"{ev.host}: " if getattr(event, "host", None) else ""
            err = "! " if getattr(event, "stream", "") == "stderr" else ""
            self.add_log(f"{prefix}  {err}{host}{ev.line.rstrip()}")
        elif kind == "StepFinished":
            status = ev.status
            if not child:
                key = (ev.phase, ev.step_id)
                line = self.steps.setdefault(key, StepLine(ev.phase, ev.step_id, ev.step_id, ""))
                line.status, line.error = status, ev.error
                line.duration = ev.duration_seconds
                if status == "waiting_approval":
                    self.status = "waiting_approval"
            took = f" in {ev.duration_seconds:.1f}s" if ev.duration_seconds else ""
            why = f": {ev.error}" if ev.error else (f" ({ev.note})" if ev.note else "")
            self.add_log(f"{prefix}{_mark(status)} {ev.step_id} {status}{took}{why}")
        elif kind == "ApprovalRequested" and not child:
            self.approval = ev.message
            self.decided = None
            self.add_log(
                f"⏸ approval needed from someone other than {ev.requested_by}: {ev.message}"
            )
        elif kind == "RunFinished":
            if child:
                self.add_log(f"── sub-run {run_id} {ev.status}")
                return
            self.status = ev.status
            self.error = ev.error
            self.measured = dict(ev.measured)
            measured = ", ".join(f"{k} {v:.1f}" for k, v in self.measured.items())
            self.add_log(
                f"── run {ev.status}"
                + (f": {ev.error}" if ev.error else "")
                + (f" · measured {measured}" if measured else "")
            )


def _mark(status: str) -> str:
    return {
        "succeeded": "✔",
        "failed": "✖",
        "timed_out": "⌛",
        "skipped": "↷",
        "interrupted": "!",
        "waiting_approval": "⏸",
    }.get(status, "·")


class RunManager:
    """Owns the handles; routes bus events to them; starts engine calls as workers."""

    def __init__(self, app: OpsConsoleApp) -> None:
        self.app = app
        self.handles: dict[str, RunHandle] = {}
        self._unclaimed: list[RunHandle] = []
        self.listeners: list[Callable[[RunHandle], None]] = []

    def on_event(self, event: Event) -> None:
        """Bus subscriber; called on the UI thread (see OpsConsoleApp._bus_event)."""
        run_id = getattr(event, "run_id", None)
        if run_id is None:
            return
        handle = self.handles.get(run_id)
        if handle is None:
            parent = getattr(event, "parent_run", None)
            handle = self.handles.get(parent) if parent else None
            if handle is not None:
                self.handles[run_id] = handle
            elif event.kind == "RunStarted" and self._unclaimed:
                handle = self._claim(event)
        if handle is None:
            return
        handle.apply(event)
        for listener in list(self.listeners):
            listener(handle)

    def _claim(self, event: Event) -> RunHandle | None:
        # A run started through another API (e.g. an incident task) whose id we learn here.
        for handle in self._unclaimed:
            if handle.runbook == getattr(event, "runbook", None):
                self._unclaimed.remove(handle)
                handle.run_id = event.run_id  # type: ignore[attr-defined]
                self.handles[handle.run_id] = handle
                return handle
        return None

    def launch(
        self, handle: RunHandle, work: Callable[[], Awaitable[Any]], *, known_id: bool = True
    ) -> RunHandle:
        """Run ``work`` (an engine coroutine factory) as a worker that fills ``handle``."""
        if known_id and handle.run_id:
            self.handles[handle.run_id] = handle
        else:
            self._unclaimed.append(handle)

        async def runner() -> None:
            from opsconsole.errors import OpsError

            self.app.active_runs.add(handle.run_id or handle.runbook)
            try:
                result = await work()
            except OpsError as exc:
                handle.status, handle.error = "failed", str(exc)
                handle.add_log(f"✖ {exc}")
            except Exception as exc:  # a bug: show it, do not take the console down
                handle.status, handle.error = "failed", f"{type(exc).__name__}: {exc}"
                handle.add_log(f"✖ unexpected error: {type(exc).__name__}: {exc}")
            else:
                if result is not None:
                    handle.run_id = handle.run_id or result.run_id
                    handle.status, handle.error = result.status, result.error
                    handle.measured = dict(result.measured)
            finally:
                self.app.active_runs.discard(handle.run_id or handle.runbook)
                self.app.active_runs.discard(handle.runbook)
                if handle in self._unclaimed:
                    self._unclaimed.remove(handle)
                for listener in list(self.listeners):
                    listener(handle)

        handle.worker = self.app.run_worker(runner(), group="runbook-run", exit_on_error=False)
        return handle

    def notify(self, handle: RunHandle) -> None:
        """Tell the views of ``handle`` that something changed (e.g. a question opened)."""
        for listener in list(self.listeners):
            listener(handle)

    def find(self, run_id: str) -> RunHandle | None:
        return self.handles.get(run_id)
