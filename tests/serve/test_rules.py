"""Rules: file:line validation, alert and health triggers, approval, cool-down."""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from opsconsole import outbox
from opsconsole.audit import AuditLog
from opsconsole.config import Config, load_config
from opsconsole.identity import current
from opsconsole.incidents import IncidentService
from opsconsole.incidents.intake import ingest, parse_payload
from opsconsole.rules.engine import RuleEngine, RuleEvent
from opsconsole.rules.model import load_rules
from opsconsole.runbooks import decide_approval, resume_run
from opsconsole.store import open_db
from tests.helpers import cli
from tests.serve.helpers import Serve, wait_until, write_config
from tests.serve.test_serve import FIRING


@pytest.fixture(autouse=True)
def _on_both_engines(store_engine: str) -> str:
    """Every test here runs on SQLite and on PostgreSQL (see ``store_engine``)."""
    return store_engine


TOUCH_RUNBOOK = """\
name: touch
description: writes a marker file (stands in for a failover)
params:
  region: {required: true, description: region}
steps:
  - id: look
    name: A read-only look first
    check: true
    shell: ["true"]
  - id: touch
    name: Change something
    shell: "echo {{ region }} >> {{ vars.marker }}"
"""


def _config(tmp_path: Path, rules: list[dict[str, Any]]) -> Config:
    cfg = write_config(tmp_path / "config", rules=rules)
    (cfg / "runbooks").mkdir(exist_ok=True)
    (cfg / "runbooks" / "touch.yaml").write_text(TOUCH_RUNBOOK)
    inv = (cfg / "inventory.yaml").read_text()
    marker = tmp_path / "marker.txt"
    if "\nvars:" in inv:
        inv = inv.replace("\nvars:", f"\nvars:\n  marker: {marker}", 1)
    else:
        inv += f"\nvars:\n  marker: {marker}\n"
    (cfg / "inventory.yaml").write_text(inv)
    return load_config(cfg)


def _engine(config: Config, db_path: Path) -> RuleEngine:
    db = open_db(db_path)
    return RuleEngine(
        db,
        AuditLog(db, actor="opsconsole-svc", interface="api"),
        config,
        load_rules(config),
        db_path=db_path,
    )


PAYMENTS_ALERT_RULE = {
    "name": "payments-alert-failover",
    "when": {
        "alert": {"labels": {"alertname": "PaymentsDown"}, "labels_regex": {"region": "sa-.*"}}
    },
    "then": {
        "runbook": {"name": "touch", "params": {"region": "{{ event.labels.region }}"}},
        "notify": {"text": "failover of {{ event.region }} waits for approval"},
    },
}


def test_rule_started_runbook_waits_for_a_persons_approval(tmp_path: Path, db_path: Path) -> None:
    config = _config(tmp_path, [PAYMENTS_ALERT_RULE])
    engine = _engine(config, db_path)
    svc = IncidentService(engine.db, engine.audit, config)
    result = ingest(svc, FIRING)
    [firing] = engine.on_alerts(parse_payload(FIRING), result)
    assert firing.incident_id == result.incident_id and firing.params == {"region": "sa-east-1"}
    run = asyncio.run(engine.start_runbook(firing))
    assert run is not None and run.status == "waiting_approval"
    marker = tmp_path / "marker.txt"
    assert not marker.exists()  # nothing changed before a person approved
    db = engine.db
    row = db.execute("SELECT actor, incident_id FROM runs WHERE id = ?", (run.run_id,)).fetchone()
    assert tuple(row) == ("opsconsole-svc", result.incident_id)
    fired = db.execute(
        "SELECT actor, details FROM audit_events WHERE action = 'rule.fired'"
    ).fetchall()
    assert len(fired) == 1 and json.loads(fired[0][1])["reason"] == "rule payments-alert-failover"
    events = {m.event for m in outbox.list_messages(db)}
    assert {"rule.notify", "runbook.approval_requested", "incident.declared"} <= events
    # A re-send of the same alert group fires nothing.
    again = ingest(svc, FIRING)
    assert engine.on_alerts(parse_payload(FIRING), again) == []
    # Another person approves; resuming runs the change.
    decide_approval(db, AuditLog(db, actor="bob"), run.run_id, approve=True)
    from opsconsole.events import EventBus
    from opsconsole.operator import UnattendedOperator
    from opsconsole.runbooks import RunEnv

    env = RunEnv(db=db, audit=AuditLog(db, actor="bob"), config=config, bus=EventBus())
    done = asyncio.run(resume_run(run.run_id, env=env, operator=UnattendedOperator()))
    assert done.status == "succeeded" and marker.read_text() == "sa-east-1\n"


