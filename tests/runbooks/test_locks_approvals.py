"""Locks (holder named, stale detection, unlock) and durable approvals."""

from __future__ import annotations

import subprocess
import sys

import pytest

from opsconsole.audit import AuditLog
from opsconsole.runbooks import (
    ApprovalError,
    LockHeld,
    decide_approval,
    pending_approval,
    release_lock,
    resume_run,
    start_run,
)
from opsconsole.runbooks.locks import get_lock
from opsconsole.runbooks.state import get_run, get_steps

LOCKED = """
name: locked
params:
  region: {required: true}
lock: "failover:{{ region }}"
steps:
  - {id: wait, approval: "go ahead?"}
  - {id: act, shell: "true"}
"""


@pytest.fixture(autouse=True)
def _on_both_engines(store_engine: str) -> str:
    """Every test here runs on SQLite and on PostgreSQL (see ``store_engine``)."""
    return store_engine


async def test_second_run_with_same_lock_key_is_refused_naming_holder(env, operator, write_runbook):
    rb = write_runbook(LOCKED)
    first = await start_run(rb, {"region": "sa-east-1"}, env=env, operator=operator)
    assert first.status == "waiting_approval"  # holds the lock through the durable wait
    bob = type(env)(db=env.db, audit=AuditLog(env.db, actor="bob"), config=env.config, bus=env.bus)
    with pytest.raises(LockHeld) as err:
        await start_run(rb, {"region": "sa-east-1"}, env=bob, operator=operator)
    assert first.run_id in str(err.value) and "alice" in str(err.value)
    assert err.value.exit_code == 7
    # A different key is fine.
    other = await start_run(rb, {"region": "eu-central-1"}, env=bob, operator=operator)
    assert other.status == "waiting_approval"


async def test_lock_of_a_dead_process_is_stale_and_can_be_released(env, operator, write_runbook):
    rb = write_runbook(LOCKED.replace('  - {id: wait, approval: "go ahead?"}\n', ""))
    result = await start_run(rb, {"region": "x"}, env=env, operator=operator)
    assert result.status == "succeeded"
    assert get_lock(env.db, "failover:x") is None  # released at the end
    # Fake a holder killed with -9: running, pid of a process that has exited.
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    env.db.execute("UPDATE runs SET status = 'running' WHERE id = ?", [result.run_id])
    env.db.execute(
        "INSERT INTO run_locks (key, run_id, actor, pid, hostname, acquired_at) "
        "VALUES ('failover:x', ?, 'alice', ?, ?, 'then')",
        [result.run_id, dead.pid, __import__("socket").gethostname()],
    )
    lock = get_lock(env.db, "failover:x")
    assert lock is not None and lock.stale
    with pytest.raises(LockHeld, match="stale lock"):
        await start_run(rb, {"region": "x"}, env=env, operator=operator)
    released = release_lock(env.db, env.audit, "failover:x")
    assert released.run_id == result.run_id
    assert (
        env.db.execute(
            "SELECT count(*) FROM audit_events WHERE action = 'runbook.lock.released'"
        ).fetchone()[0]
        >= 2
    )
    again = await start_run(rb, {"region": "x"}, env=env, operator=operator)
    assert again.status == "succeeded"


async def test_live_lock_is_not_released_without_force(env, operator, write_runbook):
    from opsconsole.errors import OpsError

    rb = write_runbook(LOCKED)
    first = await start_run(rb, {"region": "r"}, env=env, operator=operator)
    with pytest.raises(OpsError, match="--force"):
        release_lock(env.db, env.audit, "failover:r")
    assert release_lock(env.db, env.audit, "failover:r", force=True).run_id == first.run_id


async def test_self_approval_refused_then_other_actor_approves_and_resume_finishes(
    env, operator, write_runbook
):
    rb = write_runbook(LOCKED)
    result = await start_run(rb, {"region": "a"}, env=env, operator=operator)
    assert result.status == "waiting_approval"
    assert pending_approval(env.db, result.run_id) is not None
    with pytest.raises(ApprovalError, match="cannot approve"):
        decide_approval(env.db, env.audit, result.run_id, approve=True)
    carol = AuditLog(env.db, actor="carol")
    decided = decide_approval(env.db, carol, result.run_id, approve=True, comment="LGTM")
    assert decided.decided_by == "carol"
    done = await resume_run(result.run_id, env=env, operator=operator)
    assert done.status == "succeeded"
    actions = [
        r[0]
        for r in env.db.execute(
            "SELECT action || ':' || outcome FROM audit_events "
            "WHERE action LIKE 'runbook.approval.%'"
        )
    ]
    assert actions == [
        "runbook.approval.requested:ok",
        "runbook.approval.approved:denied",
        "runbook.approval.approved:ok",
    ]


async def test_denied_approval_fails_the_run(env, operator, write_runbook):
    rb = write_runbook(LOCKED)
    result = await start_run(rb, {"region": "d"}, env=env, operator=operator)
    decide_approval(
        env.db, AuditLog(env.db, actor="dave"), result.run_id, approve=False, comment="no"
    )
    done = await resume_run(result.run_id, env=env, operator=operator)
    assert done.status == "failed"
    assert "denied by dave" in (done.error or "")
    assert get_lock(env.db, "failover:d") is None


async def test_requires_approval_gates_the_first_changing_step(
    env, operator, write_runbook, tmp_path
):
    rb = write_runbook(f"""
        name: gated
        requires_approval: true
        steps:
          - {{id: look, check: true, shell: "touch {tmp_path}/looked"}}
          - {{id: change, shell: "touch {tmp_path}/changed"}}
        """)
    result = await start_run(rb, {}, env=env, operator=operator)
    assert result.status == "waiting_approval"
    assert (tmp_path / "looked").exists() and not (tmp_path / "changed").exists()
    assert [s.step_id for s in get_steps(env.db, result.run_id)] == [
        "look",
        "requires-approval",
        "change",
    ]
    assert get_run(env.db, result.run_id).status == "waiting_approval"
