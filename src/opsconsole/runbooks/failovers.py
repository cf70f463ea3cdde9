"""Which regions are failed over right now, from opsconsole's own run records.

A region counts as failed over when the most recent *decisive* ``regional-failover`` run
for it (param ``region``) succeeded and has not been rolled back since. Decisive runs are
the ones that changed the region's routing: a run that succeeded, or one that entered its
rollback phase (rolled back, rolling back, or a rollback that failed or was interrupted:
the fail-back started, so the failover is no longer cleanly in effect). They are ordered
by when that happened (``finished_at``, else ``updated_at`` for a rollback still
running), so rolling back an older run after a newer failover also counts. Runs that
failed or were aborted before any rollback (a refused health gate, a held lock) changed
nothing and are ignored, as are runs still in their main phase.

Plain Python over the ``runs`` / ``run_steps`` tables (no UI imports); one small query.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

from opsconsole.timeutil import parse_when

if TYPE_CHECKING:
    import sqlite_utils

    from opsconsole.config import Config

__all__ = ["FAILOVER_RUNBOOK", "FailoverInfo", "failovers_in_effect"]

FAILOVER_RUNBOOK = "regional-failover"


@dataclass(frozen=True)
class FailoverInfo:
    """A failover in effect: ``region``'s customers are served by ``target``."""

    region: str
    run_id: str
    target: str | None  # the standby serving the region (None if it cannot be told)
    finished_at: datetime | None  # when the failover run succeeded (UTC)
    actor: str
    mode: str  # normal | drill

    @property
    def rollback_command(self) -> str:
        return f"opsconsole runbook rollback {self.run_id}"


def failovers_in_effect(
    db: sqlite_utils.Database,
    *,
    config: Config | None = None,
    runbook: str = FAILOVER_RUNBOOK,
) -> dict[str, FailoverInfo]:
    """``{region: FailoverInfo}`` for every region whose failover is in effect.

    The serving region is what the run's ``standby`` step printed (the shipped runbook
    echoes ``regions[region].standby`` there), else the inventory's standby (``config``).
    """
    rows = db.execute(
        "SELECT id, params, status, phase, actor, mode, finished_at, "
        "COALESCE(finished_at, updated_at) AS at FROM runs "
        "WHERE runbook = ? AND (status = 'succeeded' OR phase = 'rollback') "
        "ORDER BY at, id",
        [runbook],
    ).fetchall()
    latest: dict[str, tuple[Any, ...]] = {}
    for row in rows:
        region = _region(row[1])
        if region is not None:
            latest[region] = row  # ordered oldest first: the last one wins
    out: dict[str, FailoverInfo] = {}
    for region, (run_id, _, status, phase, actor, mode, finished_at, _) in latest.items():
        if status != "succeeded" or phase == "rollback":
            continue
        out[region] = FailoverInfo(
            region=region,
            run_id=run_id,
            target=_target(db, run_id) or _standby(config, region),
            finished_at=parse_when(finished_at) if finished_at else None,
            actor=actor,
            mode=mode,
        )
    return out


def _region(params: str | None) -> str | None:
    try:
        value = json.loads(params or "{}").get("region")
    except (ValueError, AttributeError):
        return None
    return value if isinstance(value, str) and value else None


def _target(db: sqlite_utils.Database, run_id: str) -> str | None:
    row = db.execute(
        "SELECT result FROM run_steps WHERE run_id = ? AND phase = 'main' "
        "AND step_id = 'standby' AND status = 'succeeded'",
        [run_id],
    ).fetchone()
    if not row or not row[0]:
        return None
    try:
        result = json.loads(row[0])
    except ValueError:
        return None
    stdout = result.get("stdout") if isinstance(result, dict) else None
    return (stdout.strip() or None) if isinstance(stdout, str) else None


def _standby(config: Config | None, region: str) -> str | None:
    if config is None:
        return None
    reg = config.inventory.regions.get(region)
    return reg.standby if reg is not None else None
