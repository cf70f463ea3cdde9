"""``config/rules.yaml``: when an alert, a health change or a missed deadline happens,
declare or update an incident, start a runbook, and/or notify.

Example::

    rules:
      - name: payments-down-failover
        when:
          health: {region: sa-east-1, service: payments, state: down, for_seconds: 60}
        then:
          incident: {severity: SEV1, category: system-failure}
          runbook: {name: regional-failover, params: {region: "{{ event.region }}"}}
          notify: {text: "{{ event.key }} is down: failover waiting for approval"}
        cooldown_seconds: 900
        dedup_key: "{{ event.region }}"

A runbook started by a rule waits for a person's approval before its first change unless
the rule says ``safe: true``. Text values are templates (the sandboxed Jinja2 of
runbooks) over ``event`` (see :mod:`opsconsole.rules.engine` for its fields).
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from opsconsole.incidents.model import SEVERITIES
from opsconsole.templating import syntax_error

if TYPE_CHECKING:
    from opsconsole.config import Config

__all__ = ["FILENAME", "Rule", "RulesFile", "load_rules", "rules_path"]

FILENAME = "rules.yaml"
Name = Annotated[str, Field(pattern=r"^[a-z0-9][a-z0-9_.-]*$", max_length=64)]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


def _template(value: str) -> str:
    problem = syntax_error(value)
    if problem:
        raise ValueError(problem)
    return value


Template = Annotated[str, Field(min_length=1)]


class AlertTrigger(_Strict):
    """An Alertmanager alert whose labels match (every firing alert is checked)."""

    labels: dict[str, str] = Field(default_factory=dict, description="label -> exact value")
    labels_regex: dict[str, str] = Field(
        default_factory=dict, description="label -> regular expression (full match)"
    )
    status: Literal["firing", "resolved"] = "firing"

    @field_validator("labels_regex")
    @classmethod
    def _compiles(cls, value: dict[str, str]) -> dict[str, str]:
        for label, pattern in value.items():
            try:
                re.compile(pattern)
            except re.error as exc:
                raise ValueError(f"{label}: invalid regular expression: {exc}") from None
        return value

    def matches(self, labels: dict[str, str]) -> bool:
        if any(labels.get(k) != v for k, v in self.labels.items()):
            return False
        return all(
            re.fullmatch(p, labels.get(k, "")) is not None for k, p in self.labels_regex.items()
        )


class HealthTrigger(_Strict):
    """A region or service entering ``state`` (and staying there ``for_seconds``)."""

    region: str = Field("*", description="region id or fnmatch pattern")
    service: str | None = Field(
        None, description="service name or pattern; omit for region-level changes"
    )
    state: Literal["down", "degraded", "ok", "unknown"] = "down"
    for_seconds: float = Field(0, ge=0, description="the state must last this long")


class DeadlineTrigger(_Strict):
    """A regulatory or playbook deadline recorded as missed."""

    deadline: str = Field("*", description="deadline id or fnmatch pattern")
    category: str = Field("*", description="incident category or pattern")


class When(_Strict):
    alert: AlertTrigger | None = None
    health: HealthTrigger | None = None
    deadline_missed: DeadlineTrigger | None = None

    @model_validator(mode="after")
    def _one(self) -> When:
        given = [k for k in ("alert", "health", "deadline_missed") if getattr(self, k)]
        if len(given) != 1:
            raise ValueError(
                "a rule needs exactly one trigger: alert, health or deadline_missed"
                + (f" (has {', '.join(given)})" if given else "")
            )
        return self

    @property
    def kind(self) -> str:
        return "alert" if self.alert else "health" if self.health else "deadline_missed"


class IncidentAction(_Strict):
    """Declare an incident, or add a note to the one this rule declared for the same key
    (or, for alerts and missed deadlines, to the event's own incident)."""

    severity: str = Field("SEV2", description=f"one of {', '.join(SEVERITIES)}, or a template")
    category: str = "system-failure"
    title: Template | None = None
    note: Template | None = None

    _t = field_validator("title", "note", "severity", "category")(
        lambda v: _template(v) if isinstance(v, str) else v
    )


class RunbookAction(_Strict):
    name: str
    params: dict[str, Any] = Field(default_factory=dict, description="values may be templates")
    safe: bool = Field(
        False,
        description="start without waiting for a person's approval (only for runbooks "
        "that are safe to run unattended)",
    )


class NotifyAction(_Strict):
    text: Template
    title: Template | None = None

    _t = field_validator("text", "title")(lambda v: _template(v) if isinstance(v, str) else v)


class Then(_Strict):
    incident: IncidentAction | None = None
    runbook: RunbookAction | None = None
    notify: NotifyAction | None = None

    @model_validator(mode="after")
    def _some(self) -> Then:
        if not (self.incident or self.runbook or self.notify):
            raise ValueError("a rule needs at least one action: incident, runbook or notify")
        return self


class Rule(_Strict):
    name: Name
    description: str = ""
    enabled: bool = True
    when: When
    then: Then
    cooldown_seconds: float = Field(
        600, ge=0, description="after firing, the same rule and key stay quiet this long"
    )
    dedup_key: Template = Field(
        "{{ event.key }}",
        description="template: firings with the same key share one cool-down",
    )

    _t = field_validator("dedup_key")(_template)


class RulesFile(_Strict):
    rules: list[Rule] = Field(default_factory=list)

    @model_validator(mode="after")
    def _unique(self) -> RulesFile:
        seen: set[str] = set()
        for r in self.rules:
            if r.name in seen:
                raise ValueError(f"two rules are named {r.name!r}; names must be unique")
            seen.add(r.name)
        return self


def rules_path(config: Config) -> Path:
    return config.directory / FILENAME


def load_rules(config: Config | None, path: Path | None = None) -> RulesFile:
    """The rules file (none: no rules); problems name file:line:col (exit 3). With a
    config, runbook names must resolve and plain region names must be in the inventory."""
    from opsconsole.errors import ConfigError, NotFoundError, SourceError, SourceLocation
    from opsconsole.yamlsource import format_field, load_yaml, validate

    if path is None:
        if config is None:
            return RulesFile()
        path = rules_path(config)
        if not path.is_file():
            return RulesFile()
    try:
        data, marks = load_yaml(path)
        rules = validate(RulesFile, data if data is not None else {}, marks)
    except ConfigError:
        raise
    except SourceError as exc:
        raise ConfigError(exc.problems) from None
    if config is None:
        return rules
    from opsconsole.incidents.model import SEVERITIES
    from opsconsole.incidents.playbook import find_playbook
    from opsconsole.runbooks.loader import find_runbook, load_runbook

    problems: list[tuple[SourceLocation, str, str]] = []

    def add(where: tuple[str | int, ...], msg: str) -> None:
        problems.append((marks.locate(where), format_field(where), msg))

    for i, rule in enumerate(rules.rules):
        # What the action's command would refuse when the rule fires is refused now.
        incident = rule.then.incident
        if (
            incident is not None
            and "{" not in incident.severity
            and (incident.severity not in SEVERITIES)
        ):
            add(
                ("rules", i, "then", "incident", "severity"),
                f"{incident.severity!r} is not a severity; use {', '.join(SEVERITIES)}",
            )
        if incident is not None and "{" not in incident.category:
            try:
                find_playbook(incident.category, config)
            except NotFoundError as exc:
                add(("rules", i, "then", "incident", "category"), str(exc))
        if rule.then.runbook is not None:
            action = rule.then.runbook
            try:
                rb = load_runbook(find_runbook(action.name, config), config=config)
            except NotFoundError as exc:
                add(("rules", i, "then", "runbook", "name"), str(exc))
            except (ConfigError, SourceError):
                pass  # the runbook's own problems are `runbook validate`'s to report
            else:
                unknown = sorted(set(action.params) - set(rb.params))
                missing = [
                    n
                    for n, p in rb.params.items()
                    if p.required and p.default is None and n not in action.params
                ]
                if unknown or missing:
                    add(
                        ("rules", i, "then", "runbook", "params"),
                        (f"unknown parameter(s) {', '.join(unknown)}; " if unknown else "")
                        + (f"missing required {', '.join(missing)}; " if missing else "")
                        + f"runbook {rb.name} takes {', '.join(rb.params) or 'none'}",
                    )
        health = rule.when.health
        if (
            health is not None
            and not any(c in health.region for c in "*?[")
            and (health.region not in config.inventory.regions)
        ):
            where = ("rules", i, "when", "health", "region")
            problems.append(
                (
                    marks.locate(where),
                    format_field(where),
                    f"unknown region {health.region!r}; inventory has "
                    f"{', '.join(config.inventory.regions)}",
                )
            )
    if problems:
        problems.sort(key=lambda p: (p[0].line or 0, p[0].column or 0))
        raise ConfigError(problems)
    return rules
