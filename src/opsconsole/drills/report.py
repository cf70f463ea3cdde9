"""The drill-programme compliance report, per continuity plan and year.

For each plan: drills held by kind, whether "at least N a year, at least M live" was
met (a drill counts as held when it ran to a verdict, passed or failed; missed, refused
and interrupted ones do not), the last plan review and whether it is recent enough, RTO
and RPO against the objectives over time, failed and missed drills, follow-ups open at
the report date, and next due dates.

A past year is judged as of its last instant; the current year as of now.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from opsconsole.drills import plans as plan_store
from opsconsole.drills import store
from opsconsole.drills.due import anchor
from opsconsole.timeutil import isoformat, parse_when, utcnow

if TYPE_CHECKING:
    import sqlite_utils

    from opsconsole.drills.model import DrillsFile

__all__ = ["PlanReport", "build_report", "render_markdown", "report_json"]

HELD = ("passed", "failed")
PROBLEMS = ("failed", "missed", "refused", "interrupted")


@dataclass
class PlanReport:
    plan: str
    year: int
    as_of: str
    min_drills: int
    min_live: int
    review_within_days: int
    held: dict[str, int]
    drills_ok: bool
    live_ok: bool
    last_review: dict[str, Any] | None
    review_age_days: float | None
    review_ok: bool
    measurements: list[dict[str, Any]] = field(default_factory=list)
    problems: list[dict[str, Any]] = field(default_factory=list)
    open_followups: list[dict[str, Any]] = field(default_factory=list)
    next_due: list[dict[str, Any]] = field(default_factory=list)

    @property
    def kept(self) -> bool:
        return self.drills_ok and self.live_ok and self.review_ok

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        data["kept"] = self.kept
        data["held_total"] = sum(self.held.values())
        return data


def _year_bounds(year: int) -> tuple[datetime, datetime]:
    return datetime(year, 1, 1, tzinfo=UTC), datetime(year + 1, 1, 1, tzinfo=UTC)


def _default_as_of(year: int, now: datetime) -> datetime:
    _start, end = _year_bounds(year)
    if now >= end:
        return end - timedelta(microseconds=1)
    return now


def _next_due(
    db: sqlite_utils.Database, name: str, drills: DrillsFile, now: datetime
) -> dict[str, Any]:
    from opsconsole.drills.schedule import make_trigger, next_due, occurrences

    drill = drills.drills[name]
    row: dict[str, Any] = {
        "drill": name,
        "kind": drill.kind,
        "owner": drill.owner,
        "next_due": None,
        "overdue_since": None,
        "enabled": drill.enabled,
    }
    if drill.schedule is None or not drill.enabled:
        return row
    trigger = make_trigger(drill.schedule.cron, drill.schedule.at, drill.schedule.timezone)
    upcoming = next_due(trigger, now)
    row["next_due"] = isoformat(upcoming) if upcoming else None
    since = anchor(db, name, drill.schedule.at)
    if since is not None and drill.kind == "live":
        late = occurrences(trigger, since, now - timedelta(seconds=drills.grace(drill)), limit=1)
        if late:
            # Due, past grace, and nobody recorded it: no scheduler is running.
            row["overdue_since"] = isoformat(late[0])
    return row


def build_report(
    db: sqlite_utils.Database,
    drills: DrillsFile,
    *,
    year: int | None = None,
    plan: str | None = None,
    as_of: datetime | None = None,
    now: datetime | None = None,
) -> list[PlanReport]:
    now = now or utcnow()
    year = year or now.year
    as_of = as_of or _default_as_of(year, now)
    start, end = _year_bounds(year)
    runs = store.history(db, plan=plan, since=start, until=end)
    names = set(drills.plan_names()) | {r.plan for r in runs}
    names |= {r["plan"] for r in plan_store.reviews(db, plan)}
    if plan:
        names = {plan}
    out = []
    for name in sorted(names):
        policy = drills.policy(name)
        mine = [r for r in runs if r.plan == name and r.when is not None and r.when <= as_of]
        held = {"tabletop": 0, "live": 0}
        for r in mine:
            if r.status in HELD:
                held[r.kind] = held.get(r.kind, 0) + 1
        past = [rv for rv in plan_store.reviews(db, name) if parse_when(rv["reviewed_at"]) <= as_of]
        last = past[-1] if past else None
        age = (as_of - parse_when(last["reviewed_at"])).total_seconds() / 86400 if last else None
        followups = [
            f
            for f in plan_store.followups(db, plan=name)
            if parse_when(f.run_when or f.created_at) <= as_of
            and (f.status == "open" or (f.closed_at and parse_when(f.closed_at) > as_of))
        ]
        rep = PlanReport(
            plan=name,
            year=year,
            as_of=isoformat(as_of),
            min_drills=policy.min_drills_per_year,
            min_live=policy.min_live_per_year,
            review_within_days=policy.review_within_days,
            held=held,
            drills_ok=sum(held.values()) >= policy.min_drills_per_year,
            live_ok=held.get("live", 0) >= policy.min_live_per_year,
            last_review=last,
            review_age_days=round(age, 1) if age is not None else None,
            review_ok=age is not None and age <= policy.review_within_days,
        )
        for r in mine:
            if r.kind == "live" and r.status in HELD:
                rep.measurements.append(
                    {
                        "when": isoformat(r.when) if r.when else None,
                        "drill": r.drill,
                        "status": r.status,
                        "rto_seconds": r.rto_seconds,
                        "rto_objective": r.rto_objective,
                        "rto_met": r.rto_met,
                        "rpo_seconds": r.rpo_seconds,
                        "rpo_objective": r.rpo_objective,
                        "rpo_met": r.rpo_met,
                        "run": r.id,
                        "runbook_run": r.run_id,
                    }
                )
            if r.status in PROBLEMS:
                rep.problems.append(
                    {
                        "when": isoformat(r.when) if r.when else None,
                        "drill": r.drill,
                        "kind": r.kind,
                        "status": r.status,
                        "reason": r.reason,
                        "run": r.id,
                    }
                )
        for f in followups:
            rep.open_followups.append(
                {
                    "id": f.id,
                    "drill": f.drill,
                    "action": f.action,
                    "owner": f.owner,
                    "due": f.due,
                    "overdue": f.due < as_of.date().isoformat(),
                }
            )
        rep.next_due = [
            _next_due(db, d, drills, now)
            for d, spec in sorted(drills.drills.items())
            if spec.plan == name
        ]
        out.append(rep)
    return out


def report_json(reports: list[PlanReport]) -> dict[str, Any]:
    return {"plans": [r.to_json() for r in reports], "kept": all(r.kept for r in reports)}


def _yes(ok: bool | None) -> str:
    return "n/a" if ok is None else ("yes" if ok else "**NO**")


def _num(value: float | None) -> str:
    return "-" if value is None else f"{value:g}" if value == int(value) else f"{value:.1f}"


def _day(ts: str | None) -> str:
    return ts[:10] if ts else "-"


def render_markdown(reports: list[PlanReport]) -> str:
    """The report as Markdown, for an auditor or the continuity owner."""
    if not reports:
        return "# Drill programme report\n\nNo plans and no drills recorded.\n"
    year, as_of = reports[0].year, reports[0].as_of
    lines = [
        f"# Drill programme report {year}",
        "",
        f"As of {as_of[:16].replace('T', ' ')} UTC. A drill counts as held when it ran "
        "to a verdict (passed or failed).",
        "",
    ]
    for r in reports:
        total = sum(r.held.values())
        review = (
            f"{_day(r.last_review['reviewed_at'])} ({r.review_age_days:g} days before)"
            if r.last_review
            else "never"
        )
        lines += [
            f"## {r.plan}: {'programme KEPT' if r.kept else 'programme NOT KEPT'}",
            "",
            "| check | required | actual | met |",
            "| --- | --- | --- | --- |",
            f"| drills held in {r.year} | at least {r.min_drills} | {total} (tabletop "
            f"{r.held.get('tabletop', 0)}, live {r.held.get('live', 0)}) | {_yes(r.drills_ok)} |",
            f"| live drills | at least {r.min_live} | {r.held.get('live', 0)} | "
            f"{_yes(r.live_ok)} |",
            f"| plan review | within {r.review_within_days} days | {review} | "
            f"{_yes(r.review_ok)} |",
            "",
            "### RTO and RPO against objectives",
            "",
        ]
        if r.measurements:
            lines += [
                "| date | drill | result | RTO s | objective | met | RPO s | objective | met |",
                "| --- | --- | --- | --- | --- | --- | --- | --- | --- |",
            ]
            for m in r.measurements:
                lines.append(
                    f"| {_day(m['when'])} | {m['drill']} | {m['status']} | "
                    f"{_num(m['rto_seconds'])} | {_num(m['rto_objective'])} | "
                    f"{_yes(m['rto_met'])} | {_num(m['rpo_seconds'])} | "
                    f"{_num(m['rpo_objective'])} | {_yes(m['rpo_met'])} |"
                )
        else:
            lines.append("No live drill measured this year.")
        lines += ["", "### Failed and missed drills", ""]
        if r.problems:
            lines += [
                "| date | drill | kind | status | reason |",
                "| --- | --- | --- | --- | --- |",
            ]
            for p in r.problems:
                reason = (p["reason"] or "").replace("|", "\\|")
                lines.append(
                    f"| {_day(p['when'])} | {p['drill']} | {p['kind']} | {p['status']} | {reason} |"
                )
        else:
            lines.append("None.")
        lines += ["", "### Open follow-ups", ""]
        if r.open_followups:
            lines += ["| # | drill | action | owner | due |", "| --- | --- | --- | --- | --- |"]
            for f in r.open_followups:
                due = f["due"] + (" (overdue)" if f["overdue"] else "")
                action = f["action"].replace("|", "\\|")
                lines.append(f"| {f['id']} | {f['drill']} | {action} | {f['owner']} | {due} |")
        else:
            lines.append("None.")
        lines += ["", "### Next due", ""]
        if r.next_due:
            lines += ["| drill | kind | owner | next due |", "| --- | --- | --- | --- |"]
            for n in r.next_due:
                due = (
                    (n["next_due"][:16].replace("T", " ") + " UTC")
                    if n["next_due"]
                    else ("disabled" if not n["enabled"] else "not scheduled")
                )
                if n["overdue_since"]:
                    due += f"; OVERDUE since {_day(n['overdue_since'])}, not recorded"
                lines.append(f"| {n['drill']} | {n['kind']} | {n['owner']} | {due} |")
        else:
            lines.append("No drills defined for this plan.")
        lines.append("")
    return "\n".join(lines)
