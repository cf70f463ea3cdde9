"""``serve --monitor --scheduler``: one process probes, exports, and notifies changes."""

from __future__ import annotations

from pathlib import Path

import pytest

from opsconsole import outbox
from opsconsole.store import open_db
from tests.health.servers import HttpServer, LoopThread, svc, write_config
from tests.serve.helpers import Serve, wait_until


@pytest.fixture(autouse=True)
def _on_both_engines(store_engine: str) -> str:
    """Every test here runs on SQLite and on PostgreSQL (see ``store_engine``)."""
    return store_engine


def test_serve_runs_the_monitor_and_scheduler(
    tmp_path: Path, db_path: Path, lt: LoopThread
) -> None:
    target = HttpServer(lt)
    cfg = write_config(tmp_path / "config", {"payments": svc(target.url)})
    serve = Serve(cfg.directory, db_path, "--monitor", "--scheduler", "--tick", "0.1")
    try:
        with serve.client() as c:
            ready = wait_until(lambda: c.get("/readyz").status_code == 200 and c.get("/readyz"))
            checks = ready.json()["checks"]
            assert checks["monitor"] == "ok" and checks["scheduler"] == "ok"
            ok_line = 'opsconsole_health_state{region="r1",service="payments",state="ok"} 1.0'

            def scraped_ok() -> str | None:
                text = c.get("/metrics").text
                return text if ok_line in text else None

            metrics = wait_until(scraped_ok)
            assert (
                'opsconsole_probe_latency_seconds_count{endpoint="default",region="r1",'
                'service="payments"}' in metrics
            )
            assert "opsconsole_sweep_duration_seconds_count" in metrics
            assert (
                'opsconsole_probe_up{endpoint="default",region="r1",service="payments"} 1.0'
                in metrics
            )
            target.mode = "fail"  # down after three failed sweeps (hysteresis)
            db = open_db(db_path)

            def down_message() -> list[outbox.Message]:
                return [
                    m
                    for m in outbox.list_messages(db)
                    if m.event == "health.changed" and m.data.get("new") == "down"
                ]

            downs = wait_until(lambda: len(down_message()) == 2 and down_message(), timeout=30)
            assert sorted(m.subject for m in downs) == ["r1", "r1/payments"]
            assert all(" is DOWN (was " in m.body for m in downs), [m.body for m in downs]
            wait_until(lambda: 'state="down"} 1.0' in c.get("/metrics").text)
        actions = {r[0] for r in db.execute("SELECT action FROM audit_events")}
        assert {"scheduler.start", "serve.start", "health.state_changed"} <= actions
    finally:
        assert serve.stop() == 0
        target.close()
    actions = {r[0] for r in open_db(db_path).execute("SELECT action FROM audit_events")}
    assert {"scheduler.stop", "serve.stop"} <= actions
