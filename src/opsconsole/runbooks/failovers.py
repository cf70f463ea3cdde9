"""Which regions are failed over right now, from opsconsole's own run records.

A region counts as failed over when a runbook that declares the precondition
``not_in_effect: [region]`` (the shipped ``regional-failover`` does) is in effect for it:
its most recent decisive run for that region succeeded and has not been rolled back (see
:mod:`opsconsole.runbooks.preconditions`, which the engine uses to refuse a second
failover from any interface). No runbook name is built in: the runbooks are found by
what they declare.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import sqlite_utils

    from opsconsole.config import Config

__all__ = ["FailoverInfo", "failover_runbooks", "failovers_in_effect"]


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


def failover_runbooks(config: Config | None) -> list[str]:
    """Names of the runbooks that declare ``not_in_effect: [region]``."""
    from opsconsole.errors import SourceError
    from opsconsole.runbooks.loader import load_runbook, runbook_dirs

    names: list[str] = []
    for d in runbook_dirs(config):
        if not d.is_dir():
            continue
        for path in sorted([*d.glob("*.yaml"), *d.glob("*.yml")]):
            try:
                rb = load_runbook(path, check_subruns=False)
            except SourceError:
                continue
            declares = any(p.not_in_effect == ["region"] for p in rb.preconditions)
            if declares and rb.name not in names:
                names.append(rb.name)
    return names


def failovers_in_effect(
    db: sqlite_utils.Database,
    *,
    config: Config | None = None,
    runbook: str | None = None,
) -> dict[str, FailoverInfo]:
    """``{region: FailoverInfo}`` for every region whose failover is in effect.

    ``runbook``: only that runbook; default: every runbook declaring
    ``not_in_effect: [region]``. The serving region is what the run's ``standby`` step
    printed (the shipped runbook echoes ``regions[region].standby`` there), else the
    inventory's standby (``config``)."""
    from opsconsole.runbooks.preconditions import runs_in_effect

    names = [runbook] if runbook else failover_runbooks(config)
    found: dict[str, Any] = {}
    for name in names:
        for (region,), info in runs_in_effect(db, name, ["region"]).items():
            if not isinstance(region, str):
                continue
            prev = found.get(region)
            if prev is None or (info.finished_at or _EPOCH) > (prev.finished_at or _EPOCH):
                found[region] = info
    return {
        region: FailoverInfo(
            region=region,
            run_id=info.run_id,
            target=_target(db, info.run_id) or _standby(config, region),
            finished_at=info.finished_at,
            actor=info.actor,
            mode=info.mode,
        )
        for region, info in found.items()
    }


_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


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
