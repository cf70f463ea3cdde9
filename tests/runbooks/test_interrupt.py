"""Ctrl-C during a step: the process group is killed, the operator is asked whether to
roll back, and the run ends in a known, recorded state."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from tests.helpers import SRC, opened
from tests.runbooks.test_durability import _step_status, _wait_for

RUNBOOK = """\
name: ctrlc
steps:
  - {{id: first, shell: "echo first >> {d}/log"}}
  - {{id: long, shell: "echo $$ > {d}/long.pid; sleep 60"}}
  - {{id: never, shell: "echo never >> {d}/log"}}
rollback:
  - {{id: undo-first, undoes: first, shell: "echo undo-first >> {d}/log"}}
"""


@pytest.mark.slow
@pytest.mark.parametrize(
    ("answer", "code", "status"), [("y", 12, "rolled_back"), ("n", 14, "interrupted")]
)
def test_ctrl_c_asks_to_roll_back_and_leaves_a_known_state(
    tmp_path: Path, config_dir: Path, db_path: Path, answer: str, code: int, status: str
) -> None:
    from opsconsole.runbooks.locks import pid_alive

    (tmp_path / "rb.yaml").write_text(RUNBOOK.format(d=tmp_path))
    env = dict(os.environ, PYTHONPATH=str(SRC), OPSCONSOLE_DB=str(db_path))
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "opsconsole",
            "--config",
            str(config_dir),
            "runbook",
            "run",
            str(tmp_path / "rb.yaml"),
        ],
        env=env,
        # As in a terminal: SIGINT at its default, whatever earlier tests in this process
        # did to the disposition the child would otherwise inherit (an ignored SIGINT
        # stays ignored across exec, and Python then never raises KeyboardInterrupt).
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        _wait_for(
            lambda: _step_status(db_path, "long") == "running" and (tmp_path / "long.pid").exists(),
            "the long step to run",
        )
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(answer + "\n", timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == code, err
    assert "Roll back" in err
    child = int((tmp_path / "long.pid").read_text())
    assert not pid_alive(child), "the step's process group must be killed"
    with opened(db_path) as conn:
        run_status = conn.execute("SELECT status FROM runs").fetchone()[0]
        steps = dict(conn.execute("SELECT step_id, status FROM run_steps").fetchall())
    assert run_status == status
    assert steps["long"] == "interrupted" and steps["never"] == "pending"
    expected = ["first", "undo-first"] if answer == "y" else ["first"]
    assert (tmp_path / "log").read_text().split() == expected


# --- an interrupt at a precise moment (delivered by a hook, not by timing) ---------------

HOOKED = """\
name: ctrlc-hooked
steps:
  - {{id: first, shell: "echo first >> {d}/log"}}
  - {{id: long, shell: "echo $$ > {d}/long.pid; sleep 3600"}}
  - {{id: never, shell: "echo never >> {d}/log"}}
