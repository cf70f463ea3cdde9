"""One durable commit per step: a step's end commits with the next step's start, and is
still durable before anything of the next step runs."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from tests.helpers import SRC, opened

# Another process's view of the database (SQLite file or PostgreSQL URL), through the
# store of this tree's sources.
OPEN = f"""\
import sys
sys.path.insert(0, {str(SRC)!r})
from opsconsole.store import open_db
conn = open_db(sys.argv[1], migrate=False)
"""

PEEK = OPEN + """\
rows = conn.execute("SELECT step_id, status FROM run_steps ORDER BY idx").fetchall()
audit = conn.execute(
    "SELECT count(*) FROM audit_events WHERE action = 'runbook.step.finished'"
).fetchone()[0]
print(" ".join(f"{s}={st}" for s, st in rows), f"finished_records={audit}")
"""

TAKEOVER = OPEN + """\
conn.execute("UPDATE runs SET pid = pid + 100000")
"""


def _commits(env, run) -> int:  # type: ignore[no-untyped-def]
    """The COMMITs the engine's connection sends while ``run`` runs."""
    seen: list[str] = []
    conn = env.db.conn
    if env.db.engine == "postgresql":
        execute = conn.execute

        def traced(sql, *args, **kwargs):  # type: ignore[no-untyped-def]
            seen.append(sql)
            return execute(sql, *args, **kwargs)

        conn.execute = traced
        try:
            run()
        finally:
            del conn.execute
    else:
        conn.set_trace_callback(seen.append)
        try:
            run()
        finally:
            conn.set_trace_callback(None)
    return sum(1 for s in seen if s.strip().upper() == "COMMIT")


def _steps(n: int) -> str:
    return "name: n\nsteps:\n" + "".join(f"  - {{id: s{i}, shell: ['true']}}\n" for i in range(n))


def test_each_further_step_costs_one_commit(env, operator, write_runbook):
    import asyncio

    from opsconsole.runbooks import start_run

    def run(n: int) -> int:
        rb = write_runbook(_steps(n))

        def go() -> None:
            result = asyncio.run(start_run(rb, {}, env=env, operator=operator))
            assert result.status == "succeeded", result.error

        return _commits(env, go)

    small, large = run(4), run(12)
    assert large - small == 8  # two per step before (started, finished)
    rows = env.db.execute(
        "SELECT count(*) FROM audit_events WHERE action IN "
        "('runbook.step.started', 'runbook.step.finished')"
    ).fetchone()
    assert rows[0] == 2 * (4 + 12)  # every transition still has its audit record


async def test_previous_step_is_durable_before_the_next_one_acts(
    env, operator, write_runbook, tmp_path, db_path
):
    from opsconsole.runbooks import start_run

    peek = tmp_path / "peek.py"
    peek.write_text(PEEK)
    rb = write_runbook(f"""
        name: peek
        steps:
          - id: a
            shell: ["true"]
          - id: b
            when: "{{{{ false }}}}"
            shell: ["true"]
          - id: c
            shell: ["{sys.executable}", "{peek}", "{db_path}"]
          - id: d
            shell: ["true"]
        """)
    result = await start_run(rb, {}, env=env, operator=operator)
    assert result.status == "succeeded", result.error
    out = env.db.execute("SELECT output FROM run_steps WHERE step_id = 'c'").fetchone()[0]
    # Seen from another process while c runs: a finished, b skipped, c started, all committed.
    assert "a=succeeded b=skipped c=running d=pending finished_records=1" in out


async def test_step_end_is_kept_when_the_next_claim_is_lost(env, operator, write_runbook, tmp_path):
    from opsconsole.runbooks import start_run
    from opsconsole.runbooks.state import StepClaimLost

    takeover = tmp_path / "takeover.py"
    takeover.write_text(TAKEOVER)
    db_file = env.db.location
    rb = write_runbook(f"""
        name: lost
        steps:
          - id: a
            shell: ["{sys.executable}", "{takeover}", "{db_file}"]
          - id: b
            shell: ["touch", "{tmp_path}/b-ran"]
        """)
    with pytest.raises(StepClaimLost):
        await start_run(rb, {}, env=env, operator=operator)
    with opened(db_file) as conn:
        statuses = dict(conn.execute("SELECT step_id, status FROM run_steps").fetchall())
        finished = conn.execute(
            "SELECT count(*) FROM audit_events WHERE action = 'runbook.step.finished'"
        ).fetchone()[0]
    assert statuses == {"a": "succeeded", "b": "pending"}
    assert finished == 1
    assert not (Path(tmp_path) / "b-ran").exists()