def test_safe_rule_runs_without_approval(tmp_path: Path, db_path: Path) -> None:
    rule = json.loads(json.dumps(PAYMENTS_ALERT_RULE))
    rule["then"]["runbook"]["safe"] = True
    config = _config(tmp_path, [rule])
    engine = _engine(config, db_path)
    result = ingest(IncidentService(engine.db, engine.audit, config), FIRING)
    [firing] = engine.on_alerts(parse_payload(FIRING), result)
    run = asyncio.run(engine.start_runbook(firing))
    assert run is not None and run.status == "succeeded"
    assert (tmp_path / "marker.txt").read_text() == "sa-east-1\n"


def _health(key: str, state: str, at: datetime, old: str = "ok") -> RuleEvent:
    region, _, service = key.partition("/")
    return RuleEvent(
        "health",
        key,
        at,
        {
            "region": region,
            "service": service or None,
            "state": state,
            "old": old,
            "level": "service",
        },
    )


def test_health_state_must_last_for_seconds(tmp_path: Path, db_path: Path) -> None:
    rule = {
        "name": "payments-down",
        "when": {
            "health": {"region": "sa-*", "service": "payments", "state": "down", "for_seconds": 60}
        },
        "then": {"incident": {"severity": "SEV2", "title": "{{ event.key }} down for a minute"}},
    }
    engine = _engine(_config(tmp_path, [rule]), db_path)
    t0 = datetime(2026, 11, 27, 9, 0, tzinfo=UTC)
    assert engine.on_health(_health("sa-east-1/payments", "down", t0)) == []
    assert engine.due(t0 + timedelta(seconds=30)) == []
    engine.on_health(_health("sa-east-1/payments", "ok", t0 + timedelta(seconds=40), "down"))
    assert engine.due(t0 + timedelta(seconds=90)) == []  # it recovered in time
    engine.on_health(_health("sa-east-1/payments", "down", t0 + timedelta(seconds=100)))
    engine.on_health(_health("eu-central-1/payments", "down", t0 + timedelta(seconds=100)))
    [firing] = engine.due(t0 + timedelta(seconds=161))
    inc = IncidentService(engine.db, engine.audit, engine.config).get(firing.incident_id or "")
    assert (inc.title, inc.severity, inc.regions, inc.services) == (
        "sa-east-1/payments down for a minute",
        "SEV2",
        ["sa-east-1"],
        ["payments"],
    )


def test_missed_deadline_triggers_a_notification(tmp_path: Path, db_path: Path) -> None:
    rule = {
        "name": "breach-clock-missed",
        "when": {"deadline_missed": {"category": "data-breach"}},
        "then": {
            "notify": {
                "title": "{{ event.incident }} missed {{ event.deadline }}",
                "text": "escalate to legal",
            }
        },
    }
    engine = _engine(_config(tmp_path, [rule]), db_path)
    event = RuleEvent(
        "deadline_missed",
        "INC-2026-0001/gdpr-art33",
        datetime.now(UTC),
        {"incident": "INC-2026-0001", "deadline": "gdpr-art33", "category": "data-breach"},
    )
    [firing] = engine.on_deadline(event)
    msg = outbox.get(engine.db, firing.outbox_id or 0)
    assert (msg.event, msg.title, msg.body) == (
        "rule.notify",
        "INC-2026-0001 missed gdpr-art33",
        "escalate to legal",
    )
    other = RuleEvent(
        "deadline_missed", "x/y", datetime.now(UTC), {"deadline": "y", "category": "system-failure"}
    )
    assert engine.on_deadline(other) == []


@pytest.mark.parametrize(
    "text,expected",
    [
        (
            "rules:\n  - name: a\n    when: {alert: {}, health: {}}\n"
            "    then: {notify: {text: x}}\n",
            "rules.yaml:3:11: rules[0].when: a rule needs exactly one trigger: alert, health or "
            "deadline_missed (has alert, health)",
        ),
        (
            "rules:\n  - name: a\n    when: {health: {stat: down}}\n"
            "    then: {notify: {text: x}}\n",
            "rules.yaml:3:21: rules[0].when.health.stat: unknown field",
        ),
        (
            "rules:\n  - name: a\n    when: {health: {}}\n    then: {notify: {text: '{{ x '}}\n",
            "rules.yaml:4:27: rules[0].then.notify.text: template syntax error",
        ),
        (
            "rules:\n  - name: a\n    when: {health: {}}\n    then: {}\n",
            "rules.yaml:4:11: rules[0].then: a rule needs at least one action",
        ),
        (
            "rules:\n  - name: a\n    when: {alert: {labels_regex: {x: '('}}}\n"
            "    then: {notify: {text: x}}\n",
            "rules.yaml:3:34: rules[0].when.alert.labels_regex: x: invalid regular expression",
        ),
    ],
)
def test_rules_file_errors_name_file_line_and_field(
    tmp_path: Path, text: str, expected: str
) -> None:
    cfg = write_config(tmp_path / "config")
    (cfg / "rules.yaml").write_text(text)
    result = cli("--config", str(cfg), "rules", "validate")
    assert result.exit_code == 3
    assert expected in result.stderr, result.stderr


