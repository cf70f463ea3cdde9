"""Rendering runbook events, plans and run logs on the terminal (Rich)."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

from rich.console import Console

from opsconsole.cli.safe import clean, plain

if TYPE_CHECKING:
    from opsconsole.events import Event
    from opsconsole.runbooks import PlannedStep

__all__ = ["LiveRenderer", "print_log", "print_plan", "print_show", "summarize"]

_STYLE = {
    "succeeded": "green",
    "failed": "red",
    "timed_out": "red",
    "skipped": "dim",
    "interrupted": "yellow",
    "waiting_approval": "yellow",
    "rolled_back": "yellow",
    "aborted": "red",
    "retrying": "yellow",
    "running": "cyan",
    "pending": "dim",
}


def summarize(rendered: dict[str, Any]) -> str:
    """One line that says what a step will do."""
    for key in ("command", "argv", "url", "instructions", "prompt", "message", "name", "seconds"):
        if key in rendered and rendered[key] is not None:
            value = rendered[key]
            if key == "argv":
                # An inline script shows as its first line, not as a wall of escaped text.
                shown = [
                    a if "\n" not in a else f"<script: {a.strip().splitlines()[0]} ...>"
                    for a in value
                ]
                value = " ".join(json.dumps(a) if " " in a or not a else a for a in shown)
            if key == "url":
                value = f"{rendered.get('method', 'GET')} {value}"
            if key == "seconds":
                value = f"sleep {value:g}s"
            text = str(value).strip().replace("\n", " ")
            return text if len(text) <= 160 else text[:157] + "..."
    if "region" in rendered:
        svc = f"/{rendered['service']}" if rendered.get("service") else ""
        return f"{rendered['region']}{svc} is {rendered.get('expect')} ({rendered.get('view')})"
    return ""


class LiveRenderer:
    """Subscribes to the bus and prints each event as it happens (to stderr)."""

    def __init__(self, console: Console | None = None) -> None:
        self.console = console or Console(stderr=True, highlight=False)

    def __call__(self, event: Event) -> None:
        from opsconsole.runbooks.events import (
            ApprovalRequested,
            RunFinished,
            RunStarted,
            StepFinished,
            StepOutput,
            StepStarted,
        )

        c = self.console
        if isinstance(event, RunStarted):
            verb = "resumed" if event.resumed else "started"
            sub = f" (sub-run of {event.parent_run})" if event.parent_run else ""
            c.print(
                plain(
                    f"run {event.run_id} {verb}: {event.runbook} [{event.mode}]{sub}", style="bold"
                )
            )
        elif isinstance(event, StepStarted):
            attempt = f" (attempt {event.attempt})" if event.attempt > 1 else ""
            line = plain(f"▶ {event.step_id}", style="cyan")
            line.append(clean(f"  {event.name} [{event.action}]{attempt}"))
            c.print(line)
            what = summarize(event.rendered)
            if what:
                c.print(plain(f"    {what}", style="dim"))
        elif isinstance(event, StepOutput):
            prefix = f"[{event.host}] " if event.host else ""
            c.print(
                plain(f"  │ {prefix}{event.line}", style="red" if event.stream == "stderr" else "")
            )
        elif isinstance(event, StepFinished):
            mark = {"succeeded": "✓", "skipped": "–"}.get(event.status, "✗")
            text = plain(
                f"{mark} {event.step_id} {event.status}", style=_STYLE.get(event.status, "")
            )
            if event.duration_seconds:
                text.append(f" ({event.duration_seconds:.1f}s)", style="dim")
            if event.error:
                text.append(clean(f": {event.error}"))
            if event.note:
                text.append(clean(f" — {event.note}"), style="dim")
            c.print(text)
        elif isinstance(event, ApprovalRequested):
            c.print(
                plain(
                    f"⏸ approval needed: {event.message} — someone other than "
                    f"{event.requested_by} runs "
                    f"`opsconsole runbook approve {event.run_id}`",
                    style="yellow",
                )
            )
        elif isinstance(event, RunFinished):
            text = plain(
                f"run {event.run_id}: {event.status}", style=f"bold {_STYLE.get(event.status, '')}"
            )
            if event.error:
                text.append(clean(f" — {event.error}"))
            c.print(text)
            if event.measured:
                c.print(
                    plain(
                        "  " + ", ".join(f"{k}={v:g}" for k, v in event.measured.items()),
                        style="dim",
                    )
                )


def print_plan(console: Console, name: str, steps: list[PlannedStep]) -> None:
    console.print(plain(f"plan for {name} (dry run: only read-only steps ran)", style="bold"))
    phase = None
    # Rollback steps are shown in the order they would run (reverse of declaration).
    ordered = [s for s in steps if s.phase == "main"] + [
        s for s in reversed(steps) if s.phase == "rollback"
    ]
    for ps in ordered:
        if ps.phase != phase:
            phase = ps.phase
            console.print()
            console.print(
                plain(
                    f"{phase} steps:" if phase == "main" else "rollback steps (run in reverse):",
                    style="bold",
                )
            )
        flag = {"yes": "", "no": " [skipped]", "unknown": " [runs?]", "error": " [error]"}[
            ps.will_run
        ]
        head = plain(f"{ps.index + 1:>2}. {ps.id}", style="cyan")
        head.append(clean(f"  {ps.name} [{ps.action}]{flag}"))
        if ps.executed:
            head.append(f"  ran: {ps.status}", style=_STYLE.get(ps.status or "", ""))
        console.print(head)
        for key, value in ps.rendered.items():
            if value in (None, {}, [], "") or key in ("ok_codes", "verify_tls"):
                continue
            shown = value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)
            console.print(plain(f"      {key}: {shown}"))
        for note in ps.notes:
            console.print(plain(f"      note: {note}", style="yellow"))
        if ps.output:
            for line in ps.output.splitlines()[:10]:
                console.print(plain(f"      │ {line}", style="dim"))


def print_log(console: Console, run: Any, steps: list[Any]) -> None:
    console.print(plain(f"run {run.id}: {run.runbook} — {run.status}", style="bold"))
    console.print(
        plain(
            f"  actor {run.actor}, mode {run.mode}, started {run.started_at}, "
            f"finished {run.finished_at or '-'}"
        )
    )
    if run.params:
        console.print(plain("  params: " + json.dumps(run.params, ensure_ascii=False)))
    if run.error:
        console.print(plain(f"  error: {run.error}", style="red"))
    if run.measured:
        console.print(
            plain("  measured: " + ", ".join(f"{k}={v:g}" for k, v in run.measured.items()))
        )
    for s in steps:
        if s.phase == "rollback" and s.status == "pending":
            continue
        console.print()
        text = plain(f"[{s.phase}] {s.idx + 1}. {s.step_id}", style="cyan")
        text.append(f" [{s.action}] ")
        text.append(s.status, style=_STYLE.get(s.status, ""))
        if s.attempts > 1:
            text.append(f" after {s.attempts} attempts")
        console.print(text)
        if s.rendered:
            what = summarize(s.rendered)
            if what:
                console.print(plain(f"    {what}", style="dim"))
        if s.error:
            console.print(plain(f"    error: {s.error}", style="red"))
        for line in (s.output or "").splitlines():
            console.print(plain(f"    │ {line}"))
        if s.truncated:
            console.print(plain("    (output truncated)", style="yellow"))


def print_show(console: Console, rb: Any) -> None:
    """Parameters, lock, steps and rollback of one runbook."""
    c = console
    c.print(plain(f"{rb.name} ({rb.source})", style="bold"))
    if rb.description:
        c.print(plain(rb.description.strip()))
    for pname, p in rb.params.items():
        extra = [p.type] + (["required"] if p.required else []) + (["secret"] if p.secret else [])
        if p.default is not None:
            extra.append(f"default {p.default}")
        if p.choices:
            extra.append("one of " + ", ".join(map(str, p.choices)))
        c.print(plain(f"  param {pname}: {', '.join(extra)}  {p.description}"))
    if rb.lock:
        c.print(plain(f"  lock: {rb.lock}"))
    for label, steps in (("steps", rb.steps), ("rollback (runs in reverse)", rb.rollback)):
        if steps:
            c.print(plain(f"{label}:", style="bold"))
        for i, s in enumerate(steps, 1):
            flags = [f for f, on in (("check", s.check), ("idempotent", s.idempotent)) if on]
            if s.when is not None:
                flags.append(f"when {s.when}")
            c.print(
                plain(f"  {i}. {s.id} [{s.action}] {s.name} {' '.join(f'({f})' for f in flags)}")
            )