"""


async def _run_interrupted_at(
    env: Any, tmp_path: Path, write_runbook: Any, signal_name: str | None, arm: Any
) -> tuple[Any, dict[str, str]]:
    """Start the run as its own task (as the CLI does), let ``arm(cancel)`` install the
    hook that cancels it (Ctrl-C: no message; SIGTERM/SIGHUP: the signal's name), and
    return the result and the step states. The last step sleeps an hour: a lost
    interrupt shows as the 60 s bound expiring, not as a flaky margin."""
    import asyncio

    from opsconsole.runbooks import procs, start_run
    from opsconsole.runbooks.state import get_steps
    from tests.runbooks.conftest import ScriptedOperator

    rb = write_runbook(HOOKED.format(d=tmp_path))
    runner = asyncio.ensure_future(
        start_run(rb, {}, env=env, operator=ScriptedOperator(default_answer=False))
    )
    arm(lambda: runner.cancel(signal_name) if signal_name else runner.cancel())
    try:
        result = await asyncio.wait_for(asyncio.shield(runner), 60)
    finally:
        if not runner.done():
            runner.cancel()
            with contextlib.suppress(BaseException):
                await asyncio.wait_for(runner, 10)
        # Whatever happened, nothing of this test may live on (the hour-long sleep).
        (run_id,) = env.db.execute("SELECT id FROM runs").fetchone()
        procs.kill_all([], f"{run_id}/", scan=True)
    steps = {s.step_id: s.status for s in get_steps(env.db, result.run_id)}
    assert not procs.find_by_token(f"{result.run_id}/"), "a step process outlived the run"
    return result, steps


@pytest.mark.slow
@pytest.mark.parametrize("signal_name", [None, "SIGTERM"])
async def test_interrupt_while_the_step_command_is_being_started_is_honoured_at_once(
    env: Any, tmp_path: Path, write_runbook: Any, signal_name: str | None
) -> None:
    """The interrupt lands while asyncio connects the new command's pipes, after the
    command already started a child (the shell forked ``sleep``). asyncio's own clean-up
    kills only the shell and then waits for every holder of the pipes: the run used to
    hang until the step's child ended by itself."""
    import asyncio

    from opsconsole.runbooks import procs

    loop = asyncio.get_running_loop()
    original = loop.connect_read_pipe
    fired: list[int] = []

    def arm(cancel: Any) -> None:
        async def hooked(*args: Any, **kwargs: Any) -> Any:
            row = env.db.execute("SELECT status FROM run_steps WHERE step_id = 'long'").fetchone()
            if not fired and row and row[0] == "running":
                pid_file = tmp_path / "long.pid"
                pid = 0
                for _ in range(3000):  # the shell has written its pid and forked `sleep`
                    if pid_file.exists() and pid_file.read_text().strip():
                        pid = int(pid_file.read_text())
                        if procs.descendants(pid):
                            break
                    await asyncio.sleep(0.01)
                fired.append(pid)
                cancel()
            return await original(*args, **kwargs)

        loop.connect_read_pipe = hooked  # type: ignore[method-assign]

    try:
        result, steps = await _run_interrupted_at(env, tmp_path, write_runbook, signal_name, arm)
    finally:
        del loop.connect_read_pipe
    assert fired, "the hook never saw the long step start"
    assert result.status == "interrupted", result.error
    assert steps == {"first": "succeeded", "long": "interrupted", "never": "pending"}
    assert (signal_name or "the operator") in (result.error or "")
    assert (tmp_path / "log").read_text().split() == ["first"]


@pytest.mark.slow
@pytest.mark.parametrize("signal_name", [None, "SIGTERM"])
async def test_interrupt_while_a_finished_command_is_cleaned_up_is_not_lost(
    env: Any,
    tmp_path: Path,
    write_runbook: Any,
    monkeypatch: pytest.MonkeyPatch,
    signal_name: str | None,
) -> None:
    """The interrupt lands while the engine ends what the `first` command left behind
    (a thread scanning /proc, awaited under a shield): it used to be swallowed there, and
    the run went on into the next step."""
    import asyncio

    from opsconsole.runbooks import procs

    loop = asyncio.get_running_loop()
    real_kill_all = procs.kill_all
    fired: list[str] = []

    def arm(cancel: Any) -> None:
        async def cancel_now() -> None:
            cancel()

        def kill_all(roots: Any, token: Any, **kwargs: Any) -> Any:
            if not fired and token and token.split("/")[1:3] == ["main", "0"] and not roots:
                fired.append(token)
                # On the loop, and finished before this thread goes on: the engine is
                # inside the shielded wait at that moment.
                asyncio.run_coroutine_threadsafe(cancel_now(), loop).result(10)
            return real_kill_all(roots, token, **kwargs)

        monkeypatch.setattr(procs, "kill_all", kill_all)

    result, steps = await _run_interrupted_at(env, tmp_path, write_runbook, signal_name, arm)
    assert fired, "the hook never saw the first step's clean-up"
    assert result.status == "interrupted", result.error
    assert steps["long"] == "pending" and steps["never"] == "pending"
    assert steps["first"] in ("interrupted", "succeeded")
    assert not (tmp_path / "long.pid").exists()
