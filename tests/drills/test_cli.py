from __future__ import annotations

import json
from pathlib import Path

import yaml

from opsconsole.audit import query
from opsconsole.store import open_db
from tests.helpers import cli


def _audit(db_path: Path, action: str) -> list[dict]:
    return query(open_db(db_path), action=action)


def test_add_edit_list_remove_rewrite_drills_yaml_and_audit(
    drill_config: Path, db_path: Path
) -> None:
    (drill_config / "drills.yaml").write_text("# my drills\n# keep this header\ndrills: {}\n")
    c = ["--config", str(drill_config)]
    res = cli(
        *c,
        "drill",
        "add",
        "alpha-failover",
        "--plan",
        "payments-bcp",
        "--kind",
        "live",
        "--runbook",
        "quick-recovery",
        "--param",
        "region=demo-a",
        "--target",
        "demo-a",
        "--cron",
        "0 3 1 */6 *",
        "--timezone",
        "Asia/Singapore",
        "--rto",
        "300",
        "--rpo",
        "60",
        "--owner",
        "sre",
    )
    assert res.exit_code == 0, res.output
    text = (drill_config / "drills.yaml").read_text()
    assert text.startswith("# my drills\n# keep this header\n")
    spec = yaml.safe_load(text)["drills"]["alpha-failover"]
    assert spec["params"] == {"region": "demo-a"}
    assert spec["schedule"] == {"cron": "0 3 1 */6 *", "timezone": "Asia/Singapore"}

    res = cli(*c, "drill", "edit", "alpha-failover", "--rto", "120", "--disable")
    assert res.exit_code == 0, res.output
    spec = yaml.safe_load((drill_config / "drills.yaml").read_text())["drills"]["alpha-failover"]
    assert spec["objectives"] == {"rto_seconds": 120.0, "rpo_seconds": 60.0}
    assert spec["enabled"] is False

    listed = json.loads(cli(*c, "drill", "list", "--json").stdout)["drills"]
    assert listed[0]["name"] == "alpha-failover" and listed[0]["next_due"] is None

    assert cli(*c, "drill", "remove", "alpha-failover").exit_code == 0
    assert yaml.safe_load((drill_config / "drills.yaml").read_text())["drills"] == {}
    events = _audit(db_path, "drill.")
    assert [e["action"] for e in events] == ["drill.add", "drill.edit", "drill.remove"]
    assert {e["interface"] for e in events} == {"cli"}


def test_add_refuses_production_target_without_allow_production(
    drill_config: Path, db_path: Path
) -> None:
    c = ["--config", str(drill_config)]
    args = [
        "drill",
        "add",
        "gamma",
        "--plan",
        "p",
        "--kind",
        "live",
        "--runbook",
        "quick-recovery",
        "--param",
        "region=prod-c",
        "--target",
        "prod-c",
        "--owner",
        "o",
    ]
    res = cli(*c, *args)
    assert res.exit_code != 0
    assert "production" in res.output and "allow_production" in res.output
    assert not (drill_config / "drills.yaml").exists()
    assert _audit(db_path, "drill.add") == []
    res = cli(*c, *args, "--allow-production")
    assert res.exit_code == 0, res.output


def test_add_with_invalid_values_names_the_field_and_writes_nothing(drill_config: Path) -> None:
    res = cli(
        "--config",
        str(drill_config),
        "drill",
        "add",
        "x",
        "--plan",
        "p",
        "--kind",
        "tabletop",
        "--owner",
        "o",
        "--cron",
        "61 * * * *",
    )
    assert res.exit_code == 3, res.output
    assert "drills.x.schedule" in res.output and "invalid cron" in res.output
    assert "Traceback" not in res.output
    assert not (drill_config / "drills.yaml").exists()


def test_add_refuses_unknown_runbook_or_params_and_writes_nothing(
    drill_config: Path, db_path: Path
) -> None:
    c = ["--config", str(drill_config), "drill", "add", "x", "--plan", "p", "--kind", "live"]
    c += ["--target", "demo-a", "--owner", "o", "--cron", "0 3 * * *"]
    res = cli(*c, "--runbook", "no-such-runbook")
    assert res.exit_code == 4, res.output
    assert "no runbook named 'no-such-runbook'" in res.output
    res = cli(*c, "--runbook", "quick-recovery", "--param", "regoin=demo-a")
    assert res.exit_code == 1, res.output
    assert "unknown parameter(s) regoin for runbook quick-recovery" in res.output
    res = cli(*c, "--runbook", "quick-recovery")
    assert res.exit_code == 1, res.output
    assert "parameter region is required" in res.output
    assert "Traceback" not in res.output
    assert not (drill_config / "drills.yaml").exists()
    assert _audit(db_path, "drill.add") == []


