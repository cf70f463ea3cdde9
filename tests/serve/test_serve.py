"""``opsconsole serve`` as a real process: tokens, limits, TLS, the Alertmanager endpoint."""

from __future__ import annotations

import json
import socket
import ssl
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from opsconsole.store import open_db
from tests.health.servers import self_signed
from tests.helpers import allow_inserts, cli, dump, refuse_inserts
from tests.serve.helpers import TOKEN, Serve, write_config

FIRING: dict[str, Any] = {
    "version": "4",
    "groupKey": '{}:{alertname="PaymentsDown"}',
    "status": "firing",
    "receiver": "opsconsole",
    "groupLabels": {"alertname": "PaymentsDown"},
    "commonLabels": {"alertname": "PaymentsDown", "severity": "critical", "region": "sa-east-1"},
    "commonAnnotations": {"summary": "Payments health check failing"},
    "externalURL": "http://alertmanager.example",
    "alerts": [
        {
            "status": "firing",
            "labels": {"alertname": "PaymentsDown", "severity": "critical", "region": "sa-east-1"},
            "annotations": {"summary": "Payments health check failing"},
            "startsAt": "2026-11-27T08:52:00Z",
            "endsAt": "0001-01-01T00:00:00Z",
            "fingerprint": "a1b2c3",
        }
    ],
}


@pytest.fixture(
    scope="module", params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgresql)]
)
def served(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[Serve, Path]]:
    """One serve process for the module, on each engine in turn (``store_engine`` is
    per test; this one lives as long as the module)."""
    base = tmp_path_factory.mktemp("serve")
    cfg = write_config(base / "config")
    cluster = request.getfixturevalue("pg_cluster") if request.param == "postgresql" else None
    db: Any = cluster.new_database() if cluster else base / "serve.db"
    proc = Serve(cfg, db, "--max-body", "4096")
    yield proc, db
    assert proc.stop() == 0
    if cluster:
        cluster.drop_database(db)


def _refusals(db: Path) -> list[dict[str, Any]]:
    rows = open_db(db).execute(
        "SELECT target, details, outcome FROM audit_events WHERE action = 'serve.refused' "
        "ORDER BY seq"
    )
    return [{"target": t, "outcome": o, **json.loads(d)} for t, d, o in rows]


def test_healthz_needs_no_token_and_everything_else_does(served: tuple[Serve, Path]) -> None:
    proc, db = served
    with proc.client(token=None) as anon:
        assert anon.get("/healthz").text == "ok\n"
        missing = anon.get("/metrics")
        assert missing.status_code == 401
        assert missing.headers["WWW-Authenticate"].startswith("Bearer")
        assert anon.post("/v1/alertmanager", json=FIRING).status_code == 401
    with proc.client(token="wrong-token-but-long-enough") as bad:
        assert bad.get("/readyz").status_code == 401
    with proc.client() as good:
        assert good.get("/readyz").json()["ready"] is True
    refused = _refusals(db)
    assert [(r["path"], r["reason"]) for r in refused[-3:]] == [
        ("/metrics", "missing token"),
        ("/v1/alertmanager", "missing token"),
        ("/readyz", "wrong token"),
    ]
    assert all(r["outcome"] == "refused" and r["status"] == 401 for r in refused)
    stored = dump(open_db(db))
    assert "wrong-token-but-long-enough" not in stored and TOKEN not in stored
    assert "PaymentsDown" not in stored  # the refused body was never read


def test_oversized_body_is_refused_with_413(served: tuple[Serve, Path]) -> None:
    proc, db = served
    big = {**FIRING, "commonAnnotations": {"summary": "x" * 10_000}}
    with proc.client() as good:
        resp = good.post("/v1/alertmanager", json=big)
        assert resp.status_code == 413

        def chunks() -> Iterator[bytes]:  # no Content-Length: the limit applies while reading
            yield json.dumps(big).encode()

        chunked = good.post(
            "/v1/alertmanager", content=chunks(), headers={"Content-Type": "application/json"}
        )
        assert chunked.status_code == 413
    last = _refusals(db)[-2:]
    assert [(r["status"], r["reason"]) for r in last] == [(413, "body too large")] * 2
    assert "xxxxxxxxxx" not in dump(open_db(db))


