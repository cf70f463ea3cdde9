"""With the real monitoring stack: Prometheus scrapes serve, Alertmanager posts to it."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx

from opsconsole.incidents.store import list_ids, load_incident, load_timeline
from opsconsole.store import open_db
from tests.serve.helpers import TOKEN, Serve, wait_until, write_config
from tests.serve.stack import alertmanager, prometheus


def _query(prom_url: str, expr: str) -> list[dict[str, Any]]:
    resp = httpx.get(f"{prom_url}/api/v1/query", params={"query": expr}, trust_env=False)
    resp.raise_for_status()
    return list(resp.json()["data"]["result"])


def test_alertmanager_posts_and_prometheus_scrapes(tmp_path: Path) -> None:
    token_file = tmp_path / "token"
    token_file.write_text(TOKEN + "\n")
    token_file.chmod(0o600)
    cfg = write_config(tmp_path / "config")
    db = tmp_path / "serve.db"
    serve = Serve(cfg, db, "--token-file", str(token_file))
    am = prom = None
    try:
        am = alertmanager(tmp_path, f"{serve.url}/v1/alertmanager", token_file)
        prom = prometheus(tmp_path, serve.url.removeprefix("http://"), token_file)
        now = datetime.now(UTC)
        alert = {
            "labels": {
                "alertname": "PaymentsDown",
                "severity": "critical",
                "region": "sa-east-1",
                "service": "payments",
            },
            "annotations": {"summary": "Payments health check failing"},
            "startsAt": now.isoformat(),
        }
        httpx.post(f"{am.url}/api/v2/alerts", json=[alert], trust_env=False).raise_for_status()

        declared = serve.wait_for("alertmanager", timeout=60, action="declared")
        incident = declared["incident"]
        # Alertmanager re-sends the group (repeat_interval 2s): nothing is added.
        serve.wait_for("alertmanager", timeout=60, action="unchanged")
        conn = open_db(db)
        assert list_ids(conn) == [incident]
        inc = load_incident(conn, incident)
        assert (inc.severity, inc.category, inc.regions) == (
            "SEV1",
            "system-failure",
            ["sa-east-1"],
        )
        notes_before = [e for e in load_timeline(conn, inc) if e.kind == "note"]
        assert len(notes_before) == 1

        # Resolve it: the same alert with an end time in the past.
        resolved = {**alert, "endsAt": datetime.now(UTC).isoformat()}
        httpx.post(f"{am.url}/api/v2/alerts", json=[resolved], trust_env=False).raise_for_status()
        serve.wait_for("alertmanager", timeout=60, action="noted")
        notes = [
            e.text for e in load_timeline(conn, load_incident(conn, incident)) if e.kind == "note"
        ]
        assert len(notes) == 2 and notes[-1].startswith("alerts resolved")
        assert list_ids(conn) == [incident]

        # Prometheus scraped serve with the bearer token: its series are queryable.
        up = wait_until(lambda: _query(prom.url, 'up{job="opsconsole"} == 1'), timeout=60)
        assert up[0]["metric"]["instance"] == serve.url.removeprefix("http://")
        series = wait_until(
            lambda: _query(prom.url, 'opsconsole_incidents_open{severity="SEV1"}'), timeout=60
        )
        assert series[0]["metric"]["category"] == "system-failure"
        assert series[0]["value"][1] == "1"
        head = _query(prom.url, "opsconsole_audit_head_seq")
        assert int(head[0]["value"][1]) > 0

        def results_scraped() -> set[str] | None:
            got = {
                r["metric"]["result"]
                for r in _query(prom.url, "opsconsole_alertmanager_webhooks_total")
            }
            return got if got >= {"declared", "unchanged", "noted"} else None

        wait_until(results_scraped, timeout=60)  # the scrape after the resolve
        verified = wait_until(lambda: _query(prom.url, "opsconsole_audit_verify_ok"), timeout=60)
        assert verified[0]["value"][1] == "1"
        assert _query(prom.url, 'opsconsole_outbox_messages{status="pending"}')
    finally:
        for daemon in (prom, am):
            if daemon is not None:
                daemon.stop()
        assert serve.stop() == 0
    refused = (
        open_db(db)
        .execute("SELECT COUNT(*) FROM audit_events WHERE action = 'serve.refused'")
        .fetchone()
    )
    assert refused[0] == 0  # both authenticated with the token file
    assert json.dumps(serve.log).count('"declared"') == 1
