"""input / manual / notify / sleep steps, and resuming a rollback that was cut short."""

from __future__ import annotations

import subprocess
import sys

from opsconsole.runbooks import resume_run, start_run
from opsconsole.runbooks.state import get_run, get_steps
from tests.helpers import dump
from tests.runbooks.conftest import ScriptedOperator


async def test_input_and_manual_steps_use_the_operator(env, write_runbook, tmp_path):
    rb = write_runbook(f"""
        name: human
        steps:
          - id: ask
            input: {{prompt: "ticket number?", pattern: "[A-Z]+-[0-9]+"}}
            register: ticket
          - id: pw
            input: {{prompt: "one-time code?", secret: true}}
          - id: do
            manual: "Open {{{{ ticket.value }}}} in the tracker"
          - id: write
            shell: "echo {{{{ ticket.value }}}} {{{{ steps.pw.value }}}} > {tmp_path}/out"
        """)
    op = ScriptedOperator(answers=[True], values=["OPS-42", "code-998877"])
    result = await start_run(rb, {}, env=env, operator=op)
    assert result.status == "succeeded", result.error
    assert (tmp_path / "out").read_text() == "OPS-42 code-998877\n"
    assert "Open OPS-42 in the tracker" in op.shown[0]
    assert "code-998877" not in dump(env.db)


async def test_input_not_matching_pattern_fails(env, write_runbook):
    rb = write_runbook("""
        name: badinput
        steps:
          - {id: ask, input: {prompt: "n?", pattern: "[0-9]+"}}
        """)
    op = ScriptedOperator(values=["abc", "x", "y"])
    result = await start_run(rb, {}, env=env, operator=op)
    assert result.status == "failed"
    assert "does not match" in (result.error or "")
    assert len(op.prompts) == 3  # asked again twice before giving up


async def test_input_typo_asks_again_instead_of_failing_the_run(env, write_runbook):
    rb = write_runbook("""
        name: typo
        steps:
          - {id: ask, input: {prompt: "n?", pattern: "[0-9]+"}, register: n}
        """)
    op = ScriptedOperator(values=["4x2", "42"])
    result = await start_run(rb, {}, env=env, operator=op)
    assert result.status == "succeeded", result.error
    assert get_steps(env.db, result.run_id)[0].status == "succeeded"
    assert "must match" in op.prompts[1] and "try 2 of 3" in op.prompts[1]


async def test_unattended_input_default_that_does_not_match_fails_at_once(env, write_runbook):
    from opsconsole.operator import UnattendedOperator

    rb = write_runbook("""
        name: unattended
        steps:
          - {id: ask, input: {prompt: "n?", pattern: "[0-9]+", default: "none"}}
        """)
    result = await start_run(rb, {}, env=env, operator=UnattendedOperator())
    assert result.status == "failed"
    assert "(asked 1x)" in (result.error or "")


async def test_notify_without_webhooks_fails_clearly(env, operator, write_runbook):
    rb = write_runbook("""
        name: notify
        steps:
          - {id: tell, notify: "hello", on_failure: continue}
          - {id: nap, sleep: 0.01}
        """)
    result = await start_run(rb, {}, env=env, operator=operator)
    assert result.status == "succeeded"
    tell = get_steps(env.db, result.run_id)[0]
    assert tell.status == "failed" and "no webhook configured" in (tell.error or "")


async def test_resume_continues_a_rollback_that_was_cut_short(env, write_runbook, tmp_path):
    log = tmp_path / "log"
    rb = write_runbook(f"""
        name: cut
        steps:
          - {{id: a, shell: "echo a >> {log}"}}
          - {{id: b, shell: "exit 1", on_failure: rollback}}
        rollback:
          - {{id: undo-a2, shell: "echo undo-a2 >> {log}"}}
          - {{id: undo-a1, shell: "echo undo-a1 >> {log}"}}
        """)
    first = await start_run(rb, {}, env=env, operator=ScriptedOperator())
    assert first.status == "rolled_back"
    assert log.read_text().split() == ["a", "undo-a1", "undo-a2"]
    # Rewind to "killed with -9 while undo-a2 was running" (rollback runs in reverse).
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    env.db.execute(
        "UPDATE runs SET status = 'running', finished_at = NULL, pid = ? WHERE id = ?",
        [dead.pid, first.run_id],
    )
    env.db.execute(
        "UPDATE run_steps SET status = 'running', finished_at = NULL "
        "WHERE run_id = ? AND step_id = 'undo-a2'",
        [first.run_id],
    )
    op = ScriptedOperator(answers=[True])  # "run it again?" -> yes
    again = await resume_run(first.run_id, env=env, operator=op)
    assert again.status == "rolled_back"
    assert "was interrupted while running" in op.prompts[0]
    assert log.read_text().split() == ["a", "undo-a1", "undo-a2", "undo-a2"]
    assert get_run(env.db, first.run_id).phase == "rollback"