def test_rules_name_runbooks_and_regions_that_exist(tmp_path: Path) -> None:
    cfg = write_config(tmp_path / "config")
    (cfg / "rules.yaml").write_text(
        "rules:\n  - name: a\n    when:\n      health: {region: mars-1}\n"
        "    then:\n      runbook: {name: no-such-runbook}\n"
    )
    result = cli("--config", str(cfg), "rules", "validate")
    assert result.exit_code == 3
    lines = result.stderr.splitlines()
    assert "rules.yaml:4:24: rules[0].when.health.region: unknown region 'mars-1'" in lines[0]
    assert (
        "rules.yaml:6:23: rules[0].then.runbook.name: no runbook named 'no-such-runbook'"
        in (lines[1])
    )


def test_rules_actions_are_checked_like_the_commands_they_stand_for(tmp_path: Path) -> None:
    """What `incident declare` and `runbook run` would refuse when the rule fires is
    refused by `rules validate` (and serve's start): severity, category, runbook params."""
    cfg = write_config(tmp_path / "config")
    (cfg / "rules.yaml").write_text(
        "rules:\n  - name: a\n    when: {health: {state: down}}\n    then:\n"
        "      incident: {severity: SEV9, category: no-such-category, title: t}\n"
        "      runbook: {name: regional-failover, params: {regoin: x}}\n"
        "  - name: b\n    when: {health: {state: down}}\n    then:\n"
        "      incident: {severity: '{{ event.labels.sev }}', category: data-breach}\n"
        "      runbook: {name: regional-failover, params: {region: '{{ event.region }}'}}\n"
    )
    result = cli("--config", str(cfg), "rules", "validate")
    assert result.exit_code == 3, result.output
    lines = result.stderr.splitlines()
    assert len(lines) == 3, result.stderr  # rule b (templates, right names) is fine
    assert "rules.yaml:5:28: rules[0].then.incident.severity: 'SEV9' is not a severity" in lines[0]
    assert (
        "rules[0].then.incident.category: no playbook for category 'no-such-category'" in (lines[1])
    )
    assert (
        "rules.yaml:6:50: rules[0].then.runbook.params: unknown parameter(s) regoin" in (lines[2])
    )


def test_shipped_example_rules_are_valid(example_config: Path) -> None:
    result = cli("--config", str(example_config), "rules", "validate")
    assert result.exit_code == 0 and "3 rule(s) OK" in result.stdout


def test_rules_schema_and_list(tmp_path: Path) -> None:
    schema = json.loads(cli("schema", "rules").stdout)
    assert "RulesFile" in schema["title"] or "rules" in schema["properties"]
    cfg = _config(tmp_path, [PAYMENTS_ALERT_RULE]).directory
    listed = cli("--config", str(cfg), "rules", "list")
    assert listed.exit_code == 0
    assert (
        "payments-alert-failover: when alert -> runbook, notify (touch, approval)" in listed.stdout
    )


def test_flapping_service_within_the_cool_down_starts_one_run(
    tmp_path: Path, db_path: Path
) -> None:
    rule = {
        "name": "payments-down-failover",
        "when": {"health": {"region": "sa-east-1", "service": "payments", "state": "down"}},
        "then": {"runbook": {"name": "touch", "params": {"region": "{{ event.region }}"}}},
        "cooldown_seconds": 3600,
        "dedup_key": "{{ event.region }}",
    }
    config = _config(tmp_path, [rule])
    serve = Serve(config.directory, db_path, "--tick", "0.1")
    try:
        db = open_db(db_path)
        wait_until(lambda: db.execute("SELECT seq FROM rule_cursor").fetchone())
        monitor = AuditLog(db, actor="opsconsole-svc", interface="api")
        states = ["down", "ok", "down", "ok", "down", "ok", "down"]
        last = 0
        for old, new in zip(["ok", *states], states, strict=False):
            # What the health monitor records for a service state change.
            last = monitor.record(
                "health.state_changed",
                "sa-east-1/payments",
                {
                    "level": "service",
                    "region": "sa-east-1",
                    "service": "payments",
                    "old": old,
                    "new": new,
                    "reason": "flapping",
                    "at": datetime.now(UTC).isoformat(),
                },
                new,
            )
        wait_until(lambda: db.execute("SELECT seq FROM rule_cursor").fetchone()[0] >= last)
        serve.wait_for("rule.runbook", timeout=30)
        runs = db.execute("SELECT status, actor FROM runs").fetchall()
        # serve's account: its OS account on SQLite, its database role on PostgreSQL
        assert [tuple(r) for r in runs] == [("waiting_approval", current(db=db).name)]
        firings = db.execute("SELECT count FROM rule_firings").fetchall()
        assert [tuple(f) for f in firings] == [(1,)]
        audited = db.execute("SELECT COUNT(*) FROM audit_events WHERE action = 'rule.fired'")
        assert audited.fetchone()[0] == 1
    finally:
        assert serve.stop() == 0
    assert not (tmp_path / "marker.txt").exists()


