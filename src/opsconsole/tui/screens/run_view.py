"""One runbook run, live: step list, streaming output, status; abort and roll back.

The footer follows the run's state (a finished run offers no abort, an interrupted one no
approve). ``enter`` answers a question put off with ``esc``; ``y``/``enter`` pressed
before the run's next question appeared are kept for it (see ``TuiOperator``).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, ClassVar

from rich.table import Table
from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal
from textual.widgets import Header, RichLog, Static

from opsconsole.tui.screens.base import OpsScreen
from opsconsole.tui.widgets.common import state_text
from opsconsole.tui.widgets.key_footer import KeyFooter

if TYPE_CHECKING:
    from opsconsole.tui.runs import RunHandle

__all__ = ["RunScreen"]


class RunScreen(OpsScreen):
    """Shows a :class:`RunHandle`; the run goes on if the person leaves (esc)."""

    TITLE = "Run"
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("enter", "answer", "Answer"),
        Binding("x", "abort_run", "Abort…"),
        Binding("a", "approve_run", "Approve…"),
        Binding("u", "resume_run", "Resume"),
        Binding("b", "rollback_run", "Roll back…"),
        Binding("y", "type_ahead('y')", "", show=False),
    ]

    def __init__(self, handle: RunHandle) -> None:
        super().__init__()
        self.handle = handle
        self._drawn = 0

    def compose(self) -> ComposeResult:
        yield Header()
        yield Static("", id="run-status", classes="status-line")
        with Horizontal(id="run-main"):
            yield Static("", id="run-steps")
            yield RichLog(id="run-log", wrap=True, markup=False, max_lines=5000, min_width=20)
        yield KeyFooter()

    def on_mount(self) -> None:
        self.app.runs.listeners.append(self._changed)  # type: ignore[attr-defined]
        # Another console may drive this run, approve or abort it (opsconsole.changes).
        self.app.change_listeners.append(self._store_changed)  # type: ignore[attr-defined]
        self.set_interval(1.0, self._tick)
        self._draw()

    def _tick(self) -> None:
        self._draw_status()
        self.refresh_bindings()

    def on_screen_resume(self) -> None:
        self._draw()

    def on_unmount(self) -> None:
        listeners = self.app.runs.listeners  # type: ignore[attr-defined]
        if self._changed in listeners:
            listeners.remove(self._changed)
        stored = self.app.change_listeners  # type: ignore[attr-defined]
        if self._store_changed in stored:
            stored.remove(self._store_changed)

    def _store_changed(self, changes: list[Any]) -> None:
        from opsconsole.changes import concerns, describe
        from opsconsole.runbooks.state import get_run, get_steps

        h = self.handle
        if h.run_id is None or h.local:  # our own engine's events already drew it
            return
        mine = [c for c in changes if concerns(c, h.run_id)]
        if not mine:
            return
        own = self.app.own_seqs  # type: ignore[attr-defined]
        for c in mine:
            if c.seq not in own and not c.action.startswith("runbook.step."):
                h.add_log(f"· {describe(c)}")
            # Only decisions count: a refused attempt has the same action, outcome denied.
            if c.action == "runbook.approval.approved" and c.outcome == "ok":
                h.decided = f"approved by {c.actor}: u resumes"
            elif c.action == "runbook.approval.denied" and c.outcome == "ok":
                h.decided = f"denied by {c.actor}"
            elif c.action == "runbook.approval.requested":
                h.decided = None
        try:
            db = self.app.ctx.db  # type: ignore[attr-defined]
            h.apply_stored(get_run(db, h.run_id), get_steps(db, h.run_id))
        except Exception as exc:  # a view must not break on a vanished run
            h.add_log(f"✖ cannot reload the run: {exc}")
        self._draw()

    def _changed(self, handle: RunHandle) -> None:
        if handle is self.handle:
            self._draw()

    def _draw(self) -> None:
        self._draw_status()
        self._draw_steps()
        log = self.query_one(RichLog)
        new = self.handle.logged - self._drawn
        if new > 0:
            for line in list(self.handle.log)[-new:]:
                log.write(line)
            self._drawn = self.handle.logged
        self.refresh_bindings()

    def _draw_status(self) -> None:
        h = self.handle
        operator = h.operator
        state = h.status
        if operator is not None and operator.pending and h.active:
            state = "waiting"
        text = Text.assemble(
            (f"{h.runbook} ", "bold"), (f"run {h.run_id or '…'}  ", "dim"), state_text(state)
        )
        if state == "waiting":
            text.append(f"  {operator.pending}")
            if operator.put_off:
                text.append("  · enter: answer it now", style="bold")
        elif h.status == "starting":
            text.append("  starting…")
        if h.status == "waiting_approval" and h.decided:
            text.append(f"  {h.decided}", style="bold")
        elif h.status == "waiting_approval":
            text.append(
                "  another person must approve: opsconsole runbook approve "
                f"{h.run_id} (or 'a' in their console), then u resumes"
            )
        if h.error and not h.active:
            text.append(f"  {h.error}", style="red")
        if h.measured:
            text.append("  " + ", ".join(f"{k} {v:.1f}" for k, v in h.measured.items()))
        self.query_one("#run-status", Static).update(text)

    def _draw_steps(self) -> None:
        table = Table(box=None, show_header=False, pad_edge=False, expand=True)
        table.add_column("state", no_wrap=True, width=10)
        table.add_column("step", overflow="ellipsis", no_wrap=True)
        phase = None
        for line in self.handle.steps.values():
            if line.phase != phase:
                phase = line.phase
                if phase == "rollback":
                    table.add_row(Text("rollback", style="bold"), "")
            took = f" {line.duration:.1f}s" if line.duration else ""
            table.add_row(state_text(line.status), f"{line.id}{took}")
        self.query_one("#run-steps", Static).update(table)

    # --- actions -------------------------------------------------------------------

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        if super().check_action(action, parameters) is False:
            return False
        h = self.handle
        if action == "abort_run":
            return h.active and h.worker is not None
        if action == "approve_run":
            return h.status == "waiting_approval" and h.run_id is not None
        if action == "resume_run":
            return h.status in ("waiting_approval", "interrupted") and h.run_id is not None
        if action == "rollback_run":
            return (
                not h.active
                and h.run_id is not None
                and h.status not in ("rolled_back", "failed_to_start")
            )
        if action == "answer":
            return h.active and h.operator is not None
        return True

    _KEY_ACTIONS: ClassVar[dict[str, tuple[str, str]]] = {
        "u": ("resume_run", "resume"),
        "a": ("approve_run", "approve"),
        "x": ("abort_run", "abort"),
        "b": ("rollback_run", "roll back"),
    }

    def on_key(self, event: Any) -> None:
        """A run key that does not apply now says why instead of doing nothing."""
        known = self._KEY_ACTIONS.get(event.key)
        if known is None or self.app.ctx.read_only:  # type: ignore[attr-defined]
            return
        action, verb = known
        if not self.check_action(action, ()):
            event.stop()
            h = self.handle
            why = h.error or ""
            self.app.notify(
                f"run {h.run_id or h.runbook} is {h.status}: nothing to {verb}"
                + (f" ({why})" if why and h.status == "failed" else ""),
                severity="warning",
                timeout=6,
            )

    def action_answer(self) -> None:
        """``enter``: the question put off with esc again, or kept for the next one."""
        operator = self.handle.operator
        if operator is not None and not operator.reopen():
            self.action_type_ahead("enter")

    def action_type_ahead(self, key: str) -> None:
        """``y`` or ``enter`` before the run's next question: kept for that question."""
        h = self.handle
        if h.active and h.operator is not None and h.operator.pending is None:
            h.operator.type_ahead(key)
            self.app.notify(f"{key}: kept for the run's next question", timeout=3)

    def action_abort_run(self) -> None:
        """``x``: asks first (``y`` aborts; ``enter`` keeps the run going)."""
        from opsconsole.tui.run_control import abort_run

        abort_run(self.app, self.handle)  # type: ignore[arg-type]

    def action_approve_run(self) -> None:
        from opsconsole.tui.run_control import approve_run

        approve_run(self.app, self.handle.run_id or "", detail=self.handle.approval or "")  # type: ignore[arg-type]

    def action_resume_run(self) -> None:
        from opsconsole.tui.run_control import resume_run

        resume_run(self.app, self.handle.run_id or "", handle=self.handle)  # type: ignore[arg-type]

    def action_rollback_run(self) -> None:
        from opsconsole.tui.run_control import rollback_run

        rollback_run(self.app, self.handle.run_id or "", handle=self.handle)  # type: ignore[arg-type]

    @property
    def status(self) -> str:
        return self.handle.status

    def result_text(self) -> Any:
        return self.query_one("#run-status", Static).render()
