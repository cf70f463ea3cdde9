"""``<config dir>/incidents.yaml``: alert-intake mapping and calendar overrides (optional).

Example (also shipped as ``config/incidents.yaml``)::

    intake:
      severity: {label: severity, map: {critical: SEV1, page: SEV2, warning: SEV3}, default: SEV3}
      category: {label: category, map: {security: network-security}, default: system-failure}
      region_labels: [region]
      service_labels: [service, job]
    calendars:          # replace a playbook's calendar of the same name (e.g. next year's holidays)
      BR: {timezone: America/Sao_Paulo, holidays: [2027-01-01]}
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from pydantic import BaseModel, ConfigDict, Field, field_validator

from opsconsole.incidents.model import SEVERITIES
from opsconsole.incidents.playbook import Calendar
from opsconsole.yamlsource import load_model

if TYPE_CHECKING:
    from opsconsole.config import Config

__all__ = ["FILENAME", "IncidentSettings", "IntakeMapping", "LabelMap", "load_incident_settings"]

FILENAME = "incidents.yaml"


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class LabelMap(_Strict):
    """Map one alert label's value to ours; the first label found wins."""

    label: str
    labels: list[str] = Field(default_factory=list, description="fallback labels, in order")
    map: dict[str, str] = Field(default_factory=dict)
    default: str

    def pick(self, labels: dict[str, str]) -> str:
        for name in [self.label, *self.labels]:
            value = labels.get(name)
            if value is not None:
                return self.map.get(value, self.map.get(value.lower(), self.default))
        return self.default


def _default_severity() -> LabelMap:
    return LabelMap(
        label="severity",
        map={
            "critical": "SEV1",
            "page": "SEV2",
            "high": "SEV2",
            "error": "SEV2",
            "warning": "SEV3",
            "info": "SEV4",
            "none": "SEV4",
        },
        default="SEV3",
    )


def _default_category() -> LabelMap:
    return LabelMap(
        label="category",
        map={
            "security": "network-security",
            "breach": "data-breach",
            "availability": "system-failure",
            "disaster": "natural-disaster",
        },
        default="system-failure",
    )


class IntakeMapping(_Strict):
    severity: LabelMap = Field(default_factory=_default_severity)
    category: LabelMap = Field(default_factory=_default_category)
    region_labels: list[str] = Field(default_factory=lambda: ["region"])
    service_labels: list[str] = Field(default_factory=lambda: ["service"])
    title_annotation: str = Field("summary", description="annotation used as the title")
    resolved_note: bool = Field(True, description="a resolved payload adds a note")

    @field_validator("severity")
    @classmethod
    def _severities(cls, value: LabelMap) -> LabelMap:
        for sev in [*value.map.values(), value.default]:
            if sev not in SEVERITIES:
                raise ValueError(f"unknown severity {sev!r}; use {', '.join(SEVERITIES)}")
        return value


class IncidentSettings(_Strict):
    intake: IntakeMapping = Field(default_factory=IntakeMapping)
    calendars: dict[str, Calendar] = Field(
        default_factory=dict, description="override the playbooks' calendars by name"
    )


def load_incident_settings(config: Config | None) -> IncidentSettings:
    """The config directory's ``incidents.yaml``, or the defaults when there is none."""
    if config is None:
        return IncidentSettings()
    path = config.directory / FILENAME
    if not path.is_file():
        return IncidentSettings()
    return load_model(IncidentSettings, path)
