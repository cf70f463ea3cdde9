"""The engine: outcomes, failure policy, rollback order, retries, timeouts, outputs."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pytest

from opsconsole.runbooks import RunFinished, StepOutput, start_run
from opsconsole.runbooks.state import get_run, get_steps


def _statuses(env: Any, run_id: str) -> dict[str, str]:
    return {f"{s.phase}:{s.step_id}": s.status for s in get_steps(env.db, run_id)}


async def test_successful_run_registers_outputs_for_later_steps(
    env, operator, write_runbook, tmp_path
):
    rb = write_runbook(f"""
        name: outputs
        params:
          who: {{required: true}}
        steps:
          - id: first
            shell: ["echo", "hi {{{{ who }}}} {{{{ vars.greeting }}}}"]
            register: greet
          - id: second
            shell: "echo {{{{ greet.stdout }}}} > {tmp_path}/out.txt"
          - id: json
            shell: ["echo", '{{"n": 3}}']
          - id: third
            when: "steps.json.json.n == 3"
            shell: ["true"]
        """)
    result = await start_run(rb, {"who": "bob"}, env=env, operator=operator)
    assert result.status == "succeeded", result.error
    assert (tmp_path / "out.txt").read_text() == "hi bob hello\n"
    assert _statuses(env, result.run_id)["main:third"] == "succeeded"


async def test_failure_aborts_and_later_steps_stay_pending(env, operator, write_runbook, tmp_path):
    rb = write_runbook(f"""
        name: abort
        steps:
          - id: bad
            shell: "echo broken >&2; exit 4"
          - id: never
            shell: "touch {tmp_path}/never"
        """)
    result = await start_run(rb, {}, env=env, operator=operator)
    assert result.status == "failed"
    assert "exit status 4" in (result.error or "")
    assert not (tmp_path / "never").exists()
    assert _statuses(env, result.run_id) == {"main:bad": "failed", "main:never": "pending"}
    assert get_run(env.db, result.run_id).finished_at is not None


async def test_on_failure_continue_goes_on(env, operator, write_runbook):
    rb = write_runbook("""
        name: cont
        steps:
          - {id: bad, shell: "exit 1", on_failure: continue}
          - {id: good, shell: "true"}
        """)
    result = await start_run(rb, {}, env=env, operator=operator)
    assert result.status == "succeeded"
    assert _statuses(env, result.run_id) == {"main:bad": "failed", "main:good": "succeeded"}


async def test_rollback_runs_in_reverse_and_only_undoes_steps_that_ran(
    env, operator, write_runbook, tmp_path
):
    log = tmp_path / "log"
    rb = write_runbook(f"""
        name: rb
        steps:
          - {{id: a, shell: "echo a >> {log}"}}
          - {{id: b, shell: "echo b >> {log}"}}
          - {{id: c, shell: "exit 1", on_failure: rollback}}
          - {{id: d, shell: "echo d >> {log}"}}
        rollback:
          - {{id: undo-a, undoes: a, shell: "echo undo-a >> {log}"}}
          - {{id: undo-b, undoes: b, shell: "echo undo-b >> {log}"}}
          - {{id: undo-d, undoes: d, shell: "echo undo-d >> {log}"}}
        """)
    result = await start_run(rb, {}, env=env, operator=operator)
    assert result.status == "rolled_back"
    assert "step c failed" in (result.error or "")
    assert log.read_text().split() == ["a", "b", "undo-b", "undo-a"]
    assert _statuses(env, result.run_id)["rollback:undo-d"] == "skipped"


async def test_retries_with_backoff_until_success(env, operator, write_runbook, tmp_path):
    counter = tmp_path / "count"
    rb = write_runbook(f"""
        name: retry
        steps:
          - id: flaky
            retries: {{count: 3, backoff: 0.05, factor: 2}}
            shell: "echo x >> {counter}; test $(wc -l < {counter}) -ge 3"
        """)
    result = await start_run(rb, {}, env=env, operator=operator)
    assert result.status == "succeeded"
    assert len(counter.read_text().splitlines()) == 3
    step = get_steps(env.db, result.run_id)[0]
    assert step.attempts == 3
    retries = env.db.execute(
        "SELECT count(*) FROM audit_events WHERE action = 'runbook.step.retry'"
    ).fetchone()[0]
    assert retries == 2


async def test_timeout_kills_the_whole_process_group_and_is_timed_out(
    env, operator, write_runbook, tmp_path
):
    pidfile = tmp_path / "child.pid"
    rb = write_runbook(f"""
        name: slow
        steps:
          - id: hang
            timeout: 1
            shell: "sleep 300 & echo $! > {pidfile}; wait"
        """)
    result = await start_run(rb, {}, env=env, operator=operator)
    assert result.status == "timed_out"
    assert "timed out" in (result.error or "")
    child = int(pidfile.read_text())
    from opsconsole.runbooks.locks import pid_alive

    assert not pid_alive(child), "the backgrounded grandchild must be killed with the group"
    assert _statuses(env, result.run_id)["main:hang"] == "timed_out"


async def test_output_is_streamed_as_events_and_stored_bounded(env, operator, write_runbook):
    rb = write_runbook("""
        name: big
        steps:
          - id: spam
            shell: "for i in $(seq 1 20000); do echo line-$i-xxxxxxxxxxxxxxxx; done"
        """)
    seen: list[Any] = []
    env.bus.subscribe(seen.append)
    result = await start_run(rb, {}, env=env, operator=operator)
    assert result.status == "succeeded"
    lines = [e for e in seen if isinstance(e, StepOutput)]
    assert len(lines) == 20000
    assert isinstance(seen[-1], RunFinished)
    step = get_steps(env.db, result.run_id)[0]
    assert step.truncated
    assert "characters truncated" in step.output
    assert len(step.output) < 70_000
    assert "line-20000-" in step.output  # the tail is kept


async def test_markers_and_report_give_measurements(env, operator, write_runbook):
    rb = write_runbook("""
        name: measure
        steps:
          - {id: before, shell: "true"}
          - {id: start, marker: recovery_start, shell: "sleep 0.3"}
          - {id: end, marker: recovery_end, shell: ["echo", '{"lag": 2.5}']}
          - id: rep
            shell: "true"
            report: {rpo_seconds: "{{ steps.end.json.lag }}"}
        """)
    result = await start_run(rb, {}, env=env, operator=operator)
    assert result.status == "succeeded"
    assert result.measured["rpo_seconds"] == 2.5
    assert 0.3 <= result.measured["rto_seconds"] < result.measured["duration_seconds"] + 0.001


async def test_drill_mode_skips_and_auto_confirms_and_needs_a_person_otherwise(
    env, write_runbook, tmp_path
):
    from opsconsole.operator import UnattendedOperator

    rb = write_runbook(f"""
        name: drill
        steps:
          - {{id: skipme, drill: skip, shell: "touch {tmp_path}/skipped"}}
          - {{id: ok, drill: auto-confirm, manual: "Check the dashboard"}}
          - {{id: ask, manual: "Call the bank"}}
        """)
    result = await start_run(rb, {}, env=env, operator=UnattendedOperator(), mode="drill")
    assert result.status == "failed"
    assert "needs a person" in (result.error or "")
    assert not (tmp_path / "skipped").exists()
    st = _statuses(env, result.run_id)
    assert st == {"main:skipme": "skipped", "main:ok": "succeeded", "main:ask": "failed"}


async def test_audit_failure_stops_the_run_before_the_side_effect(
    env, operator, write_runbook, tmp_path
):
    from opsconsole.errors import AuditWriteError

    rb = write_runbook(f"""
        name: failclosed
        steps:
          - {{id: one, shell: "touch {tmp_path}/one"}}
          - {{id: two, shell: "touch {tmp_path}/two"}}
        """)
    real = env.audit.record

    def record(action: str, target: str = "", *a: Any, **kw: Any) -> int:
        if action == "runbook.step.started" and target.endswith("/two"):
            raise AuditWriteError("audit log not writable (test)")
        return real(action, target, *a, **kw)

    env.audit.record = record  # type: ignore[method-assign]
    with pytest.raises(AuditWriteError):
        await start_run(rb, {}, env=env, operator=operator)
    assert (tmp_path / "one").exists()
    assert not (tmp_path / "two").exists()
    run_id = env.db.execute("SELECT id FROM runs").fetchone()[0]
    assert get_run(env.db, run_id).status == "failed"
    assert _statuses(env, run_id)["main:two"] == "pending"


async def test_every_transition_is_audited_and_chain_verifies(env, operator, write_runbook):
    from opsconsole.audit import verify

    rb = write_runbook("""
        name: audited
        steps:
          - {id: one, shell: "true"}
        """)
    result = await start_run(rb, {}, env=env, operator=operator)
    actions = [
        r[0]
        for r in env.db.execute(
            "SELECT action FROM audit_events WHERE target LIKE ? ORDER BY seq",
            [result.run_id + "%"],
        )
    ]
    assert actions == [
        "runbook.run.started",
        "runbook.step.started",
        "runbook.step.finished",
        "runbook.run.finished",
    ]
    assert verify(env.db).ok


async def test_sub_run_links_parent(env, operator, write_runbook, tmp_path):
    write_runbook(
        f"""
        name: child
        params: {{x: {{}}}}
        steps:
          - {{id: c, shell: "echo {{{{ x }}}} > {tmp_path}/child"}}
        """,
        name="child",
    )
    rb = write_runbook(f"""
        name: parent
        steps:
          - id: sub
            runbook: {{name: {tmp_path}/runbooks/child.yaml, params: {{x: "from-parent"}}}}
        """)
    result = await start_run(rb, {}, env=env, operator=operator)
    assert result.status == "succeeded", result.error
    assert (tmp_path / "child").read_text() == "from-parent\n"
    child = env.db.execute("SELECT id, parent_run FROM runs WHERE runbook = 'child'").fetchone()
    assert child[1] == result.run_id
    stored = json.loads(
        env.db.execute("SELECT result FROM run_steps WHERE run_id = ?", [result.run_id]).fetchone()[
            0
        ]
    )
    assert stored["run_id"] == child[0]


def test_pid_alive_of_self() -> None:
    from opsconsole.runbooks.locks import pid_alive

    assert pid_alive(os.getpid())
    assert Path("/proc").exists()
