"""Drill records in the store: the order of runs that share one moment."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

from opsconsole.drills import store
from opsconsole.store import immediate, open_db


def test_runs_of_one_moment_come_back_in_the_order_they_were_recorded(db_path: Path) -> None:
    db = open_db(db_path)
    moment = datetime(2026, 3, 1, 2, 0, tzinfo=UTC)
    # Ids sort the other way round: the order must come from the recording, not the id.
    ids = [f"drill-20260301-020000-{n:06x}" for n in (9, 7, 5, 3, 1)]
    with immediate(db):
        for run_id in ids:
            store.insert_run(
                db,
                store.DrillRun(
                    id=run_id,
                    drill="nightly",
                    plan="p",
                    kind="live",
                    status="missed",
                    trigger="schedule",
                    actor="scheduler",
                    interface="scheduler",
                    scheduled_for=moment,
                ),
            )
    assert [r.id for r in store.history(db, "nightly")] == ids
    assert [r.id for r in store.history(db, "nightly", limit=2)] == ids[-2:]
    assert [r.id for r in store.history(db, plan="p", since=moment)] == ids
