"""No stuck runs: any exception in a step ends it failed and releases the lock; runs can
be aborted; sub-runbook cycles are found by validate."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from tests.helpers import cli


@pytest.fixture(autouse=True)
def _on_both_engines(store_engine: str) -> str:
    """Every test here runs on SQLite and on PostgreSQL (see ``store_engine``)."""
    return store_engine


async def test_invalid_url_fails_the_step_and_releases_the_lock(env, operator, write_runbook):
    from opsconsole.runbooks import start_run
    from opsconsole.runbooks.locks import list_locks
    from opsconsole.runbooks.state import get_steps

    rb = write_runbook("""
        name: badurl
        params: {u: {required: true}}
        lock: "url:{{ u }}"
        steps:
          - {id: h, http: {url: "{{ u }}"}}
        """)
    result = await start_run(rb, {"u": "http://127.0.0.1:1/a\tb"}, env=env, operator=operator)
    assert result.status == "failed"
    assert "InvalidURL" in (result.error or "") or "Invalid" in (result.error or "")
    assert [s.status for s in get_steps(env.db, result.run_id)] == ["failed"]
    assert list_locks(env.db) == []


async def test_a_crash_in_a_step_action_does_not_leave_the_run_running(
    env, operator, write_runbook, monkeypatch
):
    from opsconsole.runbooks import start_run
    from opsconsole.runbooks.locks import list_locks
    from opsconsole.runbooks.state import get_run
    from opsconsole.runbooks.steps import flow

    async def crash(rendered, ctx):  # type: ignore[no-untyped-def]
        raise KeyError("boom")

    monkeypatch.setattr(flow.Sleep, "execute", staticmethod(crash))
    rb = write_runbook("""
        name: crash
        lock: crash
        steps:
          - {id: a, sleep: 1}
        """)
    result = await start_run(rb, {}, env=env, operator=operator)
    assert result.status == "failed"
    assert "KeyError" in (result.error or "")
    assert get_run(env.db, result.run_id).status == "failed"
    assert list_locks(env.db) == []


def test_self_calling_sub_runbook_is_refused_by_validate_with_the_chain(tmp_path: Path) -> None:
    d = tmp_path / "rbs"
    d.mkdir()
    (d / "ping.yaml").write_text(
        textwrap.dedent("""\
        name: ping
        steps:
          - id: call
            runbook: {name: pong}
        """)
    )
    (d / "pong.yaml").write_text(
        textwrap.dedent("""\
        name: pong
        steps:
          - id: back
            runbook: {name: ping}
        """)
    )
    (d / "self.yaml").write_text(
        textwrap.dedent("""\
        name: self
        steps:
          - {id: again, runbook: {name: self}}
        """)
    )
    res = cli("runbook", "validate", str(d / "ping.yaml"), str(d / "self.yaml"))
    assert res.exit_code == 15, res.output
    assert "ping.yaml:4:" in res.output
    assert "sub-runbook cycle: ping -> pong -> ping" in res.output
    assert "self.yaml:3:" in res.output and "self -> self" in res.output
    assert "Traceback" not in res.output


async def test_abort_ends_a_run_left_running_by_a_dead_process(env, operator, write_runbook):
    import subprocess

    from opsconsole.runbooks import abort_run, start_run
    from opsconsole.runbooks.locks import list_locks
    from opsconsole.runbooks.state import get_run, get_steps

    rb = write_runbook("""
        name: abortme
        lock: abortme
        steps:
          - {id: a, shell: "true"}
          - {id: b, shell: "true"}
        """)
    result = await start_run(rb, {}, env=env, operator=operator)
    dead = subprocess.Popen(["true"])
    dead.wait()
    # What a kill -9 leaves: running run, running step, lock held by a dead pid.
    env.db.execute(
        "UPDATE runs SET status = 'running', pid = ?, finished_at = NULL WHERE id = ?",
        [dead.pid, result.run_id],
    )
    env.db.execute("UPDATE run_steps SET status = 'running' WHERE step_id = 'b'")
    env.db.execute(
        "INSERT INTO run_locks (key, run_id, actor, pid, hostname, acquired_at) "
        "VALUES ('abortme', ?, 'alice', ?, 'h', 't')",
        [result.run_id, dead.pid],
    )
    aborted = abort_run(result.run_id, env=env)
    assert aborted.status == "aborted"
    run = get_run(env.db, result.run_id)
    assert run.status == "aborted" and "aborted by alice" in (run.error or "")
    assert [s.status for s in get_steps(env.db, run.id)] == ["succeeded", "interrupted"]
    assert list_locks(env.db) == []
    actions = [r[0] for r in env.db.execute("SELECT action FROM audit_events").fetchall()]
    assert "runbook.run.aborted" in actions
    with pytest.raises(Exception, match="already finished"):
        abort_run(result.run_id, env=env)


def test_abort_refuses_a_run_whose_owner_is_alive(env, tmp_path) -> None:
    import os

    from opsconsole import leases
    from opsconsole.runbooks import abort_run
    from opsconsole.runbooks.procs import proc_start

    env.db.execute(
        "INSERT INTO runs (id, runbook, path, source, status, actor, started_at, updated_at, pid,"
        " hostname) VALUES ('live1', 'x', 'p', 's', 'running', 'bob', 't', 't', ?, ?)",
        [os.getppid(), __import__("socket").gethostname()],
    )
    # Its owner (our parent process, alive) holds the run's lease.
    owner = leases.Holder("bob", leases.local_host(), os.getppid(), proc_start(os.getppid()))
    leases.acquire(env.db, env.audit, "run:live1", owner)
    with pytest.raises(Exception, match="being resumed by pid") as info:
        abort_run("live1", env=env)
    assert getattr(info.value, "exit_code", None) == 7
