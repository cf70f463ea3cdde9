"""Rolling statistics and the hysteresis state machine of one target.

States and transitions (``down_after`` = N, ``recover_after`` = M):

* a failed probe makes an ``ok`` target ``degraded`` at once (a partial failure), and
  ``down`` after N consecutive failures;
* a slow success makes it ``degraded`` (but never takes it out of ``down``);
* from ``degraded`` or ``down`` it returns to ``ok`` only after M consecutive good (not
  slow, successful) probes; from ``down``, M consecutive successes that are slow land
  in ``degraded``.

So one blip never takes a target down, and one good answer never hides an outage.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass
from datetime import datetime

from opsconsole.health.model import HealthState, Outcome, Target, TargetStatus

__all__ = ["Tracker", "percentile"]


def percentile(sorted_values: list[float], pct: float) -> float | None:
    """Nearest-rank percentile of an already sorted list."""
    if not sorted_values:
        return None
    rank = max(1, -(-len(sorted_values) * pct // 100))  # ceil
    return sorted_values[int(rank) - 1]


@dataclass
class _Sample:
    at: datetime
    ok: bool
    slow: bool
    latency_ms: float | None
    error: str | None


class Tracker:
    """Window and state of one target."""

    def __init__(self, target: Target, *, window: int, down_after: int, recover_after: int) -> None:
        self.target = target
        self.samples: deque[_Sample] = deque(maxlen=window)
        self.down_after = down_after
        self.recover_after = recover_after
        self.state: HealthState = "unknown"
        self.since: datetime | None = None
        self.fails = 0  # consecutive failures
        self.successes = 0  # consecutive successes (slow or not)
        self.good = 0  # consecutive successes that were not slow
        self.last_error: str | None = None
        self.last_phases: dict[str, float | None] | None = None
        self.reason: str | None = None

    def add(self, outcome: Outcome, at: datetime) -> tuple[HealthState, HealthState] | None:
        """Record one outcome; return ``(old, new)`` if the state changed."""
        self.samples.append(
            _Sample(at, outcome.ok, outcome.slow, outcome.latency_ms, outcome.error)
        )
        if outcome.phases is not None:
            self.last_phases = outcome.phases
        old = self.state
        if not outcome.ok:
            self.fails += 1
            self.successes = self.good = 0
            self.last_error = outcome.error
            self.reason = outcome.error
            if self.fails >= self.down_after:
                new: HealthState = "down"
            elif old == "down":
                new = "down"
            else:
                new = "degraded"
        else:
            self.fails = 0
            self.successes += 1
            self.good = 0 if outcome.slow else self.good + 1
            if old == "down":
                if self.successes >= self.recover_after:
                    new = "degraded" if outcome.slow else "ok"
                else:
                    new = "down"
            elif outcome.slow:
                new = "degraded"
                self.reason = (
                    f"slow: {outcome.latency_ms:.0f} ms > {self.target.latency_threshold_ms:g} ms"
                )
            elif old in ("unknown", "ok") or self.good >= self.recover_after:
                new = "ok"
            else:
                new = old
        if new != old:
            self.state = new
            self.since = at
            if new == "ok":
                self.reason = None
            return old, new
        return None

    def status(self) -> TargetStatus:
        t = self.target
        n = len(self.samples)
        lat = sorted(s.latency_ms for s in self.samples if s.ok and s.latency_ms is not None)
        fails = sum(1 for s in self.samples if not s.ok)
        last = self.samples[-1] if n else None
        return TargetStatus(
            id=t.id,
            region=t.region,
            service=t.service,
            endpoint=t.endpoint,
            kind=t.kind,
            state=self.state,
            since=self.since,
            samples=n,
            p50=percentile(lat, 50),
            p95=percentile(lat, 95),
            p99=percentile(lat, 99),
            availability=round(100 * (n - fails) / n, 2) if n else None,
            error_rate=round(100 * fails / n, 2) if n else None,
            last_error=self.last_error,
            last_latency_ms=last.latency_ms if last else None,
            last_checked=last.at if last else None,
            phases=self.last_phases,
            history=tuple(s.latency_ms if s.ok else None for s in self.samples),
        )