def test_review_with_a_bad_time_is_a_usage_error(drill_config: Path) -> None:
    c = ["--config", str(drill_config)]
    res = cli(*c, "drill", "review", "payments-bcp", "--notes", "n", "--at", "yesterday")
    assert res.exit_code == 2, res.output
    assert "not a time: 'yesterday'" in res.output


def test_record_tabletop_review_history_and_followups(drill_config: Path, db_path: Path) -> None:
    (drill_config / "drills.yaml").write_text(
        "drills:\n  tt:\n    plan: payments-bcp\n    kind: tabletop\n    owner: ana\n"
    )
    c = ["--config", str(drill_config)]
    res = cli(
        *c,
        "drill",
        "record",
        "tt",
        "--participants",
        "ana, bo,chen",
        "--notes",
        "walked through region loss",
        "--finding",
        "paging tree out of date",
        "--follow-up",
        "Update paging tree|bo|2026-12-31",
        "--follow-up",
        "Re-run with legal|2027-01-15",
    )
    assert res.exit_code == 0, res.output
    hist = json.loads(cli(*c, "drill", "history", "tt", "--json").stdout)
    assert len(hist) == 1
    run = hist[0]
    assert run["kind"] == "tabletop" and run["status"] == "passed"
    assert run["participants"] == ["ana", "bo", "chen"]
    assert run["findings"] == ["paging tree out of date"]
    assert run["interface"] == "cli" and run["trigger"] == "record"

    assert cli(*c, "drill", "review", "payments-bcp", "--notes", "annual review").exit_code == 0
    report = json.loads(cli(*c, "drill", "report", "--format", "json").stdout)
    plan = report["plans"][0]
    assert plan["plan"] == "payments-bcp" and plan["review_ok"] is True
    assert [f["owner"] for f in plan["open_followups"]] == ["bo", "ana"]
    first = plan["open_followups"][0]["id"]
    assert cli(*c, "drill", "followup-done", str(first)).exit_code == 0
    again = cli(*c, "drill", "followup-done", str(first))
    assert again.exit_code == 4 and "no open follow-up" in again.output
    report = json.loads(cli(*c, "drill", "report", "--format", "json").stdout)
    assert len(report["plans"][0]["open_followups"]) == 1
    actions = [e["action"] for e in _audit(db_path, "drill.")]
    assert actions == [
        "drill.record",
        "drill.plan.review",
        "drill.report",
        "drill.followup.close",
        "drill.report",
    ]


def test_run_of_tabletop_drill_explains_it_is_recorded_by_people(drill_config: Path) -> None:
    (drill_config / "drills.yaml").write_text(
        "drills:\n  tt:\n    plan: p\n    kind: tabletop\n    owner: ana\n"
    )
    res = cli("--config", str(drill_config), "drill", "run", "tt", "--unattended")
    assert res.exit_code != 0
    assert "drill record tt" in res.output


def test_unknown_drill_names_the_known_ones(drill_config: Path) -> None:
    (drill_config / "drills.yaml").write_text(
        "drills:\n  tt:\n    plan: p\n    kind: tabletop\n    owner: ana\n"
    )
    res = cli("--config", str(drill_config), "drill", "run", "nope")
    assert res.exit_code == 4 and "tt" in res.output


def test_live_drill_against_production_is_refused_and_recorded(
    drill_config: Path, db_path: Path
) -> None:
    (drill_config / "drills.yaml").write_text(
        "drills:\n  g:\n    plan: p\n    kind: live\n    owner: o\n    runbook: quick-recovery\n"
        "    target: prod-c\n    allow_production: true\n"
    )
    # The inventory is fine with it today; then someone removes allow_production by hand.
    text = (drill_config / "drills.yaml").read_text().replace("    allow_production: true\n", "")
    (drill_config / "drills.yaml").write_text(text)
    res = cli("--config", str(drill_config), "drill", "run", "g", "--unattended")
    assert res.exit_code == 1
    assert "REFUSED" in res.output and "production" in res.output
    hist = json.loads(cli("--config", str(drill_config), "drill", "history", "--json").stdout)
    assert hist[0]["status"] == "refused"
    assert _audit(db_path, "drill.run.refused")[0]["outcome"] == "refused"
