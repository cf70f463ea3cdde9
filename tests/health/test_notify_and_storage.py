"""State changes audited and posted to webhooks; samples stored, rolled up, replayed, pruned."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from opsconsole.audit import AuditLog, query
from opsconsole.config import Webhook
from opsconsole.health import storage
from opsconsole.health.monitor import Monitor
from opsconsole.notify import find_webhook, payload, post, post_event, wants
from opsconsole.redact import secrets
from opsconsole.store import open_db
from opsconsole.timeutil import utcnow
from tests.health.servers import svc, write_config

FAST = {"hysteresis": {"down_after": 1, "recover_after": 1}}


async def wait_until(cond: Callable[[], bool], timeout: float = 20) -> None:
    deadline = time.monotonic() + timeout
    while not cond():
        assert time.monotonic() < deadline, "condition not met in time"
        await asyncio.sleep(0.05)


@pytest.mark.usefixtures("store_engine")
async def test_state_changes_are_audited_and_posted_to_webhooks(
    tmp_path: Path, db_path: Path, servers: Callable[..., Any]
) -> None:
    target, sink = servers(), servers()
    hooks = [
        {"name": "generic", "url": sink.url + "hook", "format": "generic"},
        {"name": "chat", "url": sink.url + "hook", "format": "slack", "events": ["health.*"]},
        {"name": "runbooks-only", "url": sink.url + "hook", "events": ["runbook.*"]},
    ]
    cfg = write_config(tmp_path / "cfg", {"api": svc(target.url)}, probe=FAST, webhooks=hooks)
    db = open_db(db_path)
    audit = AuditLog(db, actor="tester")
    async with Monitor(cfg, db=db, audit=audit) as mon:
        await mon.sweep()  # unknown -> ok: not news
        target.mode = "fail"
        await mon.sweep()  # ok -> down (service and region)
        await wait_until(lambda: len(sink.received) >= 4)
        assert not mon.errors
    rows = query(db, action="health.state_changed")
    assert [(r["target"], r["outcome"]) for r in rows] == [("r1/api", "down"), ("r1", "down")]
    assert rows[0]["details"]["old"] == "ok" and rows[0]["details"]["reason"] == "HTTP 500"
    generic = [b for b in sink.received if "event" in b]
    slack = [b for b in sink.received if set(b) == {"text"}]
    assert len(generic) == 2 and len(slack) == 2
    assert generic[0]["event"] == "health.state_changed"
    assert generic[0]["data"]["key"] == "r1/api" and generic[0]["data"]["new"] == "down"
    assert "r1/api is DOWN" in slack[0]["text"]


async def test_post_and_helpers(servers: Callable[..., Any]) -> None:
    sink = servers()
    hook = Webhook(name="x", url=sink.url + "hook", format="generic", events=["runbook.*"])  # type: ignore[arg-type]
    secrets.add("s3cr3t-value")
    d = await post(
        hook, "token s3cr3t-value leaked", data={"password": "hunter2"}, event="runbook.notify"
    )
    assert d.ok and d.status_code == 200
    body = sink.received[-1]
    assert "s3cr3t-value" not in body["text"] and body["data"]["password"] != "hunter2"
    assert wants(hook, "runbook.notify") and not wants(hook, "health.state_changed")
    assert await post_event([hook], "health.state_changed", "t") == []
    assert payload(hook.model_copy(update={"format": "slack"}), "hi", None, "e") == {"text": "hi"}
    dead = Webhook(name="dead", url="http://127.0.0.1:9/", format="slack")  # type: ignore[arg-type]
    d = await post(dead, "hello", timeout=2)
    assert not d.ok and d.error


def test_find_webhook_names_the_known_ones(tmp_path: Path) -> None:
    import pytest

    from opsconsole.errors import NotFoundError

    cfg = write_config(
        tmp_path,
        {"api": svc("http://127.0.0.1:9/")},
        webhooks=[{"name": "oncall", "url": "http://127.0.0.1:9/"}],
    )
    assert find_webhook(cfg.settings, "oncall").name == "oncall"
    with pytest.raises(NotFoundError, match="oncall"):
        find_webhook(cfg.settings, "nope")


@pytest.mark.usefixtures("store_engine")
async def test_samples_are_stored_rolled_up_and_replayed(
    tmp_path: Path, db_path: Path, servers: Callable[..., Any]
) -> None:
    srv = servers()
    cfg = write_config(
        tmp_path / "cfg",
        {"api": svc(srv.url)},
        probe={"hysteresis": {"down_after": 3, "recover_after": 2}},
    )
    db = open_db(db_path)
    srv.mode = "fail"
    async with Monitor(cfg, db=db) as mon:
        assert (await mon.sweep()).service("r1", "api").state == "degraded"
        await mon.sweep()
    assert db.execute("SELECT count(*) FROM probe_samples").fetchone()[0] == 2
    minutes = storage.history(db, since=utcnow() - timedelta(hours=1), region="r1")
    assert sum(m.count for m in minutes) == 2 and sum(m.failures for m in minutes) == 2
    # A new process continues the hysteresis: the third failure takes it down.
    async with Monitor(cfg, db=db) as mon:
        assert await mon.restore() == 2
        assert mon.snapshot().service("r1", "api").state == "degraded"
        assert (await mon.sweep()).service("r1", "api").state == "down"
    storage.prune(db, now=utcnow() + timedelta(days=60), raw_minutes=60, rollup_days=30)
    assert db.execute("SELECT count(*) FROM probe_samples").fetchone()[0] == 0
    assert db.execute("SELECT count(*) FROM probe_rollups").fetchone()[0] == 0
