"""Shell steps: output lines of any length, large stdin written while output is read."""

from __future__ import annotations


async def test_a_100_kb_output_line_is_read_whole(env, operator, write_runbook):
    from opsconsole.runbooks import start_run
    from opsconsole.runbooks.state import get_steps

    rb = write_runbook("""
        name: long
        steps:
          - id: big
            shell: ["python3", "-c", "import json; print(json.dumps({'k': 'x' * 100000}))"]
          - {id: after, shell: ["echo", "{{ steps.big.json.k | length }}"]}
        """)
    result = await start_run(rb, {}, env=env, operator=operator)
    assert result.status == "succeeded", result.error
    steps = get_steps(env.db, result.run_id)
    assert steps[1].output.strip() == "100000"
    assert steps[0].truncated  # stored output is bounded, and says so


async def test_three_mb_of_stdin_does_not_deadlock(env, operator, write_runbook):
    from opsconsole.runbooks import start_run
    from opsconsole.runbooks.state import get_steps

    rb = write_runbook("""
        name: stdin
        params: {n: {type: int, default: 3000000}}
        steps:
          - id: cat
            timeout: 20
            shell:
              command: ["cat"]
              stdin: "{{ 'y' * n }}"
          - {id: size, shell: ["echo", "{{ steps.cat.stdout | length }}"]}
        """)
    result = await start_run(rb, {}, env=env, operator=operator)
    assert result.status == "succeeded", result.error
    assert get_steps(env.db, result.run_id)[1].output.strip() == "3000000"
