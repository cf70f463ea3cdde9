"""Alertmanager webhook intake (payload version 4): firing, grouped, repeated, resolved."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import pytest

from opsconsole.config import load_config
from opsconsole.errors import OpsError
from opsconsole.incidents import IncidentService
from tests.helpers import cli
from tests.incidents.conftest import Clock

FIRING: dict[str, Any] = {
    "version": "4",
    "groupKey": '{}:{alertname="PaymentsDown"}',
    "truncatedAlerts": 0,
    "status": "firing",
    "receiver": "opsconsole",
    "groupLabels": {"alertname": "PaymentsDown"},
    "commonLabels": {"alertname": "PaymentsDown", "severity": "critical", "service": "payments"},
    "commonAnnotations": {"summary": "Payments health check failing"},
    "externalURL": "http://alertmanager.example:9093",
    "alerts": [
        {
            "status": "firing",
            "labels": {
                "alertname": "PaymentsDown",
                "severity": "critical",
                "service": "payments",
                "region": "sa-east-1",
            },
            "annotations": {"summary": "Payments health check failing"},
            "startsAt": "2026-11-27T08:52:00Z",
            "endsAt": "0001-01-01T00:00:00Z",
            "generatorURL": "http://prometheus.example:9090/graph?g0.expr=probe_success",
            "fingerprint": "a1b2c3",
        }
    ],
}


def _grouped() -> dict[str, Any]:
    payload = copy.deepcopy(FIRING)
    second = copy.deepcopy(payload["alerts"][0])
    second["labels"].update({"region": "eu-central-1", "severity": "warning"})
    second["fingerprint"] = "d4e5f6"
    second["startsAt"] = "2026-11-27T08:40:00Z"
    payload["alerts"].append(second)
    payload["commonLabels"] = {"alertname": "PaymentsDown", "service": "payments"}
    return payload


def _resolved() -> dict[str, Any]:
    payload = copy.deepcopy(FIRING)
    payload["status"] = "resolved"
    for alert in payload["alerts"]:
        alert["status"] = "resolved"
        alert["endsAt"] = "2026-11-27T10:05:00Z"
    return payload


def test_firing_group_declares_an_incident(svc: IncidentService) -> None:
    result = svc.ingest(FIRING)
    assert result.action == "declared"
    inc = svc.get(result.incident_id)
    assert (inc.severity, inc.category) == ("SEV1", "system-failure")
    assert inc.title == "Payments health check failing"
    assert inc.regions == ["sa-east-1"] and inc.services == ["payments"]
    assert inc.detected_at.isoformat() == "2026-11-27T08:52:00+00:00"
    assert inc.source_key == FIRING["groupKey"]
    notes = [e for e in svc.timeline(inc.id) if e.kind == "note"]
    assert (
        "PaymentsDown{region=sa-east-1, service=payments, severity=critical} firing"
        in notes[0].text
    )
    assert notes[0].local is not None  # Sao Paulo local time beside UTC


def test_same_group_resent_adds_nothing(svc: IncidentService) -> None:
    first = svc.ingest(FIRING)
    before = len(svc.timeline(first.incident_id))
    again = svc.ingest(FIRING)
    assert again.action == "unchanged" and again.incident_id == first.incident_id
    assert len(svc.list_incidents()) == 1
    assert len(svc.timeline(first.incident_id)) == before


def test_changed_firing_set_adds_one_note_naming_the_change(svc: IncidentService) -> None:
    first = svc.ingest(FIRING)
    grown = copy.deepcopy(FIRING)
    extra = copy.deepcopy(FIRING["alerts"][0])
    extra["labels"]["instance"] = "pay-2"
    extra["fingerprint"] = "ffff0002"
    grown["alerts"].append(extra)
    result = svc.ingest(grown)
    assert result.action == "added"
    notes = [e.text for e in svc.timeline(first.incident_id) if e.kind == "note"]
    assert len(notes) == 2 and "started firing: PaymentsDown{instance=pay-2" in notes[-1]
    assert "PaymentsDown{region=" not in notes[-1]  # the alert that kept firing is not news
    assert svc.ingest(grown).action == "unchanged"
    # One alert of the two stops firing (Alertmanager sends it as resolved in the group).
    shrunk = copy.deepcopy(grown)
    shrunk["alerts"][1]["status"] = "resolved"
    assert svc.ingest(shrunk).action == "added"
    notes = [e.text for e in svc.timeline(first.incident_id) if e.kind == "note"]
    assert len(notes) == 3 and "no longer firing: " in notes[-1] and "pay-2" in notes[-1]


def test_resolved_resent_adds_one_note(svc: IncidentService) -> None:
    iid = svc.ingest(FIRING).incident_id
    assert svc.ingest(_resolved()).action == "noted"
    assert svc.ingest(_resolved()).action == "unchanged"
    notes = [e for e in svc.timeline(iid) if e.kind == "note"]
    assert len(notes) == 2
    assert svc.ingest(FIRING).action == "added"  # firing again after resolving
    assert "firing again" in svc.timeline(iid)[-1].text


def test_grouped_alerts_make_one_incident_with_the_highest_severity(svc: IncidentService) -> None:
    result = svc.ingest(_grouped())
    inc = svc.get(result.incident_id)
    assert result.alerts == 2
    assert inc.severity == "SEV1"
    assert inc.regions == ["sa-east-1", "eu-central-1"]
    assert inc.detected_at.isoformat() == "2026-11-27T08:40:00+00:00"  # the earliest alert
    note = next(e.text for e in svc.timeline(inc.id) if e.kind == "note")
    assert "a1b2c3" not in note and "region=eu-central-1" in note and "region=sa-east-1" in note


def test_resolved_payload_adds_a_note(svc: IncidentService) -> None:
    iid = svc.ingest(FIRING).incident_id
    result = svc.ingest(_resolved())
    assert (result.action, result.incident_id) == ("noted", iid)
    assert svc.get(iid).status == "declared"  # people resolve incidents, alerts do not
    last = svc.timeline(iid)[-1]
    assert last.kind == "note" and last.text.startswith("alerts resolved")


def test_resolved_payload_without_an_open_incident_is_ignored(svc: IncidentService) -> None:
    result = svc.ingest(_resolved())
    assert result.action == "ignored" and svc.list_incidents() == []


def test_closed_incident_is_not_reused(svc: IncidentService) -> None:
    iid = svc.ingest(FIRING).incident_id
    svc.set_status(iid, "mitigated")
    svc.set_status(iid, "resolved")
    for t in svc.get(iid).tasks:
        svc.task(iid, t.id, "waive", note="test")
    svc.set_status(iid, "closed")
    assert svc.ingest(FIRING).incident_id != iid


@pytest.mark.parametrize(
    ("payload", "message"),
    [
        (
            {"version": "3", "groupKey": "x", "status": "firing"},
            "unsupported Alertmanager payload version",
        ),
        ({"version": "4", "status": "firing"}, "groupKey"),
        ([1, 2], "expected a JSON object"),
    ],
)
def test_bad_payloads_are_refused(svc: IncidentService, payload: Any, message: str) -> None:
    with pytest.raises(OpsError, match=message):
        svc.ingest(payload)


def test_mapping_is_configurable(config_dir: Path, make_service: Any, clock: Clock) -> None:
    (config_dir / "incidents.yaml").write_text(
        "intake:\n"
        "  severity: {label: priority, map: {P1: SEV1, P2: SEV2}, default: SEV4}\n"
        "  category: {label: team, map: {secops: network-security}, default: system-failure}\n"
        "  region_labels: [dc]\n"
    )
    svc = make_service(cfg=load_config(config_dir))
    payload = copy.deepcopy(FIRING)
    payload["alerts"][0]["labels"] = {
        "alertname": "Intrusion",
        "priority": "P2",
        "team": "secops",
        "dc": "ap-south-1",
    }
    payload["commonLabels"] = {"alertname": "Intrusion"}
    inc = svc.get(svc.ingest(payload).incident_id)
    assert (inc.severity, inc.category, inc.regions) == ("SEV2", "network-security", ["ap-south-1"])


def test_cli_ingest_from_file_and_stdin(tmp_path: Path, config_dir: Path) -> None:
    path = tmp_path / "alert.json"
    path.write_text(json.dumps(FIRING))
    first = cli("--config", str(config_dir), "incident", "ingest", str(path), "--json")
    assert first.exit_code == 0, first.output
    assert json.loads(first.stdout)["action"] == "declared"
    second = cli(
        "--config", str(config_dir), "incident", "ingest", "-", input=json.dumps(_resolved())
    )
    assert second.exit_code == 0, second.output
    assert "noted 1 resolved alert" in second.stdout
    bad = cli("--config", str(config_dir), "incident", "ingest", "-", input="{not json")
    assert bad.exit_code == 1 and "not JSON" in bad.output
