"""A shell step whose command has exited while something it started still holds the
step's pipes: the step ends (its output so far kept) and the holder is ended with it.

Before: the engine waited for end-of-file on the pipes for ever (seen once when a
double-forked ``setsid`` grandchild escaped the token scan)."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
from pathlib import Path

import pytest

from opsconsole.runbooks.procs import alive

# Only a hang guard: a correct engine ends these steps in well under a second.
HANG_GUARD = 60.0

HOLDERS = {
    # the brief's case: a setsid child carrying the step token, stdout inherited
    "setsid-child": "/usr/bin/setsid /bin/sh -c '{body}' &",
    # no token at all: only the pipes it holds tie it to the step
    "tokenless-setsid-child": "/usr/bin/env -i /usr/bin/setsid /bin/sh -c '{body}' &",
    # double-forked and tokenless
    "double-forked": "(/usr/bin/env -i /usr/bin/setsid /bin/sh -c '{body}' &) ;",
}


def _kill(pid_file: Path) -> None:
    with contextlib.suppress(OSError, ValueError):
        os.kill(int(pid_file.read_text()), signal.SIGKILL)


@pytest.mark.parametrize("how", sorted(HOLDERS))
async def test_a_pipe_holder_left_by_an_exited_command_is_ended_with_its_step(
    env, operator, write_runbook, tmp_path, how
):
    from opsconsole.runbooks import start_run
    from opsconsole.runbooks.state import get_steps

    pid_file = tmp_path / "holder.pid"
    body = f"echo from-child; echo $$ > {pid_file}; exec /bin/sleep 300"
    start = HOLDERS[how].format(body=body)
    rb = write_runbook(f"""
        name: leftover
        steps:
          - id: bg
            shell: >-
              echo first; {start}
              while [ ! -s {pid_file} ]; do sleep 0.01; done; echo last
          - id: after
            shell: "echo after"
        """)
    try:
        result = await asyncio.wait_for(start_run(rb, {}, env=env, operator=operator), HANG_GUARD)
        assert result.status == "succeeded", result.error
        steps = get_steps(env.db, result.run_id)
        assert steps[0].output.split() == ["first", "from-child", "last"]
        assert steps[1].output.strip() == "after"
        assert not alive(int(pid_file.read_text())), "the pipe holder outlived its step"
    finally:
        _kill(pid_file)


async def test_a_holder_of_the_stdin_pipe_that_never_reads_does_not_hang_the_step(
    env, operator, write_runbook, tmp_path
):
    """The command exits without reading 3 MB of stdin; a tokenless child keeps the
    pipe open and never reads it: writing the rest of stdin must not block for ever.
    (A background job's stdin is /dev/null unless redirected: hence fd 3.)"""
    from opsconsole.runbooks import start_run

    pid_file = tmp_path / "holder.pid"
    rb = write_runbook(f"""
        name: stdin-holder
        params: {{n: {{type: int, default: 3000000}}}}
        steps:
          - id: bg
            shell:
              command: >-
                exec 3<&0; /usr/bin/env -i /usr/bin/setsid /bin/sh -c 'echo $$ > {pid_file};
                exec /bin/sleep 300' <&3 >/dev/null 2>&1 &
                while [ ! -s {pid_file} ]; do sleep 0.01; done
              stdin: "{{{{ 'y' * n }}}}"
        """)
    try:
        result = await asyncio.wait_for(start_run(rb, {}, env=env, operator=operator), HANG_GUARD)
        assert result.status == "succeeded", result.error
        assert not alive(int(pid_file.read_text())), "the stdin holder outlived its step"
    finally:
        _kill(pid_file)


async def test_an_interrupted_step_ends_a_tokenless_holder_of_its_pipes(
    env, operator, write_runbook, tmp_path
):
    """Ctrl-C (a cancellation) while the command runs: a double-forked holder that
    dropped the token (no longer below the command, no token) is ended too, not left
    running with the step's pipes."""
    from opsconsole.runbooks import start_run

    pid_file = tmp_path / "holder.pid"
    body = f"echo $$ > {pid_file}; exec /bin/sleep 300"
    rb = write_runbook(f"""
        name: interrupted
        steps:
          - id: bg
            shell: >-
              (/usr/bin/env -i /usr/bin/setsid /bin/sh -c '{body}' &) ; sleep 300
        """)
    run = asyncio.ensure_future(start_run(rb, {}, env=env, operator=operator))
    try:
        for _ in range(int(HANG_GUARD / 0.01)):
            if pid_file.exists() and pid_file.read_text().strip():
                break
            await asyncio.sleep(0.01)
        holder = int(pid_file.read_text())
        run.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await asyncio.wait_for(run, HANG_GUARD)
        assert not alive(holder), "the pipe holder outlived its interrupted step"
    finally:
        run.cancel()
        _kill(pid_file)


async def test_pipes_a_holder_keeps_open_are_closed_and_the_output_kept(
    env, operator, write_runbook, tmp_path, monkeypatch
):
    """A holder that cannot be ended (here: one the searches are made blind to, as a
    process of another account would be): the step still ends, with its output."""
    from opsconsole.runbooks import procs, start_run
    from opsconsole.runbooks.state import get_steps

    real = procs.kill_all

    def blind(roots, token, **kw):  # type: ignore[no-untyped-def]
        kw.pop("holding", None)
        kw.pop("scan", None)
        return real(roots, token, **kw)

    monkeypatch.setattr(procs, "kill_all", blind)
    pid_file = tmp_path / "holder.pid"
    body = f"echo from-child; echo $$ > {pid_file}; exec /bin/sleep 300"
    rb = write_runbook(f"""
        name: unkillable
        steps:
          - id: bg
            shell: >-
              echo first; (/usr/bin/env -i /usr/bin/setsid /bin/sh -c '{body}' &) ;
              while [ ! -s {pid_file} ]; do sleep 0.01; done; echo last
        """)
    try:
        result = await asyncio.wait_for(start_run(rb, {}, env=env, operator=operator), HANG_GUARD)
        assert result.status == "succeeded", result.error
        assert get_steps(env.db, result.run_id)[0].output.split() == [
            "first",
            "from-child",
            "last",
        ]
        assert alive(int(pid_file.read_text()))  # blind searches: it was left, not ended
    finally:
        _kill(pid_file)
