"""``--follow``: print what other operators change, as they commit it.

The cursor is taken *before* the current state is printed, so a change committed while
the state is being printed is streamed rather than lost (at worst shown twice, and the
renderers below skip what they already printed). Ctrl-C ends a follow with exit 130 and
no traceback; a followed run ends the follow when it finishes.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import typer

from opsconsole.cli.safe import clean, plain

if TYPE_CHECKING:
    from rich.console import Console

    from opsconsole.changes import Change, ChangeSource

__all__ = ["Follower", "follow_incident", "follow_run", "incident_mark"]

# A wait ends at least this often (a notification or a change counter ends it sooner).
WAIT_SECONDS = 5.0


class Follower:
    """A change source and its cursor, opened before the current state is printed."""

    def __init__(self, db: Any) -> None:
        from opsconsole.changes import open_changes

        self.source: ChangeSource = open_changes(db)
        try:
            self.cursor = self.source.cursor_now()
        except BaseException:
            self.source.close()
            raise

    def run(self, about: str, on_change: Callable[[list[Change]], int | None]) -> None:
        """Hand each batch of changes concerning ``about`` to ``on_change`` until it
        returns an exit code; Ctrl-C exits 130."""
        from opsconsole.changes import concerns

        stop = threading.Event()
        try:
            while True:
                found = self.source.wait(self.cursor, stop, timeout=WAIT_SECONDS)
                if not found:
                    continue
                self.cursor = found[-1].seq
                mine = [c for c in found if concerns(c, about)]
                if mine:
                    code = on_change(mine)
                    if code is not None:
                        raise typer.Exit(code)
        except KeyboardInterrupt:
            raise typer.Exit(130) from None
        finally:
            stop.set()
            self.source.close()


def incident_mark(svc: Any, incident_id: str) -> tuple[int, str]:
    """What has been shown of an incident: its newest timeline seq and its status (read
    before it is printed, so an entry that lands meanwhile is streamed, not lost)."""
    seen = max((e.seq for e in svc.timeline(incident_id)), default=0)
    return seen, svc.get(incident_id).status


def follow_incident(
    out: Console, svc: Any, incident_id: str, follower: Follower, mark: tuple[int, str]
) -> None:
    """Stream an incident's new timeline entries (notes, updates, tasks, roles, status)."""
    from opsconsole.changes import describe

    seen, status = mark
    out.print(plain(f"following {incident_id} (Ctrl-C to stop)…", style="dim"))

    def changed(changes: list[Change]) -> None:
        nonlocal seen, status
        entries = [e for e in svc.timeline(incident_id) if e.seq > seen]
        for e in entries:
            line = plain(f"{e.ts:%Y-%m-%d %H:%M:%S} UTC  ", style="dim")
            line.append(clean(f"{e.actor}: "), style="bold")
            line.append(clean(e.summary))
            out.print(line)
            seen = max(seen, e.seq)
        now = svc.get(incident_id).status
        moved = now != status
        if moved:
            out.print(plain(f"status: {status} → {now}", style="bold"))
            status = now
        if not entries and not moved:
            for c in changes:  # a change that leaves no timeline entry still shows
                out.print(plain(f"· {describe(c)}", style="dim"))

    follower.run(incident_id, changed)


def follow_run(out: Console, db: Any, run: Any, steps: list[Any], follower: Follower) -> None:
    """Stream a run's step starts, ends with their output, and its status, until it
    finishes; exits with the run's exit code (as ``runbook run`` does). ``run`` and
    ``steps`` are what was printed."""
    from opsconsole.changes import describe
    from opsconsole.cli.runbook_view import _STYLE
    from opsconsole.runbooks import exit_code_for
    from opsconsole.runbooks.state import TERMINAL_RUN, get_run, get_steps

    if run.status in TERMINAL_RUN:  # nothing more will happen
        follower.source.close()
        return
    seen = {(s.phase, s.idx): (s.status, s.attempts) for s in steps}
    status = run.status
    out.print(plain(f"following run {run.id} (Ctrl-C to stop)…", style="dim"))

    def changed(changes: list[Change]) -> int | None:
        nonlocal status
        for c in changes:
            if c.action.startswith(("runbook.approval", "runbook.run.abort", "runbook.lock")):
                out.print(plain(f"· {describe(c)}", style="dim"))
        current = get_run(db, run.id)
        for s in get_steps(db, run.id):
            key = (s.phase, s.idx)
            if seen.get(key) == (s.status, s.attempts) or s.status == "pending":
                continue
            seen[key] = (s.status, s.attempts)
            text = plain(f"[{s.phase}] {s.idx + 1}. {s.step_id} ", style="cyan")
            text.append(s.status, style=_STYLE.get(s.status, ""))
            if s.attempts > 1:
                text.append(f" (attempt {s.attempts})")
            out.print(text)
            if s.error:
                out.print(plain(f"    error: {s.error}", style="red"))
            if s.status != "running":
                for line in (s.output or "").splitlines():
                    out.print(plain(f"    │ {line}"))
                if s.truncated:
                    out.print(plain("    (output truncated)", style="yellow"))
        if current.status != status:
            status = current.status
            line = f"run {current.id}: {status}" + (f": {current.error}" if current.error else "")
            out.print(plain(line, style=f"bold {_STYLE.get(status, '')}"))
        if status in TERMINAL_RUN:
            return int(exit_code_for(status))
        return None

    follower.run(run.id, changed)
