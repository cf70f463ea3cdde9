"""Preconditions a runbook declares, checked by the engine for every interface.

``not_in_effect: [region]`` refuses a run while an earlier run of the same runbook with
the same value of ``region`` is *in effect*: its most recent decisive run succeeded and
has not been rolled back. Decisive runs are those that changed something: a run that
succeeded, or one that entered its rollback phase (the change is no longer cleanly in
effect). Runs that failed or were aborted before any rollback changed nothing and are
ignored, as are runs still in their main phase. Ordered by when that happened
(``finished_at``, else ``updated_at`` for a rollback still running).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

from opsconsole.errors import ExitCode
from opsconsole.runbooks.context import RunbookRunError
from opsconsole.timeutil import parse_when

if TYPE_CHECKING:
    import sqlite_utils

    from opsconsole.runbooks.schema import Runbook

__all__ = ["InEffect", "PreconditionFailed", "check_preconditions", "runs_in_effect"]


class PreconditionFailed(RunbookRunError):
    """A declared precondition does not hold: the run is refused before it starts."""

    exit_code = ExitCode.CONFLICT


@dataclass(frozen=True)
class InEffect:
    run_id: str
    params: dict[str, Any]
    finished_at: datetime | None
    actor: str
    mode: str


def runs_in_effect(
    db: sqlite_utils.Database, runbook: str, keys: list[str]
) -> dict[tuple[Any, ...], InEffect]:
    """``{(values of keys): InEffect}`` for each key whose latest decisive run of
    ``runbook`` succeeded and was not rolled back."""
    rows = db.execute(
        "SELECT id, params, status, phase, actor, mode, finished_at, "
        "COALESCE(finished_at, updated_at) AS at FROM runs "
        "WHERE runbook = ? AND (status = 'succeeded' OR phase = 'rollback') "
        "ORDER BY at, id",
        [runbook],
    ).fetchall()
    latest: dict[tuple[Any, ...], tuple[Any, ...]] = {}
    for row in rows:
        try:
            params = json.loads(row[1] or "{}")
        except ValueError:
            continue
        if not isinstance(params, dict) or any(params.get(k) in (None, "") for k in keys):
            continue
        latest[tuple(params[k] for k in keys)] = (*row, params)  # oldest first: last wins
    out: dict[tuple[Any, ...], InEffect] = {}
    for key, (run_id, _, status, phase, actor, mode, finished_at, _, params) in latest.items():
        if status == "succeeded" and phase != "rollback":
            out[key] = InEffect(
                run_id=run_id,
                params=params,
                finished_at=parse_when(finished_at) if finished_at else None,
                actor=actor,
                mode=mode,
            )
    return out


def check_preconditions(rb: Runbook, values: dict[str, Any], db: sqlite_utils.Database) -> None:
    """Raise :class:`PreconditionFailed` naming the conflicting run if one does not hold."""
    for pre in rb.preconditions:
        key = tuple(values.get(k) for k in pre.not_in_effect)
        conflict = runs_in_effect(db, rb.name, list(pre.not_in_effect)).get(key)
        if conflict is None:
            continue
        what = ", ".join(f"{k}={v}" for k, v in zip(pre.not_in_effect, key, strict=True))
        text = (
            f"{rb.name} is already in effect for {what}: run {conflict.run_id} by "
            f"{conflict.actor} succeeded"
            + (f" at {conflict.finished_at:%Y-%m-%d %H:%M} UTC" if conflict.finished_at else "")
            + f" and was not rolled back; roll it back first "
            f"(`opsconsole runbook rollback {conflict.run_id}`)"
        )
        if pre.message:
            import contextlib

            from opsconsole.templating import TemplateRenderError, render

            with contextlib.suppress(TemplateRenderError):
                text = render(
                    pre.message, {**values, "conflict": conflict.__dict__, "default": text}
                )
        raise PreconditionFailed(text)
