"""The compliance report over a synthetic year (2025): kept, not kept, review overdue."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

from opsconsole.audit import AuditLog
from opsconsole.drills import store
from opsconsole.drills.records import FollowUpSpec, record_review, record_tabletop
from opsconsole.drills.store import DrillRun
from opsconsole.store import open_db
from tests.helpers import cli

DRILLS = """\
plans:
  payments-bcp: {min_drills_per_year: 2, min_live_per_year: 1}
  lending-bcp: {}
  cards-bcp: {}
drills:
  pay-tabletop: {plan: payments-bcp, kind: tabletop, owner: ana}
  pay-failover:
    plan: payments-bcp
    kind: live
    owner: sre
    runbook: quick-recovery
    target: demo-a
    objectives: {rto_seconds: 300, rpo_seconds: 60}
  lend-failover:
    plan: lending-bcp
    kind: live
    owner: sre
    runbook: quick-recovery
    target: demo-b
    schedule: {cron: "0 3 1 4,10 *", timezone: UTC}
    objectives: {rto_seconds: 120}
  cards-tabletop: {plan: cards-bcp, kind: tabletop, owner: bo}
"""


def _t(month: int, day: int, year: int = 2025) -> datetime:
    return datetime(year, month, day, 10, 0, tzinfo=UTC)


def _live(
    db,
    drill: str,
    plan: str,
    when: datetime,
    status: str,
    rto: float | None,
    rto_obj: float,
    reason: str | None = None,
    scheduled: bool = False,
) -> None:
    store.insert_run(
        db,
        DrillRun(
            id=store.new_run_id(when),
            drill=drill,
            plan=plan,
            kind="live",
            status=status,
            trigger="schedule",
            actor="scheduler",
            interface="scheduler",
            scheduled_for=when if scheduled or status == "missed" else None,
            started_at=None if status == "missed" else when,
            finished_at=None if status == "missed" else when,
            rto_seconds=rto,
            rto_objective=rto_obj,
            rto_met=None if rto is None else rto <= rto_obj,
            reason=reason,
        ),
    )


def _seed(db_path: Path) -> None:
    db = open_db(db_path)
    audit = AuditLog(db, actor="continuity", interface="cli")
    # payments-bcp: kept. A tabletop in March, live drills in May (passed) and
    # September (RTO over the objective: held, but failed), plan reviewed Feb 2025.
    record_tabletop(
        db,
        audit,
        "pay-tabletop",
        None,
        plan="payments-bcp",
        participants=["ana", "bo"],
        notes="region loss walk-through",
        findings=["runbook step 4 unclear"],
        followups=[FollowUpSpec("Clarify step 4", "ana", _t(4, 30).date())],
        held_at=_t(3, 15),
    )
    _live(db, "pay-failover", "payments-bcp", _t(5, 20), "passed", 140.0, 300)
    _live(
        db,
        "pay-failover",
        "payments-bcp",
        _t(9, 20),
        "failed",
        420.0,
        300,
        reason="RTO 420.0s exceeded the objective of 300s",
    )
    record_review(db, audit, "payments-bcp", "annual review", at=_t(2, 1))
    # lending-bcp: not kept. April's drill missed, October's failed before measuring;
    # last review in June 2024 (overdue by the end of 2025).
    _live(
        db,
        "lend-failover",
        "lending-bcp",
        _t(4, 1),
        "missed",
        None,
        120,
        reason="no scheduler ran it",
        scheduled=True,
    )
    _live(
        db,
        "lend-failover",
        "lending-bcp",
        _t(10, 1),
        "failed",
        None,
        120,
        reason="needs a person at step confirm",
        scheduled=True,
    )
    record_review(db, audit, "lending-bcp", "review", at=datetime(2024, 6, 1, tzinfo=UTC))
    # cards-bcp: two tabletops but no live drill; reviewed in December 2025.
    for month in (2, 8):
        record_tabletop(
            db,
            audit,
            "cards-tabletop",
            None,
            plan="cards-bcp",
            participants=["bo"],
            notes="n",
            findings=[],
            followups=[],
            held_at=_t(month, 10),
        )
    record_review(db, audit, "cards-bcp", "review", at=_t(12, 1))
    # Something from another year must not count.
    _live(db, "pay-failover", "payments-bcp", _t(1, 5, 2024), "passed", 100.0, 300)


def test_report_over_a_synthetic_year(drill_config: Path, db_path: Path) -> None:
    (drill_config / "drills.yaml").write_text(DRILLS)
    _seed(db_path)
    res = cli(
        "--config", str(drill_config), "drill", "report", "--year", "2025", "--format", "json"
    )
    assert res.exit_code == 0, res.output
    data = json.loads(res.stdout)
    plans = {p["plan"]: p for p in data["plans"]}
    assert data["kept"] is False

    pay = plans["payments-bcp"]
    assert pay["as_of"].startswith("2025-12-31T23:59:59")
    assert pay["held"] == {"tabletop": 1, "live": 2}
    assert pay["drills_ok"] and pay["live_ok"] and pay["review_ok"] and pay["kept"]
    assert [(m["rto_seconds"], m["rto_met"]) for m in pay["measurements"]] == [
        (140.0, True),
        (420.0, False),
    ]
    assert [p["status"] for p in pay["problems"]] == ["failed"]
    assert pay["open_followups"][0]["action"] == "Clarify step 4"
    assert pay["open_followups"][0]["overdue"] is True

    lend = plans["lending-bcp"]
    assert lend["held"] == {"tabletop": 0, "live": 1}
    assert not lend["drills_ok"] and lend["live_ok"]
    assert lend["review_ok"] is False and lend["review_age_days"] > 365
    assert [p["status"] for p in lend["problems"]] == ["missed", "failed"]
    assert lend["next_due"][0]["drill"] == "lend-failover"
    assert lend["next_due"][0]["next_due"] is not None

    cards = plans["cards-bcp"]
    assert cards["held"] == {"tabletop": 2, "live": 0}
    assert cards["drills_ok"] and not cards["live_ok"] and cards["review_ok"]
    assert cards["kept"] is False

    md = cli("--config", str(drill_config), "drill", "report", "--year", "2025").stdout
    assert "## payments-bcp: programme KEPT" in md
    assert "## lending-bcp: programme NOT KEPT" in md
    assert "## cards-bcp: programme NOT KEPT" in md
    assert "| plan review | within 365 days | 2024-06-01" in md
    assert "| 2025-09-20 | pay-failover | failed | 420 | 300 | **NO** |" in md
    assert "| 2025-04-01 | lend-failover | live | missed | no scheduler ran it |" in md
    assert "Clarify step 4 | ana | 2025-04-30 (overdue)" in md

    check = cli(
        "--config",
        str(drill_config),
        "drill",
        "report",
        "--year",
        "2025",
        "--plan",
        "payments-bcp",
        "--check",
    )
    assert check.exit_code == 0
    check = cli(
        "--config",
        str(drill_config),
        "drill",
        "report",
        "--year",
        "2025",
        "--plan",
        "cards-bcp",
        "--check",
    )
    assert check.exit_code == 1


def test_review_more_than_a_year_before_the_report_date_is_overdue(
    drill_config: Path, db_path: Path
) -> None:
    from opsconsole.config import load_config
    from opsconsole.drills.loader import load_drills
    from opsconsole.drills.report import build_report

    (drill_config / "drills.yaml").write_text(DRILLS)
    db = open_db(db_path)
    record_review(db, AuditLog(db), "cards-bcp", "r", at=_t(3, 1))
    drills = load_drills(load_config(drill_config)).file
    [within] = build_report(db, drills, year=2026, plan="cards-bcp", now=_t(2, 28, 2026))
    assert within.review_ok
    [late] = build_report(db, drills, year=2026, plan="cards-bcp", now=_t(3, 2, 2026))
    assert not late.review_ok
