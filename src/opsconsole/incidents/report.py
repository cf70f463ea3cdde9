"""The post-incident report, in Markdown, blameless in tone.

It describes what happened and how the system and the process behaved; people appear as
the roles they held and the actors of timeline entries, never as causes.
"""

from __future__ import annotations

import itertools
from collections import Counter
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

from opsconsole.incidents.base import IncidentView
from opsconsole.incidents.deadlines import DeadlineState, human_duration
from opsconsole.incidents.model import SEVERITIES, TimelineEntry

__all__ = ["format_local", "local_clock", "render_report"]

BLAMELESS = (
    "This review is blameless: it looks at what happened, what people knew at each moment "
    "and how systems and process helped or hindered them, so that we can improve those. "
    "It does not assign fault to individuals."
)


def _utc(moment: datetime | None) -> str:
    return moment.astimezone(ZoneInfo("UTC")).strftime("%Y-%m-%d %H:%M UTC") if moment else "-"


def format_local(moment: datetime, tz: str | None) -> str:
    """``2026-11-28 22:05 +08 (Asia/Singapore)``, or ``-`` without a region."""
    if not tz:
        return "-"
    return f"{local_clock(moment, tz)} ({tz})"


def local_clock(moment: datetime, tz: str) -> str:
    """Local wall-clock time; an end-of-day deadline reads ``2026-12-02 24:00``, not the
    next day's 00:00."""
    local = moment.astimezone(ZoneInfo(tz))
    if (local.hour, local.minute, local.second, local.microsecond) == (0, 0, 0, 0):
        day = (local - timedelta(days=1)).date()
        return f"{day:%Y-%m-%d} 24:00 {local.tzname()}"
    return f"{local:%Y-%m-%d %H:%M} {local.tzname()}"


def _span(start: datetime | None, end: datetime | None) -> str:
    if start is None or end is None:
        return "not reached"
    return human_duration(end - start)


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def _deadline_row(s: DeadlineState) -> str:
    d = s.deadline
    anchor = d.anchor.replace("decision:", "decision ")
    return (
        f"| {_cell(d.title)} | {d.jurisdiction} | {_cell(d.citation)} (verified "
        f"{d.verified_on}) | {d.within} after {anchor} | {_utc(s.due)} | "
        f"**{s.state}**: {_cell(s.text)} |"
    )


