"""Prometheus Alertmanager webhook intake (payload ``version: "4"``).

A firing group with no open incident declares one; a firing group with an open incident
(same ``groupKey``) adds a note to it only when its set of firing alerts changed (a re-send
adds nothing); a resolved payload adds one note. The mapping from
alert labels to severity, category, regions and services comes from
``<config dir>/incidents.yaml`` (see :mod:`opsconsole.incidents.settings`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from opsconsole.errors import OpsError
from opsconsole.incidents.model import SEVERITIES

if TYPE_CHECKING:
    from opsconsole.incidents.service import IncidentService

__all__ = ["Alert", "AlertPayload", "IngestResult", "fingerprint", "ingest", "parse_payload"]


class Alert(BaseModel):
    model_config = ConfigDict(extra="allow")

    status: Literal["firing", "resolved"]
    labels: dict[str, str] = Field(default_factory=dict)
    annotations: dict[str, str] = Field(default_factory=dict)
    startsAt: datetime | None = None
    endsAt: datetime | None = None
    generatorURL: str = ""
    fingerprint: str = ""

    @property
    def name(self) -> str:
        return self.labels.get("alertname", "alert")

    def describe(self) -> str:
        shown = ", ".join(f"{k}={v}" for k, v in sorted(self.labels.items()) if k != "alertname")
        text = f"{self.name}{{{shown}}} {self.status}"
        summary = self.annotations.get("summary")
        if summary:
            text += f": {summary}"
        return text


class AlertPayload(BaseModel):
    model_config = ConfigDict(extra="allow")

    version: str
    groupKey: str
    status: Literal["firing", "resolved"]
    receiver: str = ""
    groupLabels: dict[str, str] = Field(default_factory=dict)
    commonLabels: dict[str, str] = Field(default_factory=dict)
    commonAnnotations: dict[str, str] = Field(default_factory=dict)
    externalURL: str = ""
    alerts: list[Alert] = Field(default_factory=list)


@dataclass
class IngestResult:
    action: Literal["declared", "added", "noted", "unchanged", "ignored"]
    incident_id: str | None
    alerts: int
    message: str
    started: list[str] = field(default_factory=list)  # fingerprints that began firing
    stopped: list[str] = field(default_factory=list)  # fingerprints that stopped firing


def parse_payload(data: Any) -> AlertPayload:
    """Validate an Alertmanager webhook body; a clear error for anything else."""
    if not isinstance(data, dict):
        raise OpsError("not an Alertmanager webhook payload: expected a JSON object")
    if str(data.get("version", "")) != "4":
        raise OpsError(
            f'unsupported Alertmanager payload version {data.get("version")!r}; expected "4"'
        )
    try:
        return AlertPayload.model_validate(data)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"])
        raise OpsError(f"invalid Alertmanager payload: {where}: {first['msg']}") from None


def _values(alerts: list[Alert], common: dict[str, str], names: list[str]) -> list[str]:
    out: list[str] = []
    for labels in [common, *(a.labels for a in alerts)]:
        for name in names:
            value = labels.get(name)
            if value and value not in out:
                out.append(value)
    return out


def fingerprint(alert: Alert) -> str:
    """Alertmanager's fingerprint, or a stable hash of the labels when it is absent."""
    if alert.fingerprint:
        return alert.fingerprint
    import hashlib
    import json

    text = json.dumps(sorted(alert.labels.items()), separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def ingest(svc: IncidentService, data: Any) -> IngestResult:
    """Declare, add to, or note on an incident for one webhook payload (one transaction).

    Idempotent: the group's firing fingerprints are remembered
    (:mod:`opsconsole.incidents.alertgroups`); a re-send with the same set adds nothing,
    a changed set adds one note listing what started and what stopped firing."""
    from opsconsole.incidents.alertgroups import load_group, save_group

    payload = parse_payload(data)
    mapping = svc.settings.intake
    firing = [a for a in payload.alerts if a.status == "firing"]
    resolved = [a for a in payload.alerts if a.status == "resolved"]
    now_firing = {fingerprint(a): a.describe() for a in firing}
    regions = _values(payload.alerts, payload.commonLabels, mapping.region_labels)
    services = _values(payload.alerts, payload.commonLabels, mapping.service_labels)
    if svc.config is not None:
        inv = svc.config.inventory
        regions = [r for r in regions if r in inv.regions]
        known = {s for r in inv.regions.values() for s in r.services}
        services = [s for s in services if s in known]
    region = regions[0] if regions else None
    source = f" (alertmanager {payload.receiver or 'webhook'})"

    with svc.transaction():
        open_id = _open_incident_for(svc, payload.groupKey)
        seen = load_group(svc.db, payload.groupKey)
        # What we knew about this group, for this open incident (none: tell everything).
        before = seen[1] if seen is not None and seen[0] == open_id else None

        if payload.status == "resolved" or not firing:
            if open_id is None:
                return IngestResult(
                    "ignored",
                    None,
                    len(payload.alerts),
                    "resolved alert group with no open incident; nothing to do",
                )
            if before is not None and not before:
                return IngestResult(
                    "unchanged", open_id, 0, f"{open_id}: already noted as resolved"
                )
            lines = [a.describe() for a in resolved] or list((before or {}).values())
            if mapping.resolved_note:
                svc.note(
                    open_id, "alerts resolved" + source + ": " + "; ".join(lines), region=region
                )
            save_group(svc.db, payload.groupKey, open_id, {})
            return IngestResult(
                "noted",
                open_id,
                len(payload.alerts),
                f"{open_id}: noted {len(payload.alerts)} resolved alert(s)",
                stopped=list(before) if before else [fingerprint(a) for a in resolved],
            )

        if open_id is not None:
            if before is not None and set(before) == set(now_firing):
                return IngestResult(
                    "unchanged", open_id, 0, f"{open_id}: the same alerts are firing; nothing new"
                )
            started = [d for fp, d in now_firing.items() if fp not in (before or {})]
            stopped = [d for fp, d in (before or {}).items() if fp not in now_firing]
            parts = []
            if started:
                verb = "firing again" if before == {} else "started firing"
                parts.append(f"{verb}: " + "; ".join(started))
            if stopped:
                parts.append("no longer firing: " + "; ".join(stopped))
            svc.note(open_id, "alerts changed" + source + ": " + " | ".join(parts), region=region)
            save_group(svc.db, payload.groupKey, open_id, now_firing)
            return IngestResult(
                "added",
                open_id,
                len(started),
                f"{open_id}: {len(started)} alert(s) started, {len(stopped)} stopped firing",
                started=[fp for fp in now_firing if fp not in (before or {})],
                stopped=[fp for fp in (before or {}) if fp not in now_firing],
            )
        ranks = list(SEVERITIES)
        severity = min(
            (mapping.severity.pick({**payload.commonLabels, **a.labels}) for a in firing),
            key=ranks.index,
        )
        category = mapping.category.pick({**firing[0].labels, **payload.commonLabels})
        title = (
            payload.commonAnnotations.get(mapping.title_annotation)
            or firing[0].annotations.get(mapping.title_annotation)
            or " ".join(dict.fromkeys(a.name for a in firing))
        )
        starts = [a.startsAt for a in firing if a.startsAt is not None]
        detected = min(starts) if starts else None
        if detected is not None and detected > svc.clock():
            detected = None
        inc = svc.declare(
            title,
            severity=severity,
            category=category,
            regions=regions,
            services=services,
            detected_at=detected,
            source_key=payload.groupKey,
        )
        lines = [a.describe() for a in firing + resolved]
        svc.note(inc.id, "alerts firing" + source + ": " + "; ".join(lines), region=region)
        save_group(svc.db, payload.groupKey, inc.id, now_firing)
    return IngestResult(
        "declared",
        inc.id,
        len(firing),
        f"declared {inc.id} {severity} {category}: {title}",
        started=list(now_firing),
    )


def _open_incident_for(svc: IncidentService, group_key: str) -> str | None:
    row = svc.db.execute(
        "SELECT id FROM incidents WHERE source_key = ? AND status != 'closed' "
        "ORDER BY year DESC, number DESC LIMIT 1",
        (group_key,),
    ).fetchone()
    return row[0] if row else None
