"""``GET /metrics``: the console's own state in the Prometheus text format.

Two kinds of series:

* read from the store at scrape time (a custom ``prometheus_client`` collector with a
  connection of its own): runs by runbook and outcome, steps by outcome, approvals
  waiting, open incidents by severity and category, seconds to each open deadline,
  drills by outcome, programme kept per plan, audit chain head, outbox depth and
  failures, and each probe target's latest up/down sample (whichever process probes);
* observed in this process (when ``serve --monitor`` runs the monitor): probe latency
  histograms, sweep duration, health state per region/service; and the HTTP side
  (Alertmanager posts, refusals).
"""

from __future__ import annotations

import threading
from datetime import datetime
from typing import TYPE_CHECKING, Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from opsconsole.timeutil import utcnow

if TYPE_CHECKING:
    from collections.abc import Iterator

    import sqlite_utils

    from opsconsole.config import Config
    from opsconsole.events import Event

__all__ = ["Metrics"]

LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10)
STATES = ("ok", "degraded", "down", "unknown")


class _StoreCollector(Collector):
    def __init__(self, metrics: Metrics) -> None:
        self.m = metrics

    def collect(self) -> Iterator[GaugeMetricFamily]:
        with self.m.lock:
            yield from self.m.store_families()


class Metrics:
    """The registry served at ``/metrics`` and the in-process instruments."""

    def __init__(self, db: sqlite_utils.Database, config: Config) -> None:
        self.db = db
        self.config = config
        self.lock = threading.Lock()
        from prometheus_client import disable_created_metrics

        disable_created_metrics()
        self.registry = CollectorRegistry()
        r = self.registry
        self.probe_latency = Histogram(
            "opsconsole_probe_latency_seconds",
            "Probe latency of successful probes (serve --monitor).",
            ["region", "service", "endpoint"],
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.probes = Counter(
            "opsconsole_probes",
            "Probes run by this process, by result (serve --monitor).",
            ["region", "service", "endpoint", "result"],
            registry=r,
        )
        self.sweep = Histogram(
            "opsconsole_sweep_duration_seconds",
            "Duration of one monitor sweep (serve --monitor).",
            buckets=(0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60),
            registry=r,
        )
        self.health = Gauge(
            "opsconsole_health_state",
            "1 for the current state of each region/service (serve --monitor).",
            ["region", "service", "state"],
            registry=r,
        )
        self.webhooks = Counter(
            "opsconsole_alertmanager_webhooks",
            "Alertmanager posts received, by what they did.",
            ["result"],
            registry=r,
        )
        self.refusals = Counter(
            "opsconsole_http_refusals", "Requests refused, by reason.", ["reason"], registry=r
        )
        self.rule_firings = Counter(
            "opsconsole_rule_firings", "Rule firings by rule.", ["rule"], registry=r
        )
        self.verify_ok = Gauge(
            "opsconsole_audit_verify_ok",
            "1 if the last audit chain verification passed, 0 if it found a problem.",
            registry=r,
        )
        self.verify_time = Gauge(
            "opsconsole_audit_verify_timestamp_seconds",
            "When the audit chain was last verified (Unix time).",
            registry=r,
        )
        r.register(_StoreCollector(self))

    # -- in-process events -----------------------------------------------------------

    def on_event(self, event: Event) -> None:
        """Bus subscriber for the in-process monitor's events."""
        from opsconsole.health.model import ProbeResult, SweepCompleted

        if isinstance(event, ProbeResult):
            labels = (event.region, event.service, event.endpoint)
            self.probes.labels(*labels, "ok" if event.ok else "fail").inc()
            if event.ok and event.latency_ms is not None:
                self.probe_latency.labels(*labels).observe(event.latency_ms / 1000)
        elif isinstance(event, SweepCompleted):
            snap = event.snapshot
            if snap.sweep_seconds is not None:
                self.sweep.observe(snap.sweep_seconds)
            for svc in snap.services():
                for st in STATES:
                    self.health.labels(svc.region, svc.service, st).set(1 if svc.state == st else 0)

    def verified(self, ok: bool) -> None:
        self.verify_ok.set(1 if ok else 0)
        self.verify_time.set(utcnow().timestamp())

    # -- from the store --------------------------------------------------------------

    def _rows(self, sql: str, params: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
        return list(self.db.execute(sql, params).fetchall())

    def store_families(self) -> Iterator[GaugeMetricFamily]:
        yield from self._runs()
        yield from self._incidents()
        yield from self._drills()
        yield from self._audit_and_outbox()
        yield from self._probe_up()

    def _runs(self) -> Iterator[GaugeMetricFamily]:
        runs = GaugeMetricFamily(
            "opsconsole_runbook_runs",
            "Runbook runs in the store by runbook and status.",
            labels=["runbook", "status"],
        )
        for rb, status, n in self._rows(
            "SELECT runbook, status, COUNT(*) FROM runs GROUP BY runbook, status"
        ):
            runs.add_metric([rb, status], n)
        yield runs
        steps = GaugeMetricFamily(
            "opsconsole_runbook_steps", "Runbook steps in the store by status.", labels=["status"]
        )
        for status, n in self._rows("SELECT status, COUNT(*) FROM run_steps GROUP BY status"):
            steps.add_metric([status], n)
        yield steps
        waiting = self._rows("SELECT COUNT(*) FROM run_approvals WHERE decision = 'pending'")
        yield GaugeMetricFamily(
            "opsconsole_approvals_waiting",
            "Approval requests waiting for a person.",
            value=waiting[0][0],
        )

    def _incidents(self) -> Iterator[GaugeMetricFamily]:
        open_ = GaugeMetricFamily(
            "opsconsole_incidents_open",
            "Open incidents by severity and category.",
            labels=["severity", "category"],
        )
        for sev, cat, n in self._rows(
            "SELECT severity, category, COUNT(*) FROM incidents "
            "WHERE status NOT IN ('resolved', 'closed') GROUP BY severity, category"
        ):
            open_.add_metric([sev, cat], n)
        yield open_
        deadlines = GaugeMetricFamily(
            "opsconsole_deadline_seconds_remaining",
            "Seconds to each open incident deadline (negative: overdue).",
            labels=["incident", "deadline", "jurisdiction"],
        )
        from opsconsole.audit import AuditLog
        from opsconsole.incidents import IncidentService

        svc = IncidentService(self.db, AuditLog(self.db, actor="metrics"), self.config)
        now = utcnow()
        for inc in svc.list_incidents(open_only=True):
            for s in svc.deadlines(inc, now):
                if s.due is not None and s.state not in ("met", "waived", "missed"):
                    deadlines.add_metric(
                        [inc.id, s.deadline.id, s.deadline.jurisdiction],
                        (s.due - now).total_seconds(),
                    )
        yield deadlines

    def _drills(self) -> Iterator[GaugeMetricFamily]:
        drills = GaugeMetricFamily(
            "opsconsole_drill_runs", "Drill runs by drill and status.", labels=["drill", "status"]
        )
        for drill, status, n in self._rows(
            "SELECT drill, status, COUNT(*) FROM drill_runs GROUP BY drill, status"
        ):
            drills.add_metric([drill, status], n)
        yield drills
        kept = GaugeMetricFamily(
            "opsconsole_drill_programme_kept",
            "1 if the plan's drill programme is kept this year so far, else 0.",
            labels=["plan"],
        )
        try:
            from opsconsole.drills.loader import drills_path, load_drills
            from opsconsole.drills.report import build_report

            if drills_path(self.config).is_file():
                for rep in build_report(self.db, load_drills(self.config).file):
                    kept.add_metric([rep.plan], 1 if rep.kept else 0)
        except Exception:  # a broken drills.yaml must not break the scrape
            pass
        yield kept

    def _audit_and_outbox(self) -> Iterator[GaugeMetricFamily]:
        head = self._rows("SELECT MAX(seq) FROM audit_events")[0][0] or 0
        yield GaugeMetricFamily(
            "opsconsole_audit_head_seq", "Sequence number of the audit chain's head.", value=head
        )
        from opsconsole import outbox

        counts = outbox.counts(self.db)
        depth = GaugeMetricFamily(
            "opsconsole_outbox_messages", "Outbox messages by status.", labels=["status"]
        )
        for status in ("pending", "sent", "dead", "skipped"):
            depth.add_metric([status], counts[status])
        yield depth
        yield GaugeMetricFamily(
            "opsconsole_outbox_failing",
            "Pending outbox messages that failed at least one try.",
            value=counts["failing"],
        )

    def _probe_up(self) -> Iterator[GaugeMetricFamily]:
        up = GaugeMetricFamily(
            "opsconsole_probe_up",
            "1 if the target's latest stored probe succeeded.",
            labels=["region", "service", "endpoint"],
        )
        age = GaugeMetricFamily(
            "opsconsole_probe_age_seconds",
            "Age of the target's latest stored probe.",
            labels=["region", "service", "endpoint"],
        )
        now = utcnow()
        for region, service, endpoint, ok, ts in self._rows(
            "SELECT region, service, endpoint, ok, ts FROM probe_samples WHERE id IN "
            "(SELECT MAX(id) FROM probe_samples GROUP BY target)"
        ):
            up.add_metric([region, service, endpoint], 1 if ok else 0)
            age.add_metric(
                [region, service, endpoint], (now - datetime.fromisoformat(ts)).total_seconds()
            )
        yield up
        yield age