def test_alertmanager_endpoint_is_idempotent(served: tuple[Serve, Path]) -> None:
    proc, _ = served
    with proc.client() as c:
        first = c.post("/v1/alertmanager", json=FIRING).json()
        again = c.post("/v1/alertmanager", json=FIRING).json()
        assert (first["action"], again["action"]) == ("declared", "unchanged")
        assert first["incident"] == again["incident"]
        bad = c.post("/v1/alertmanager", content=b"{not json", headers={"Content-Type": "x"})
        assert bad.status_code == 400
        wrong = c.post("/v1/alertmanager", json={"version": "3"})
        assert wrong.status_code == 400 and "version" in wrong.json()["error"]
        metrics = c.get("/metrics").text
    assert 'opsconsole_alertmanager_webhooks_total{result="declared"} 1.0' in metrics
    assert 'opsconsole_alertmanager_webhooks_total{result="unchanged"} 1.0' in metrics
    assert 'opsconsole_incidents_open{category="system-failure",severity="SEV1"} 1.0' in metrics
    assert 'opsconsole_http_refusals_total{reason="missing token"}' in metrics
    assert 'opsconsole_outbox_messages{status="pending"}' in metrics


@pytest.mark.usefixtures("store_engine")
def test_tls(tmp_path: Path, db_path: Path) -> None:
    cert, key = self_signed(tmp_path)
    cfg = write_config(tmp_path / "config")
    proc = Serve(cfg, db_path, "--tls-cert", str(cert), "--tls-key", str(key))
    try:
        assert proc.url.startswith("https://127.0.0.1:")
        ctx = ssl.create_default_context(cafile=str(cert))
        with httpx.Client(verify=ctx, trust_env=False) as c:
            resp = c.get(proc.url + "/metrics", headers={"Authorization": f"Bearer {TOKEN}"})
            assert resp.status_code == 200 and "opsconsole_audit_head_seq" in resp.text
        port = int(proc.url.rsplit(":", 1)[1])
        with socket.create_connection(("127.0.0.1", port)) as raw:  # plain HTTP is not served
            raw.sendall(b"GET /healthz HTTP/1.0\r\n\r\n")
            assert b"ok" not in raw.recv(100)
    finally:
        assert proc.stop() == 0


def test_serve_refuses_to_start_without_a_token(tmp_path: Path) -> None:
    cfg = write_config(tmp_path / "config")
    result = cli("--config", str(cfg), "serve", env={"OPSCONSOLE_SERVE_TOKEN": ""})
    assert result.exit_code == 3 and "needs a bearer token" in result.stderr
    short = cli("--config", str(cfg), "serve", env={"OPSCONSOLE_SERVE_TOKEN": "short"})
    assert short.exit_code == 3 and "shorter than 16" in short.stderr
    (tmp_path / "tok").write_text("y" * 32)
    (tmp_path / "tok").chmod(0o600)
    half = cli(
        "--config", str(cfg), "serve", "--token-file", str(tmp_path / "tok"), "--tls-cert", "c.pem"
    )
    assert half.exit_code == 2 and "--tls-key" in half.stderr


@pytest.mark.usefixtures("store_engine")
def test_sighup_reloads_rules_and_keeps_them_when_broken(tmp_path: Path, db_path: Path) -> None:
    import signal

    cfg = write_config(tmp_path / "config", rules=[])
    proc = Serve(cfg, db_path)
    try:
        assert proc.wait_for("serve.listening")["rules"] == 0
        rule = "rules:\n  - name: r\n    when: {health: {}}\n    then: {notify: {text: x}}\n"
        (cfg / "rules.yaml").write_text(rule)
        proc.proc.send_signal(signal.SIGHUP)
        assert proc.wait_for("rules.reloaded")["rules"] == 1
        (cfg / "rules.yaml").write_text("rules: [\n")
        proc.proc.send_signal(signal.SIGHUP)
        assert "rules.yaml:2:1" in proc.wait_for("rules.reload_failed")["error"]
    finally:
        assert proc.stop() == 0


@pytest.mark.usefixtures("store_engine")
def test_store_failure_answers_503_so_alertmanager_sends_again(
    tmp_path: Path, db_path: Path
) -> None:
    cfg = write_config(tmp_path / "config")
    proc = Serve(cfg, db_path)
    db = open_db(db_path)
    try:
        refuse_inserts(db, "incidents", "disk full (simulated)")
        with proc.client() as c:
            failed = c.post("/v1/alertmanager", json=FIRING)
            assert failed.status_code == 503 and "disk full" in failed.json()["error"]
            assert db.execute("SELECT COUNT(*) FROM alert_groups").fetchone()[0] == 0
            allow_inserts(db, "incidents")
            assert c.post("/v1/alertmanager", json=FIRING).json()["action"] == "declared"
    finally:
        assert proc.stop() == 0
