"""Evaluate rules against events and carry out their actions.

Events (``event`` in templates):

* ``alert``: ``key`` (group key/fingerprint), ``labels``, ``annotations``, ``status``,
  ``alertname``, ``region``/``service`` (from labels), ``incident`` (the one the intake
  declared or updated), ``group_key``, ``fingerprint``. Only alerts that *started* firing
  (or stopped, for ``status: resolved``) in a post are events: a re-send is not.
* ``health``: ``key`` (``region`` or ``region/service``), ``region``, ``service``,
  ``state``, ``old``, ``reason``, ``level``. Read from the audit log
  (``health.state_changed``), so it works whichever process runs the monitor.
* ``deadline_missed``: ``key`` (``incident/deadline``), ``incident``, ``deadline``,
  ``category``, ``severity``, ``region``.

A firing is claimed in the store (``rule_firings``) under the rule's cool-down and
de-duplication key in the same transaction as its audit record (``rule.fired``, the
rule's name as the reason), the incident change and the notification. So a flapping
service fires a rule once per cool-down, even with two ``serve`` processes.

Runbooks start through :func:`opsconsole.runbooks.start_run` - the function the CLI's
``runbook run`` uses, which checks the access policy (``runbook.run``) - as the serve
process's OS account, with an unattended operator. A
rule that does not say ``safe: true`` starts its runbook with ``requires_approval``: the
run is created and stops at an approval gate before its first change, waiting for a
person (``runbook approve``, then ``runbook resume``).
"""

from __future__ import annotations

import fnmatch
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from opsconsole.audit import AuditLog
from opsconsole.errors import OpsError
from opsconsole.rules import state
from opsconsole.rules.model import Rule, RulesFile
from opsconsole.store import Location, immediate
from opsconsole.templating import render, render_obj
from opsconsole.timeutil import utcnow

if TYPE_CHECKING:
    import sqlite_utils

    from opsconsole.config import Config
    from opsconsole.incidents.intake import AlertPayload, IngestResult
    from opsconsole.runbooks import RunResult

__all__ = ["Firing", "ReasonAudit", "RuleEngine", "RuleEvent", "deadline_event", "health_event"]


@dataclass
class RuleEvent:
    kind: str
    key: str
    at: datetime
    fields: dict[str, Any] = field(default_factory=dict)

    def context(self) -> dict[str, Any]:
        return {
            "event": {"kind": self.kind, "key": self.key, "at": self.at.isoformat(), **self.fields}
        }


@dataclass
class Firing:
    rule: str
    key: str
    event: RuleEvent
    incident_id: str | None = None
    outbox_id: int | None = None
    runbook: str | None = None
    params: dict[str, Any] = field(default_factory=dict)
    safe: bool = False
    run: RunResult | None = None
    error: str | None = None


class ReasonAudit(AuditLog):
    """An audit log whose every record carries ``reason`` (the rule that acted)."""

    def __init__(self, base: AuditLog, reason: str, db: sqlite_utils.Database | None = None):
        super().__init__(
            db or base.db,
            actor=base.actor,
            interface=base.interface,
            key=base.key,
            on_behalf_of=base.on_behalf_of,
        )
        self.reason = reason

    def record(
        self,
        action: str,
        target: str = "",
        details: dict[str, Any] | None = None,
        outcome: str = "ok",
        **kw: Any,
    ) -> int:
        return super().record(
            action, target, {"reason": self.reason, **(details or {})}, outcome, **kw
        )


def health_event(row: dict[str, Any]) -> RuleEvent:
    """A rule event from a ``health.state_changed`` audit row."""
    d = row["details"]
    at = datetime.fromisoformat(d.get("at") or row["ts"])
    return RuleEvent(
        "health",
        row["target"],
        at,
        {
            "region": d.get("region"),
            "service": d.get("service"),
            "state": d.get("new"),
            "old": d.get("old"),
            "reason": d.get("reason"),
            "level": d.get("level"),
        },
    )


def deadline_event(row: dict[str, Any], incident: Any) -> RuleEvent:
    d = row["details"]
    return RuleEvent(
        "deadline_missed",
        f"{row['target']}/{d.get('deadline')}",
        datetime.fromisoformat(row["ts"]),
        {
            "incident": row["target"],
            "deadline": d.get("deadline"),
            "due": d.get("due"),
            "category": incident.category if incident else None,
            "severity": incident.severity if incident else None,
            "region": incident.regions[0] if incident and incident.regions else None,
        },
    )


