"""The incident service: every change an interface can make to an incident.

The CLI and the TUI both use :class:`IncidentService` (the same functions behind both interfaces).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

from opsconsole.errors import OpsError
from opsconsole.incidents import store
from opsconsole.incidents.base import IncidentView
from opsconsole.incidents.changes import IncidentChanges
from opsconsole.incidents.model import (
    SEVERITIES,
    Incident,
)
from opsconsole.incidents.playbook import find_playbook, load_playbook
from opsconsole.timeutil import isoformat

if TYPE_CHECKING:
    from opsconsole.incidents.intake import IngestResult

__all__ = ["IncidentService", "IncidentView"]


class IncidentService(IncidentChanges):
    """Declare, change and report incidents (all the interfaces call this)."""

    def declare(
        self,
        title: str,
        *,
        severity: str,
        category: str,
        regions: Sequence[str] = (),
        services: Sequence[str] = (),
        detected_at: datetime | None = None,
        commander: str | None = None,
        source_key: str | None = None,
        playbook_path: Path | None = None,
    ) -> Incident:
        """Open an incident with the category's playbook; the declarer commands by default."""
        severity = severity.upper()
        if severity not in SEVERITIES:
            raise OpsError(
                f"unknown severity {severity!r}; use {', '.join(SEVERITIES)} "
                "(if unsure, pick the higher)"
            )
        if not title.strip():
            raise OpsError("an incident needs a title")
        now = self.clock()
        detected = detected_at or now
        if detected > now + timedelta(minutes=1):
            raise OpsError(f"detected-at {isoformat(detected)} is in the future")
        region_tz = self._check_scope(regions, services)
        from opsconsole.access import authorize

        authorize(self.audit, "incident.declare", target=title.strip())
        if commander is not None and commander != self.actor:
            from opsconsole.identity import account_name

            commander = account_name(commander, self.db)
        book = load_playbook(playbook_path or find_playbook(category, self.config))
        if self.settings.calendars:
            book = book.model_copy(
                update={"calendars": {**book.calendars, **self.settings.calendars}}
            )
        with self.transaction():
            incident_id, number = store.next_id(self.db, now.year)
            self.db.execute(
                "INSERT INTO incidents (id, year, number, title, severity, category, status, "
                "regions, services, region_tz, detected_at, declared_at, declared_by, playbook, "
                "source_key) VALUES (?, ?, ?, ?, ?, ?, 'declared', ?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    incident_id,
                    now.year,
                    number,
                    title.strip(),
                    severity,
                    category,
                    json.dumps(list(regions)),
                    json.dumps(list(services)),
                    json.dumps(region_tz),
                    isoformat(detected),
                    isoformat(now),
                    self.actor,
                    json.dumps(book.model_dump(mode="json")),
                    source_key,
                ),
            )
            for pos, (phase, t) in enumerate(book.tasks()):
                self.db.execute(
                    "INSERT INTO incident_tasks (incident_id, task_id, position, phase, title, "
                    "owner_role, instructions, requires, runbook, runbook_params) "
                    "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    (
                        incident_id,
                        t.id,
                        pos,
                        phase,
                        t.title,
                        t.owner,
                        t.instructions,
                        json.dumps(t.requires),
                        t.runbook.name if t.runbook else None,
                        json.dumps(t.runbook.params if t.runbook else {}),
                    ),
                )
            lead = commander or self.actor
            self.db.execute(
                "INSERT INTO incident_roles VALUES (?, 'commander', ?, ?)",
                (incident_id, lead, isoformat(now)),
            )
            inc = store.load_incident(self.db, incident_id)
            where = f" in {', '.join(regions)}" if regions else ""
            self._log(inc, "detected", f"detected{where}", ts=detected, audit=False)
            self._log(
                inc,
                "declare",
                f"declared {severity} {category}: {title.strip()}{where}; "
                f"playbook {book.name}; commander {lead}",
                details={
                    "severity": severity,
                    "category": category,
                    "regions": list(regions),
                    "services": list(services),
                    "detected_at": isoformat(detected),
                    "playbook": book.name,
                    "source": source_key,
                },
            )
            self._sweep(inc)
        return self.get(incident_id)

    def _check_scope(self, regions: Sequence[str], services: Sequence[str]) -> dict[str, str]:
        if self.config is None:
            return {}
        inv = self.config.inventory
        unknown = [r for r in regions if r not in inv.regions]
        if unknown:
            raise OpsError(
                f"unknown region {', '.join(unknown)}; inventory has {', '.join(inv.regions)}"
            )
        known_services = {s for r in inv.regions.values() for s in r.services}
        bad = [s for s in services if s not in known_services]
        if bad:
            raise OpsError(
                f"unknown service {', '.join(bad)}; inventory has "
                f"{', '.join(sorted(known_services))}"
            )
        return {r: inv.regions[r].timezone for r in regions}

    def report(self, incident_id: str) -> str:
        """The Markdown post-incident report (records passed deadlines first)."""
        from opsconsole.incidents.report import render_report

        v = self.view(incident_id)
        return render_report(v, self.timeline(incident_id))

    def ingest(self, payload: Any) -> IngestResult:
        """Declare, add to, or note on an incident for one Alertmanager webhook payload."""
        from opsconsole.incidents.intake import ingest

        return ingest(self, payload)