def render_report(view: IncidentView, timeline: list[TimelineEntry]) -> str:
    inc = view.incident
    out: list[str] = []
    add = out.append
    add(f"# Post-incident report: {inc.id} - {inc.title}")
    add("")
    add(f"_{BLAMELESS}_")
    add("")
    add("| | |")
    add("| --- | --- |")
    add(f"| Severity | {inc.severity} - {SEVERITIES.get(inc.severity, '')} |")
    add(f"| Category | {inc.category} (playbook: {inc.playbook.get('name', '-')}) |")
    add(f"| Status | {inc.status} |")
    for role, holder in sorted(inc.roles.items()):
        add(f"| Role: {role} | {holder} |")
    add(f"| Report generated | {_utc(view.now)} |")
    add("")

    updates = [e for e in timeline if e.kind == "update"]
    add("## Summary")
    add("")
    end = inc.resolved_at or inc.mitigated_at
    add(
        f'{inc.severity} {inc.category} incident "{inc.title}", detected {_utc(inc.detected_at)}, '
        f"declared {_utc(inc.declared_at)}"
        + (f", mitigated {_utc(inc.mitigated_at)}" if inc.mitigated_at else "")
        + (f", resolved {_utc(inc.resolved_at)}" if inc.resolved_at else "")
        + (f", closed {_utc(inc.closed_at)}" if inc.closed_at else "")
        + "."
    )
    if updates:
        add("")
        add(f"Last status update ({_utc(updates[-1].ts)}): {updates[-1].text}")
    add("")

    add("## Impact")
    add("")
    regions = [
        f"{r} (local time {inc.region_tz[r]})" if r in inc.region_tz else r for r in inc.regions
    ]
    add(f"- Regions: {', '.join(regions) or 'none recorded'}")
    add(f"- Services: {', '.join(inc.services) or 'none recorded'}")
    add(
        f"- Duration (detected to resolved): {_span(inc.detected_at, inc.resolved_at)}"
        + (
            ""
            if inc.resolved_at
            else f" (ongoing: {human_duration(view.now - inc.detected_at)} so far)"
        )
    )
    add("")

    add("## Metrics")
    add("")
    add("| measure | value |")
    add("| --- | --- |")
    add(f"| Time to declare (detected to declared) | {_span(inc.detected_at, inc.declared_at)} |")
    add(
        f"| Time to mitigate (detected to mitigated) | {_span(inc.detected_at, inc.mitigated_at)} |"
    )
    add(f"| Time to resolve (detected to resolved) | {_span(inc.detected_at, inc.resolved_at)} |")
    add(
        f"| Status updates | {len(updates)}"
        + (
            f" (cadence: every {human_duration(view.update_every)}; longest gap "
            f"{_longest_gap(inc.declared_at, [u.ts for u in updates], end or view.now)})"
            if view.update_every
            else ""
        )
        + " |"
    )
    met = sum(1 for s in view.deadlines if s.state == "met")
    missed = sum(1 for s in view.deadlines if s.state in ("missed", "overdue"))
    add(f"| Deadlines met / missed | {met} / {missed} of {len(view.deadlines)} |")
    add("")

    add("## Deadlines")
    add("")
    if view.deadlines:
        add("| deadline | jurisdiction | source | rule | due | outcome |")
        add("| --- | --- | --- | --- | --- | --- |")
        out.extend(_deadline_row(s) for s in view.deadlines)
        add("")
        add("_Deadlines are data from the playbook, not legal advice; check them with counsel._")
    else:
        add("No deadlines in this playbook.")
    add("")

    counts = Counter(t.status for t in inc.tasks)
    add("## Tasks")
    add("")
    add(
        ", ".join(
            f"{counts.get(s, 0)} {s.replace('_', ' ')}"
            for s in ("done", "skipped", "waived", "in_progress", "pending")
        )
    )
    add("")
    add("| phase | task | owner | status | note |")
    add("| --- | --- | --- | --- | --- |")
    for t in inc.tasks:
        add(
            f"| {t.phase} | {_cell(t.title)} | {t.owner_role} | {t.status} "
            f"| {_cell(t.note or '')} |"
        )
    add("")

    add("## Runbook runs")
    add("")
    if inc.runs:
        add("| run | runbook | task | outcome | recorded |")
        add("| --- | --- | --- | --- | --- |")
        for r in inc.runs:
            add(
                f"| {r.run_id} | {r.runbook} | {r.task_id or '-'} | {r.status}"
                + (f" ({_cell(r.error)})" if r.error else "")
                + f" | {_utc(r.at)} |"
            )
    else:
        add("No runbook runs were linked to this incident.")
    add("")

    add("## Timeline")
    add("")
    add("| time (UTC) | region local time | actor | event |")
    add("| --- | --- | --- | --- |")
    for e in timeline:
        add(f"| {_utc(e.ts)} | {format_local(e.ts, e.tz)} | {e.actor} | {_cell(e.summary)} |")
    add("")

    actions = [e for e in timeline if e.kind == "note" and e.text.lower().startswith("action:")]
    add("## Action items")
    add("")
    if actions:
        for e in actions:
            add(f"- [ ] {e.text[len('action:') :].strip()}")
    else:
        add("None recorded (add notes starting with `action:`).")
    add("")
    return "\n".join(out)


def _longest_gap(start: datetime, updates: list[datetime], end: datetime) -> str:
    points = [start, *sorted(updates), max(end, start)]
    gap = max((b - a for a, b in itertools.pairwise(points)), default=timedelta())
    return human_duration(gap)
