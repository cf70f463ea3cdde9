"""Prometheus Alertmanager webhook intake (payload ``version: "4"``).

A firing group with no open incident declares one; a firing group with an open incident
(same ``groupKey``) adds a note to it; a resolved payload adds a note. The mapping from
alert labels to severity, category, regions and services comes from
``<config dir>/incidents.yaml`` (see :mod:`opsconsole.incidents.settings`).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from opsconsole.errors import OpsError
from opsconsole.incidents.model import SEVERITIES

if TYPE_CHECKING:
    from opsconsole.incidents.service import IncidentService

__all__ = ["Alert", "AlertPayload", "IngestResult", "ingest", "parse_payload"]


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
    action: Literal["declared", "added", "noted", "ignored"]
    incident_id: str | None
    alerts: int
    message: str


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


def ingest(svc: IncidentService, data: Any) -> IngestResult:
    """Declare, add to, or note on an incident for one webhook payload (one transaction)."""
    payload = parse_payload(data)
    mapping = svc.settings.intake
    firing = [a for a in payload.alerts if a.status == "firing"]
    resolved = [a for a in payload.alerts if a.status == "resolved"]
    open_id = _open_incident_for(svc, payload.groupKey)
    lines = [a.describe() for a in firing + resolved]
    regions = _values(payload.alerts, payload.commonLabels, mapping.region_labels)
    services = _values(payload.alerts, payload.commonLabels, mapping.service_labels)
    if svc.config is not None:
        inv = svc.config.inventory
        regions = [r for r in regions if r in inv.regions]
        known = {s for r in inv.regions.values() for s in r.services}
        services = [s for s in services if s in known]
    region = regions[0] if regions else None
    source = f" (alertmanager {payload.receiver or 'webhook'})"

    if payload.status == "resolved" or not firing:
        if open_id is None:
            return IngestResult(
                "ignored",
                None,
                len(payload.alerts),
                "resolved alert group with no open incident; nothing to do",
            )
        if mapping.resolved_note:
            svc.note(open_id, "alerts resolved" + source + ": " + "; ".join(lines), region=region)
        return IngestResult(
            "noted",
            open_id,
            len(payload.alerts),
            f"{open_id}: noted {len(payload.alerts)} resolved alert(s)",
        )

    with svc.transaction():
        if open_id is not None:
            svc.note(open_id, "alerts firing" + source + ": " + "; ".join(lines), region=region)
            return IngestResult(
                "added", open_id, len(firing), f"{open_id}: added {len(firing)} firing alert(s)"
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
        svc.note(inc.id, "alerts firing" + source + ": " + "; ".join(lines), region=region)
    return IngestResult(
        "declared", inc.id, len(firing), f"declared {inc.id} {severity} {category}: {title}"
    )


def _open_incident_for(svc: IncidentService, group_key: str) -> str | None:
    row = svc.db.execute(
        "SELECT id FROM incidents WHERE source_key = ? AND status != 'closed' "
        "ORDER BY year DESC, number DESC LIMIT 1",
        (group_key,),
    ).fetchone()
    return row[0] if row else None
