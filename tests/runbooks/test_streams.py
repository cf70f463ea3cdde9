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


async def test_save_output_keeps_the_whole_output_in_a_file(
    env, operator, write_runbook, tmp_path
):
    from opsconsole.runbooks import start_run
    from opsconsole.runbooks.state import get_steps

    rb = write_runbook(f"""
        name: save
        steps:
          - id: big
            shell:
              command: ["python3", "-c", "import sys; sys.stdout.write('z' * 6_000_000)"]
              save_output: {tmp_path}/big.out
        """)
    result = await start_run(rb, {}, env=env, operator=operator)
    assert result.status == "succeeded", result.error
    assert (tmp_path / "big.out").stat().st_size == 6_000_000
    assert (tmp_path / "big.out").stat().st_mode & 0o777 == 0o600
    row = get_steps(env.db, result.run_id)[0]
    assert f"truncated at 4 MB; the whole output is in {tmp_path}/big.out" in row.result["stdout"]
