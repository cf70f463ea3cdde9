"""Rolling statistics and the state machine of one target: hysteresis and flap detection.

States and transitions (``down_after`` = N, ``recover_after`` = M):

* a failed probe makes an ``ok`` target ``degraded`` at once (a partial failure), and
  ``down`` after N consecutive failures;
* a slow success makes it ``degraded`` (but never takes it out of ``down``);
* from ``degraded`` or ``down`` it returns to ``ok`` only after M consecutive good (not
  slow, successful) probes; from ``down``, M consecutive successes that are slow land
  in ``degraded``.

So one blip never takes a target down, and one good answer never hides an outage.

Flapping (``probe.flapping``): a target whose probe result keeps changing (success <->
failure between consecutive samples) at least ``threshold`` times within the last
``window`` samples is ``flapping``. It stays ``flapping`` until it settles: fewer than
``threshold / 2`` changes left in the window (the low threshold keeps it from toggling
in and out). Meanwhile the hysteresis state above keeps running underneath
(``TargetStatus.settled``) and takes over again when the flapping ends.

Percentiles count a timed-out probe as its timeout (see :class:`TargetHistory`).
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable
from datetime import datetime

from opsconsole.health.model import (
    HealthState,
    Outcome,
    Sample,
    Target,
    TargetHistory,
    TargetStatus,
)

__all__ = ["Tracker", "latencies", "percentile", "summarize"]


def percentile(sorted_values: list[float], pct: float) -> float | None:
    """Nearest-rank percentile of an already sorted list."""
    if not sorted_values:
        return None
    rank = max(1, -(-len(sorted_values) * pct // 100))  # ceil
    return sorted_values[int(rank) - 1]


def latencies(samples: Iterable[Sample], timeout_s: float) -> list[float]:
    """Sorted latencies of successes, each timed-out probe counted as ``timeout_s``."""
    cap = timeout_s * 1000
    return sorted(
        cap if s.timed_out else s.latency_ms  # type: ignore[misc]
        for s in samples
        if s.timed_out or (s.ok and s.latency_ms is not None)
    )


def summarize(target: str, samples: tuple[Sample, ...], timeout_s: float) -> TargetHistory:
    """A :class:`TargetHistory` of these samples (oldest first)."""
    lat = latencies(samples, timeout_s)
    return TargetHistory(
        target=target,
        samples=samples,
        timeout_s=timeout_s,
        min_ms=lat[0] if lat else None,
        p50=percentile(lat, 50),
        p95=percentile(lat, 95),
        p99=percentile(lat, 99),
        max_ms=lat[-1] if lat else None,
        failures=sum(1 for s in samples if not s.ok),
        timeouts=sum(1 for s in samples if s.timed_out),
    )


class Tracker:
    """Window and state of one target."""

    def __init__(
        self,
        target: Target,
        *,
        window: int,
        down_after: int,
        recover_after: int,
        flap_window: int = 20,
        flap_threshold: int = 8,
    ) -> None:
        self.target = target
        self.samples: deque[Sample] = deque(maxlen=window)
        self.down_after = down_after
        self.recover_after = recover_after
        self.flap_threshold = flap_threshold
        self._flips: deque[bool] = deque(maxlen=max(flap_window - 1, 1))  # changed vs previous
        self._last_ok: bool | None = None
        self._changes = 0  # True values in _flips
        self.flapping = False
        self.settled: HealthState = "unknown"  # the hysteresis state (beneath "flapping")
        self.state: HealthState = "unknown"
        self.since: datetime | None = None
        self.fails = 0  # consecutive failures
        self.successes = 0  # consecutive successes (slow or not)
        self.good = 0  # consecutive successes that were not slow
        self.last_error: str | None = None
        self.last_phases: dict[str, float | None] | None = None
        self.reason: str | None = None

    def add(self, outcome: Outcome, at: datetime) -> tuple[HealthState, HealthState] | None:
        """Record one outcome; return ``(old, new)`` if the (shown) state changed."""
        self.samples.append(
            Sample(
                at,
                outcome.ok,
                outcome.slow,
                outcome.latency_ms,
                outcome.error,
                outcome.timed_out,
                outcome.status_code,
            )
        )
        if outcome.phases is not None:
            self.last_phases = outcome.phases
        if self._last_ok is not None:
            flips = self._flips
            if len(flips) == flips.maxlen and flips[0]:
                self._changes -= 1
            flipped = self._last_ok != outcome.ok
            flips.append(flipped)
            self._changes += flipped
        self._last_ok = outcome.ok
        changes = self._changes
        if changes >= self.flap_threshold:
            self.flapping = True
        elif self.flapping and changes * 2 < self.flap_threshold:
            self.flapping = False
        self.settled = self._hysteresis(outcome)
        old, new = self.state, "flapping" if self.flapping else self.settled
        if new == "flapping":
            self.reason = f"flapping: {changes} changes in the last {len(self._flips) + 1} probes"
        if new != old:
            self.state = new
            self.since = at
            if new == "ok":
                self.reason = None
            return old, new
        return None

    def _hysteresis(self, outcome: Outcome) -> HealthState:
        old = self.settled
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
        return new

    @property
    def transitional(self) -> bool:
        """The state may still move without the endpoint changing: failures not yet
        ``down_after``, or a recovery not yet ``recover_after`` (a one-shot check such
        as a runbook's ``health`` step sweeps again until this is false)."""
        if self.flapping:
            return False
        if self.settled == "unknown":
            return True
        if self.settled == "down":
            return self.successes > 0
        if self.settled == "degraded":
            return 0 < self.fails < self.down_after or 0 < self.good < self.recover_after
        return False

    def latencies(self) -> list[float]:
        """Sorted latencies for percentiles: successes, plus each timeout as its timeout."""
        return latencies(self.samples, self.target.timeout)

    def history(self) -> TargetHistory:
        """The stored window of this target and its min/p50/p95/p99/max."""
        return summarize(self.target.id, tuple(self.samples), self.target.timeout)

    def status(self) -> TargetStatus:
        t = self.target
        n = len(self.samples)
        lat = self.latencies()
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
            timeouts=sum(1 for s in self.samples if s.timed_out),
            min_ms=lat[0] if lat else None,
            max_ms=lat[-1] if lat else None,
            flapping=self.flapping,
            settled=self.settled,
        )