class RuleEngine:
    """Matches events to rules; :meth:`fire` does the store-side actions in one
    transaction and returns what is left to do asynchronously (start a runbook)."""

    def __init__(
        self,
        db: sqlite_utils.Database,
        audit: AuditLog,
        config: Config,
        rules: RulesFile,
        *,
        db_path: Location | None = None,
    ) -> None:
        self.db = db
        self.audit = audit
        self.config = config
        self.rules = [r for r in rules.rules if r.enabled]
        self.db_path = db_path
        # (rule, key) -> (state, due time, event): health states waiting out for_seconds.
        self.pending: dict[tuple[str, str], tuple[str, datetime, RuleEvent]] = {}
        self.fired: list[Firing] = []
        self.suppressed = 0

    # -- matching ---------------------------------------------------------------------

    def on_alerts(self, payload: AlertPayload, result: IngestResult) -> list[Firing]:
        from opsconsole.incidents.intake import fingerprint

        out: list[Firing] = []
        for alert in payload.alerts:
            fp = fingerprint(alert)
            changed = fp in (result.started if alert.status == "firing" else result.stopped)
            if not changed:
                continue
            labels = {**payload.commonLabels, **alert.labels}
            event = RuleEvent(
                "alert",
                f"{payload.groupKey}/{fp}",
                alert.startsAt or utcnow(),
                {
                    "labels": labels,
                    "annotations": {**payload.commonAnnotations, **alert.annotations},
                    "status": alert.status,
                    "alertname": labels.get("alertname", ""),
                    "region": labels.get("region"),
                    "service": labels.get("service"),
                    "incident": result.incident_id,
                    "group_key": payload.groupKey,
                    "fingerprint": fp,
                },
            )
            for rule in self.rules:
                trig = rule.when.alert
                if trig and trig.status == alert.status and trig.matches(labels):
                    out.extend(self._fire_now(rule, event))
        return out

    def on_health(self, event: RuleEvent, *, seed: bool = False) -> list[Firing]:
        """Rules for one health change. ``seed``: the latest known state at start-up, which
        only (re)arms ``for_seconds`` waits - a restart must not fire rules again."""
        out: list[Firing] = []
        region, service = event.fields.get("region"), event.fields.get("service")
        for rule in self.rules:
            trig = rule.when.health
            if trig is None:
                continue
            if not fnmatch.fnmatchcase(region or "", trig.region):
                continue
            if (trig.service is None) != (service is None):
                continue
            if trig.service is not None and not fnmatch.fnmatchcase(service or "", trig.service):
                continue
            slot = (rule.name, event.key)
            if event.fields.get("state") != trig.state:
                self.pending.pop(slot, None)  # it left the state before for_seconds passed
                continue
            if trig.for_seconds > 0:
                due = event.at + timedelta(seconds=trig.for_seconds)
                if slot not in self.pending:
                    self.pending[slot] = (trig.state, due, event)
                continue
            if not seed:
                out.extend(self._fire_now(rule, event))
        return out

    def due(self, now: datetime | None = None) -> list[Firing]:
        """Fire health rules whose state has lasted ``for_seconds``."""
        now = now or utcnow()
        out: list[Firing] = []
        for slot, (_, due, event) in list(self.pending.items()):
            if due <= now:
                del self.pending[slot]
                rule = next((r for r in self.rules if r.name == slot[0]), None)
                if rule is not None:
                    out.extend(self._fire_now(rule, event))
        return out

    def on_deadline(self, event: RuleEvent) -> list[Firing]:
        out: list[Firing] = []
        for rule in self.rules:
            trig = rule.when.deadline_missed
            if trig is None:
                continue
            if fnmatch.fnmatchcase(event.fields.get("deadline") or "", trig.deadline) and (
                fnmatch.fnmatchcase(event.fields.get("category") or "", trig.category)
            ):
                out.extend(self._fire_now(rule, event))
        return out

    # -- firing -----------------------------------------------------------------------

    def _fire_now(self, rule: Rule, event: RuleEvent) -> list[Firing]:
        try:
            firing = self.fire(rule, event)
        except OpsError as exc:
            self.audit.record(
                "rule.failed",
                rule.name,
                {
                    "reason": f"rule {rule.name}",
                    "event": event.kind,
                    "key": event.key,
                    "error": str(exc),
                },
                "failed",
            )
            return []
        return [firing] if firing is not None else []

    def fire(self, rule: Rule, event: RuleEvent, now: datetime | None = None) -> Firing | None:
        """Claim the firing (cool-down, de-dup key) and do its store-side actions in one
        transaction. None when the cool-down suppresses it."""
        now = now or utcnow()
        ctx = event.context()
        key = render(rule.dedup_key, ctx)
        audit = ReasonAudit(self.audit, f"rule {rule.name}")
        firing = Firing(rule.name, key, event)
        with immediate(self.db):
            if not state.claim_firing(self.db, rule.name, key, now, rule.cooldown_seconds):
                self.suppressed += 1
                return None
            audit.record(
                "rule.fired",
                rule.name,
                {"trigger": event.kind, "key": key, "event_key": event.key},
            )
            act = rule.then
            if act.incident is not None:
                firing.incident_id = self._incident(rule, event, key, ctx, audit)
            elif event.fields.get("incident"):
                firing.incident_id = event.fields["incident"]
            if act.notify is not None:
                from opsconsole.outbox import enqueue

                title = render(act.notify.title, ctx) if act.notify.title else f"rule {rule.name}"
                firing.outbox_id = enqueue(
                    self.db,
                    "rule.notify",
                    title,
                    render(act.notify.text, ctx),
                    subject=firing.incident_id or rule.name,
                    data={
                        "rule": rule.name,
                        "key": key,
                        "incident": firing.incident_id,
                        **{k: v for k, v in event.fields.items() if isinstance(v, str)},
                    },
                )
            if act.runbook is not None:
                firing.runbook = act.runbook.name
                firing.params = render_obj(act.runbook.params, ctx)
                firing.safe = act.runbook.safe
        self.fired.append(firing)
        return firing

    def _incident(
        self, rule: Rule, event: RuleEvent, key: str, ctx: dict[str, Any], audit: AuditLog
    ) -> str:
        from opsconsole.incidents import IncidentService

        spec = rule.then.incident
        assert spec is not None
        svc = IncidentService(self.db, audit, self.config)
        note = (
            render(spec.note, ctx) if spec.note else f"rule {rule.name}: {event.kind} {event.key}"
        )
        existing = event.fields.get("incident")
        if not existing:
            row = self.db.execute(
                "SELECT id FROM incidents WHERE source_key = ? AND status != 'closed' "
                "ORDER BY year DESC, number DESC LIMIT 1",
                (f"rule:{rule.name}:{key}",),
            ).fetchone()
            existing = row[0] if row else None
        if existing:
            svc.note(existing, note)
            return str(existing)
        inv = self.config.inventory
        region = event.fields.get("region")
        service = event.fields.get("service")
        regions = [region] if region in inv.regions else []
        services = (
            [service]
            if service and any(service in r.services for r in inv.regions.values())
            else []
        )
        title = (
            render(spec.title, ctx)
            if spec.title
            else f"{event.key} {event.fields.get('state') or event.kind}"
        )
        inc = svc.declare(
            title,
            severity=render(spec.severity, ctx),
            category=render(spec.category, ctx),
            regions=regions,
            services=services,
            source_key=f"rule:{rule.name}:{key}",
        )
        svc.note(inc.id, note)
        return inc.id

    async def start_runbook(self, firing: Firing) -> RunResult | None:
        """Start the firing's runbook through the engine's ``start_run`` (waiting for
        approval unless the rule marked it safe); the result is also kept on ``firing``."""
        if firing.runbook is None:
            return None
        from opsconsole.store import open_db

        # A connection of its own: the run writes while serve keeps answering requests.
        own = self.db_path is not None
        db = open_db(self.db_path) if own else self.db
        try:
            return await self._start(firing, db)
        finally:
            if own:
                db.close()

    async def _start(self, firing: Firing, db: sqlite_utils.Database) -> RunResult | None:
        from opsconsole.events import EventBus
        from opsconsole.operator import NeedsAPerson, UnattendedOperator
        from opsconsole.runbooks import RunEnv, find_runbook, load_runbook, start_run

        assert firing.runbook is not None
        audit = ReasonAudit(self.audit, f"rule {firing.rule}", db)
        try:
            rb = load_runbook(find_runbook(firing.runbook, self.config))
            if not firing.safe:
                rb = rb.model_copy(update={"requires_approval": True})
            env = RunEnv(db=db, audit=audit, config=self.config, bus=EventBus())
            # start_run checks the access policy (runbook.run in the run's environments)
            # for the serve process's own account, as for the CLI's `runbook run`.
            result = await start_run(
                rb,
                firing.params,
                env=env,
                operator=UnattendedOperator(f"rule {firing.rule}"),
                incident_id=firing.incident_id,
            )
        except (OpsError, NeedsAPerson) as exc:
            firing.error = str(exc)
            audit.record(
                "rule.failed", firing.rule, {"runbook": firing.runbook, "error": str(exc)}, "failed"
            )
            return None
        firing.run = result
        if firing.incident_id:
            from opsconsole.incidents import IncidentService

            IncidentService(db, audit, self.config).link_run(
                firing.incident_id, None, result.run_id, firing.runbook, result.status, result.error
            )
        return result