def test_a_restart_keeps_a_for_seconds_wait_but_does_not_refire(
    tmp_path: Path, db_path: Path
) -> None:
    rules = [
        {
            "name": "slow-down",
            "when": {
                "health": {
                    "region": "sa-east-1",
                    "service": "payments",
                    "state": "down",
                    "for_seconds": 60,
                }
            },
            "then": {"notify": {"text": "down for a minute"}},
        },
        {
            "name": "at-once",
            "when": {"health": {"region": "sa-east-1", "service": "payments", "state": "down"}},
            "then": {"notify": {"text": "down"}},
        },
    ]
    config = _config(tmp_path, rules)
    t0 = datetime(2026, 11, 27, 9, 0, tzinfo=UTC)
    first = _engine(config, db_path)
    assert [f.rule for f in first.on_health(_health("sa-east-1/payments", "down", t0))] == [
        "at-once"
    ]
    restarted = _engine(config, db_path)  # the latest state, replayed at start-up
    assert restarted.on_health(_health("sa-east-1/payments", "down", t0), seed=True) == []
    assert [f.rule for f in restarted.due(t0 + timedelta(seconds=61))] == ["slow-down"]


def test_a_rule_firing_again_updates_its_own_open_incident(tmp_path: Path, db_path: Path) -> None:
    rule = {
        "name": "lending-down",
        "when": {"health": {"region": "*", "service": "lending", "state": "down"}},
        "then": {"incident": {"severity": "SEV2", "note": "lending {{ event.state }} again"}},
        "cooldown_seconds": 0,
        "dedup_key": "{{ event.region }}",
    }
    engine = _engine(_config(tmp_path, [rule]), db_path)
    t0 = datetime(2026, 11, 27, 9, 0, tzinfo=UTC)
    [first] = engine.on_health(_health("sa-east-1/lending", "down", t0))
    [second] = engine.on_health(_health("sa-east-1/lending", "down", t0 + timedelta(minutes=5)))
    [other] = engine.on_health(_health("eu-central-1/lending", "down", t0))
    assert first.incident_id == second.incident_id != other.incident_id
    svc = IncidentService(engine.db, engine.audit, engine.config)
    notes = [e.text for e in svc.timeline(first.incident_id or "") if e.kind == "note"]
    assert notes == ["lending down again", "lending down again"]
    reasons = {
        json.loads(d)["reason"]
        for (d,) in engine.db.execute(
            "SELECT details FROM audit_events WHERE action LIKE 'incident.%'"
        )
    }
    assert reasons == {"rule lending-down"}  # everything the rule did names it


def test_rule_runbooks_go_through_the_access_policy(tmp_path: Path, db_path: Path) -> None:
    from opsconsole.access import apply_policy

    config = _config(tmp_path, [PAYMENTS_ALERT_RULE])
    db = open_db(db_path)
    me = current(db=db).name
    # A policy names OS accounts, and on PostgreSQL database roles.
    kind = "database_roles" if db.engine == "postgresql" else "users"
    policy = tmp_path / "access.yaml"
    policy.write_text(
        "roles:\n  service:\n    members: {" + kind + ": [" + me + "]}\n    allow:\n"
        "      - incident.declare\n"
        "      - {permissions: [runbook.run], runbooks: [regional-failover]}\n"
    )
    audit = AuditLog(db, actor=me, interface="api")
    apply_policy(audit, policy)
    engine = RuleEngine(db, audit, config, load_rules(config), db_path=db_path)
    result = ingest(IncidentService(db, audit, config), FIRING)
    [firing] = engine.on_alerts(parse_payload(FIRING), result)
    assert asyncio.run(engine.start_runbook(firing)) is None  # refused: no run created
    assert "missing permission runbook.run" in (firing.error or "")
    assert db.execute("SELECT COUNT(*) FROM runs").fetchone()[0] == 0
    denied = db.execute(
        "SELECT actor, details FROM audit_events WHERE action = 'runbook.run' "
        "AND outcome = 'denied'"
    ).fetchall()
    assert len(denied) == 1 and denied[0][0] == me
    assert json.loads(denied[0][1])["reason"] == "rule payments-alert-failover"
