"""The notification outbox: written with its cause, delivered exactly once, never lost."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import pytest

from opsconsole import outbox
from opsconsole.audit import AuditLog
from opsconsole.config import load_config
from opsconsole.delivery import Deliverer
from opsconsole.incidents import IncidentService
from opsconsole.store import open_db
from tests.health.servers import LoopThread
from tests.helpers import cli, dump
from tests.serve.conftest import Mailbox
from tests.serve.helpers import Receiver, write_config


@pytest.fixture(autouse=True)
def _on_both_engines(store_engine: str) -> str:
    """Every test here runs on SQLite and on PostgreSQL (see ``store_engine``)."""
    return store_engine


FAST = {"max_attempts": 4, "backoff_initial_seconds": 0.02, "backoff_max_seconds": 0.1}


def _setup(tmp_path: Path, db_path: Path, channels: list[dict[str, Any]], **extra: Any) -> Any:
    cfg_dir = write_config(
        tmp_path / "config", settings={"notifications": {**FAST, **extra, "channels": channels}}
    )
    config = load_config(cfg_dir)
    db = open_db(db_path)
    audit = AuditLog(db, actor="alice")
    return config, db, audit, cfg_dir


def _declare(db: Any, audit: AuditLog, config: Any, title: str = "Payments down") -> str:
    svc = IncidentService(db, audit, config)
    return svc.declare(title, severity="SEV1", category="system-failure").id


def test_message_is_written_in_the_same_transaction_as_its_cause(
    tmp_path: Path, db_path: Path
) -> None:
    config, db, audit, _ = _setup(tmp_path, db_path, [])
    inc = _declare(db, audit, config)
    [msg] = outbox.list_messages(db)
    assert (msg.event, msg.subject, msg.status) == ("incident.declared", inc, "pending")
    seq = db.execute("SELECT seq FROM audit_events WHERE action = 'incident.declare'").fetchone()
    assert msg.audit_seq == seq[0]
    # A change that rolls back leaves no message behind.
    svc = IncidentService(db, audit, config)
    with pytest.raises(RuntimeError), svc.transaction():
        svc.declare("Rolled back", severity="SEV2", category="system-failure")
        raise RuntimeError("abort")
    assert len(outbox.list_messages(db)) == 1
    assert db.execute("SELECT COUNT(*) FROM incidents").fetchone()[0] == 1


def test_retries_deliver_exactly_once(tmp_path: Path, db_path: Path, lt: LoopThread) -> None:
    hook = Receiver(lt, fail_first=2)
    channel = {"name": "hook", "url": f"json://127.0.0.1:{hook.port}/hook"}
    config, db, audit, _ = _setup(tmp_path, db_path, [channel])
    _declare(db, audit, config)
    [msg] = outbox.list_messages(db)
    status = asyncio.run(Deliverer(db, audit, config).deliver(msg.id))
    assert status == "sent"
    assert hook.posts == 3 and len(hook.accepted) == 1
    assert hook.accepted[0]["title"].endswith("declared (SEV1)")
    sent = outbox.get(db, msg.id)
    assert (sent.attempts, sent.delivered, sent.sent_at is not None) == (2, ["hook"], True)
    # A later drain finds nothing to send: no second delivery.
    assert asyncio.run(Deliverer(db, audit, config).drain()) == {}
    assert len(hook.accepted) == 1
    hook.close()


def test_a_channel_down_keeps_the_message_until_notify_retry(
    tmp_path: Path, db_path: Path, lt: LoopThread
) -> None:
    hook = Receiver(lt)
    hook.down = True
    channel = {"name": "hook", "url": f"json://127.0.0.1:{hook.port}/hook"}
    config, db, audit, cfg_dir = _setup(tmp_path, db_path, [channel])
    _declare(db, audit, config)
    [msg] = outbox.list_messages(db)
    assert asyncio.run(Deliverer(db, audit, config).deliver(msg.id)) == "dead"
    dead = outbox.get(db, msg.id)
    assert (dead.status, dead.attempts, hook.accepted) == ("dead", 4, [])
    assert "hook: " in (dead.last_error or "") and "500" in (dead.last_error or "")
    listed = cli("--config", str(cfg_dir), "notify", "list", "--failed", "--json")
    assert listed.exit_code == 0
    assert [m["id"] for m in json.loads(listed.stdout)] == [msg.id]
    hook.down = False  # the channel comes back
    result = cli("--config", str(cfg_dir), "notify", "retry", str(msg.id))
    assert result.exit_code == 0, result.output
    assert f"message {msg.id} sent" in result.stdout
    sent = outbox.get(db, msg.id)
    assert len(hook.accepted) == 1 and (sent.status, sent.last_error) == ("sent", None)
    again = cli("--config", str(cfg_dir), "notify", "retry", str(msg.id))
    assert again.exit_code == 1 and "is sent; there is nothing to retry" in again.stderr
    assert len(hook.accepted) == 1
    actions = [r[0] for r in db.execute("SELECT action FROM audit_events ORDER BY seq")]
    assert "notify.dead" in actions and "notify.retry" in actions
    hook.close()


def test_email_reaches_a_real_smtp_server(
    tmp_path: Path, db_path: Path, smtp: tuple[int, Mailbox]
) -> None:
    port, box = smtp
    channel = {
        "name": "oncall-mail",
        "url": f"mailto://127.0.0.1:{port}?from=opsconsole@example.com&to=oncall@example.com"
        "&mode=insecure",
        "events": ["incident.*"],
    }
    config, db, audit, _ = _setup(tmp_path, db_path, [channel])
    inc = _declare(db, audit, config, "Ledger replication stopped")
    assert asyncio.run(Deliverer(db, audit, config).drain()) == {1: "sent"}
    [mail] = box.messages
    assert mail.rcpt_tos == ["oncall@example.com"]
    text = mail.content.decode()
    assert f"{inc} declared (SEV1)" in text and "Ledger replication stopped" in text


def test_pagerduty_dedup_key_is_stable_across_trigger_ack_resolve(
    tmp_path: Path, db_path: Path, lt: LoopThread, monkeypatch: pytest.MonkeyPatch
) -> None:
    pd = Receiver(lt)
    monkeypatch.setenv("PD_ROUTING_KEY", "R0UTINGKEY-secret-1234")
    channel = {
        "name": "pager",
        "kind": "pagerduty",
        "url": f"{pd.url}/v2/enqueue",
        "secret_env": "PD_ROUTING_KEY",
        "events": ["incident.declared", "incident.status_changed"],
    }
    config, db, audit, _ = _setup(tmp_path, db_path, [channel])
    svc = IncidentService(db, audit, config)
    inc = svc.declare("Payments down", severity="SEV1", category="system-failure").id
    svc.set_status(inc, "investigating")
    svc.set_status(inc, "mitigated")
    svc.set_status(inc, "resolved")
    deliverer = Deliverer(db, audit, config)
    for msg in sorted(outbox.list_messages(db), key=lambda m: m.id):
        if msg.event in ("incident.declared", "incident.status_changed"):
            assert asyncio.run(deliverer.deliver(msg.id)) == "sent"
    actions = [(b["event_action"], b["dedup_key"]) for b in pd.accepted]
    assert actions == [
        ("trigger", f"opsconsole/{inc}"),
        ("acknowledge", f"opsconsole/{inc}"),
        ("acknowledge", f"opsconsole/{inc}"),
        ("resolve", f"opsconsole/{inc}"),
    ]
    assert pd.accepted[0]["payload"]["severity"] == "critical"
    assert all(b["routing_key"] == "R0UTINGKEY-secret-1234" for b in pd.accepted)
    stored = dump(db)
    assert "R0UTINGKEY-secret-1234" not in stored  # the key is never stored
    pd.close()


def test_two_workers_send_a_message_once(tmp_path: Path, db_path: Path, lt: LoopThread) -> None:
    hook = Receiver(lt)
    channel = {"name": "hook", "url": f"json://127.0.0.1:{hook.port}/hook"}
    config, db, audit, _ = _setup(tmp_path, db_path, [channel])
    _declare(db, audit, config)

    async def both() -> list[str]:
        a = Deliverer(open_db(db_path), audit, config)
        b = Deliverer(open_db(db_path), audit, config)
        return list(await asyncio.gather(a.deliver(1), b.deliver(1)))

    results = sorted(asyncio.run(both()))
    # The loser finds it claimed (pending) or, if it looks after the winner, already sent.
    assert results in (["pending", "sent"], ["sent", "sent"])
    assert len(hook.accepted) == 1 and hook.posts == 1
    hook.close()


def test_message_no_channel_wants_is_skipped(tmp_path: Path, db_path: Path) -> None:
    channel = {"name": "drills-only", "url": "json://127.0.0.1:9/x", "events": ["drill.*"]}
    config, db, audit, _ = _setup(tmp_path, db_path, [channel])
    _declare(db, audit, config)
    assert asyncio.run(Deliverer(db, audit, config).drain()) == {1: "skipped"}


def test_channel_settings_are_checked(tmp_path: Path) -> None:
    cfg_dir = write_config(
        tmp_path / "config",
        settings={"notifications": {"channels": [{"name": "s", "url": "slack://{secret}"}]}},
    )
    result = cli("--config", str(cfg_dir), "serve", env={"OPSCONSOLE_SERVE_TOKEN": "x" * 32})
    assert result.exit_code == 3
    assert "settings.yaml" in result.stderr and "url uses {secret}" in result.stderr


def test_a_missing_channel_secret_stops_serve_before_it_listens(tmp_path: Path) -> None:
    cfg_dir = write_config(
        tmp_path / "config",
        settings={
            "notifications": {
                "channels": [{"name": "s", "url": "slack://{secret}", "secret_env": "NO_SUCH"}]
            }
        },
    )
    result = cli("--config", str(cfg_dir), "serve", env={"OPSCONSOLE_SERVE_TOKEN": "x" * 32})
    assert result.exit_code == 3
    assert "environment variable NO_SUCH is not set" in result.stderr


@pytest.mark.parametrize("command", [("config", "check"), ("serve",)])
def test_a_channel_url_no_apprise_service_handles_is_refused_up_front(
    tmp_path: Path, command: tuple[str, ...]
) -> None:
    cfg_dir = write_config(
        tmp_path / "config",
        settings={
            "notifications": {
                "channels": [
                    {"name": "ok", "url": "json://127.0.0.1:9/x"},
                    {"name": "typo", "url": "slak://T0/B0/xyz"},
                ]
            }
        },
    )
    result = cli("--config", str(cfg_dir), *command, env={"OPSCONSOLE_SERVE_TOKEN": "x" * 32})
    assert result.exit_code == 3, result.output
    assert "notifications.channels[1].url: typo: no Apprise service has the scheme slak://" in (
        result.stderr
    )


def test_two_channels_with_one_name_are_refused(tmp_path: Path) -> None:
    hook = {"url": "json://127.0.0.1:9/x"}
    cfg_dir = write_config(
        tmp_path / "config",
        settings={"notifications": {"channels": [{"name": "a", **hook}, {"name": "a", **hook}]}},
    )
    result = cli("--config", str(cfg_dir), "config", "check")
    assert result.exit_code == 3, result.output
    assert "channel name 'a' is used twice ([0] and [1])" in result.stderr


@pytest.mark.parametrize(
    "action,target,details,outcome,event",
    [
        (
            "runbook.run.finished",
            "20261127-r1",
            {"error": "step x failed"},
            "failed",
            "runbook.run_failed",
        ),
        ("runbook.run.finished", "20261127-r1", {}, "timed_out", "runbook.run_failed"),
        ("runbook.run.finished", "20261127-r1", {}, "succeeded", None),
        (
            "runbook.approval.requested",
            "run-1/requires-approval",
            {"message": "m"},
            "ok",
            "runbook.approval_requested",
        ),
        (
            "drill.run.finished",
            "sa-failover",
            {"reason": "RTO 300 > 120"},
            "failed",
            "drill.failed",
        ),
        ("drill.run.finished", "sa-failover", {}, "passed", None),
        ("drill.missed", "sa-failover", {"reason": "scheduler down"}, "missed", "drill.failed"),
        (
            "incident.deadline.missed",
            "INC-1",
            {"deadline": "gdpr"},
            "ok",
            "incident.deadline_missed",
        ),
        ("incident.note", "INC-1", {"text": "x"}, "ok", None),
        (
            "health.state_changed",
            "r1/payments",
            {"new": "down", "old": "ok"},
            "down",
            "health.changed",
        ),
    ],
)
def test_which_audit_events_become_messages(
    action: str, target: str, details: dict[str, Any], outcome: str, event: str | None
) -> None:
    row = {
        "action": action,
        "target": target,
        "details": details,
        "outcome": outcome,
        "actor": "alice",
    }
    got = outbox.message_for(row)
    assert (got[0] if got else None) == event


def test_notify_retry_refuses_what_it_cannot_retry(tmp_path: Path, db_path: Path) -> None:
    config, db, audit, cfg_dir = _setup(tmp_path, db_path, [])
    _declare(db, audit, config)
    missing = cli("--config", str(cfg_dir), "notify", "retry", "99")
    assert missing.exit_code == 4 and "no outbox message 99" in missing.stderr
    db.execute(
        "UPDATE outbox SET claimed_by = 'host:1:a', claimed_until = '2999-01-01T00:00:00+00:00'"
    )
    held = cli("--config", str(cfg_dir), "notify", "retry", "1")
    assert held.exit_code == 7 and "being delivered by host:1:a" in held.stderr
    bad = cli("--config", str(cfg_dir), "notify", "list", "--status", "lost")
    assert bad.exit_code == 2


def test_notify_test_sends_straight_to_a_channel(
    tmp_path: Path, db_path: Path, lt: LoopThread
) -> None:
    hook = Receiver(lt)
    channel = {"name": "hook", "url": f"json://127.0.0.1:{hook.port}/hook"}
    _, db, _, cfg_dir = _setup(tmp_path, db_path, [channel])
    ok = cli("--config", str(cfg_dir), "notify", "test", "hook")
    assert ok.exit_code == 0 and len(hook.accepted) == 1
    hook.down = True
    down = cli("--config", str(cfg_dir), "notify", "test", "hook")
    assert down.exit_code == 1 and "not delivered" in down.stderr
    unknown = cli("--config", str(cfg_dir), "notify", "test", "nope")
    assert unknown.exit_code == 4 and "known: hook" in unknown.stderr
    assert outbox.list_messages(db) == []  # a test is not queued
    hook.close()


def test_prune_removes_only_delivered_messages(tmp_path: Path, db_path: Path) -> None:
    from datetime import timedelta

    from opsconsole.timeutil import utcnow

    config, db, audit, _ = _setup(tmp_path, db_path, [])
    for title in ("a", "b", "c"):
        _declare(db, audit, config, title)
    db.execute("UPDATE outbox SET status = 'sent' WHERE id = 1")
    db.execute("UPDATE outbox SET status = 'dead' WHERE id = 2")
    assert outbox.prune(db, utcnow() - timedelta(days=1)) == 0  # all younger than a day
    assert outbox.prune(db, utcnow() + timedelta(seconds=1)) == 1
    assert sorted(m.status for m in outbox.list_messages(db)) == ["dead", "pending"]
