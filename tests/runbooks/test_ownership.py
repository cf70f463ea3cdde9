"""One owner per run, and step processes that never outlive their run: kill -9, SIGTERM,
SIGHUP, racing resumes (real processes), setsid/double-forked children on timeout."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.helpers import SRC, opened
from tests.runbooks.test_durability import _step_status, _wait_for

# The step starts a double-forked setsid child that writes "late" once the test creates
# the file "go" (no timing: the test says when): if the engine does not own it, the child
# is still there to write after the engine is gone.
ESCAPER = """\
name: escaper
steps:
  - id: one
    shell: "echo ran >> {d}/one"
  - id: two
    shell: >-
      (setsid sh -c 'echo $$ > {d}/child.pid;
      while [ ! -e {d}/go ]; do sleep 0.05; done; echo late >> {d}/late' &);
      echo start >> {d}/two; sleep $(cat {d}/delay); echo end >> {d}/two
  - id: three
    shell: "echo ran >> {d}/three"
"""


@pytest.fixture(autouse=True)
def _on_both_engines(store_engine: str) -> str:
    """Every test here runs on SQLite and on PostgreSQL (see ``store_engine``)."""
    return store_engine


def _env(db_path: Path) -> dict[str, str]:
    return dict(os.environ, PYTHONPATH=str(SRC), OPSCONSOLE_DB=str(db_path))


def _popen(config_dir: Path, db_path: Path, *args: str, **kw) -> subprocess.Popen[str]:  # type: ignore[no-untyped-def]
    return subprocess.Popen(
        [sys.executable, "-m", "opsconsole", "--config", str(config_dir), "runbook", *args],
        env=_env(db_path),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        stdin=subprocess.DEVNULL,
        text=True,
        start_new_session=True,
        **kw,
    )


def _start(tmp_path: Path, config_dir: Path, db_path: Path) -> tuple[subprocess.Popen[str], Path]:
    work = tmp_path / "work"
    work.mkdir()
    rb = tmp_path / "escaper.yaml"
    rb.write_text(ESCAPER.format(d=work))
    (work / "delay").write_text("60")  # shortened later through this file, not the run row
    proc = _popen(config_dir, db_path, "run", str(rb), "--yes")
    _wait_for(
        lambda: _step_status(db_path, "two") == "running" and _pid_written(work / "child.pid"),
        "step two and its setsid child to run",
    )
    return proc, work


def _pid_written(path: Path) -> bool:
    """The file exists *and* holds the pid (the shell creates it before writing)."""
    try:
        return path.read_text().strip().isdigit()
    except OSError:
        return False


def _let_children_write(work: Path) -> None:
    """Tell any surviving child to write "late" now, and give it time to (it polls every
    50 ms; a child that is gone writes nothing however long we wait)."""
    (work / "go").touch()
    time.sleep(0.5)


def _child_gone(work: Path) -> bool:
    from opsconsole.runbooks.procs import alive

    return not alive(int((work / "child.pid").read_text()))


def _run_status(db_path: Path) -> tuple[str, str]:
    with opened(db_path) as conn:
        return conn.execute("SELECT id, status FROM runs").fetchone()  # type: ignore[no-any-return]


@pytest.mark.slow
def test_kill_9_of_the_engine_ends_the_steps_processes_before_they_write(
    tmp_path: Path, config_dir: Path, db_path: Path
) -> None:
    proc, work = _start(tmp_path, config_dir, db_path)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait(timeout=10)
    _wait_for(lambda: _child_gone(work), "the setsid child to be ended")
    _let_children_write(work)
    assert not (work / "late").exists(), "a step process outlived the killed engine"
    (work / "go").unlink()
    run_id, status = _run_status(db_path)
    assert status == "running"
    # The run's lock-free state: resume decides about the interrupted step, runs it once.
    (work / "delay").write_text("0")
    res = _popen(config_dir, db_path, "resume", run_id, "--yes")
    _, err = res.communicate(timeout=60)
    assert res.returncode == 0, err
    assert (work / "one").read_text() == "ran\n"
    assert (work / "two").read_text() == "start\nstart\nend\n"
    assert _child_gone(work), "the re-run's setsid child outlived its step"
    _let_children_write(work)
    assert not (work / "late").exists(), "the re-run's setsid child outlived its step"


@pytest.mark.slow
@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGHUP])
def test_sigterm_and_sighup_end_the_step_tree_and_leave_the_run_resumable(
    tmp_path: Path, config_dir: Path, db_path: Path, sig: int
) -> None:
    proc, work = _start(tmp_path, config_dir, db_path)
    proc.send_signal(sig)
    _, err = proc.communicate(timeout=30)
    assert proc.returncode == 14, err
    assert "Traceback" not in err
    assert _child_gone(work), "the setsid child survived the signal"
    _let_children_write(work)
    assert not (work / "late").exists()
    _, status = _run_status(db_path)
    assert status == "interrupted"
    assert _step_status(db_path, "two") == "interrupted"
    assert _step_status(db_path, "three") == "pending"


@pytest.mark.slow
def test_two_racing_resumes_run_the_interrupted_step_once(
    tmp_path: Path, config_dir: Path, db_path: Path
) -> None:
    proc, work = _start(tmp_path, config_dir, db_path)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait(timeout=10)
    run_id, _ = _run_status(db_path)
    (work / "delay").write_text("3")  # long enough that both resumes are alive at once
    racers = [_popen(config_dir, db_path, "resume", run_id, "--yes") for _ in range(2)]
    results = [(r.wait(timeout=90), r.communicate()[1]) for r in racers]
    codes = sorted(code for code, _ in results)
    assert codes == [0, 7], results
    loser = next(err for code, err in results if code == 7)
    assert f"run {run_id} is being resumed by pid" in loser
    assert "since" in loser
    # Exactly one re-run of the interrupted, non-idempotent step; nothing else twice.
    assert (work / "two").read_text() == "start\nstart\nend\n"
    assert (work / "one").read_text() == "ran\n"
    assert (work / "three").read_text() == "ran\n"


async def test_timeout_kills_a_double_forked_setsid_child(env, operator, write_runbook, tmp_path):
    from opsconsole.runbooks import start_run
    from opsconsole.runbooks.procs import alive

    rb = write_runbook(f"""
        name: t
        steps:
          - id: slow
            timeout: 1
            shell: >-
              (setsid sh -c 'echo $$ > {tmp_path}/gc.pid; sleep 30; echo late' &);
              sleep 30
        """)
    result = await start_run(rb, {}, env=env, operator=operator)
    assert result.status == "timed_out"
    assert not alive(int((tmp_path / "gc.pid").read_text()))


def test_lock_is_not_stale_while_a_step_process_of_the_run_lives(env, tmp_path):
    """After the engine died, a leftover step process keeps the lock live; resume ends it."""
    from opsconsole.runbooks.engine import _end_leftovers
    from opsconsole.runbooks.locks import LockInfo
    from opsconsole.runbooks.procs import TOKEN_ENV, alive

    dead = subprocess.Popen(["true"])
    dead.wait()
    leftover = subprocess.Popen(
        ["sleep", "60"], env=dict(os.environ, **{TOKEN_ENV: "R1/main/1/1"}), start_new_session=True
    )
    try:
        import socket

        lock = LockInfo("k", "R1", "alice", dead.pid, socket.gethostname(), "t", None, "running")
        assert not lock.stale
        assert leftover.pid in _end_leftovers("R1")
        leftover.wait(timeout=10)
        assert not alive(leftover.pid)
        assert lock.stale
    finally:
        leftover.kill()


def test_lock_keys_are_normalised(env):
    from opsconsole.runbooks.locks import LockHeld, acquire_lock

    env.db.execute(
        "INSERT INTO runs (id, runbook, path, source, status, actor, started_at, updated_at)"
        " VALUES ('a', 'x', 'p', 's', 'running', 'alice', 't', 't'),"
        " ('b', 'x', 'p', 's', 'running', 'alice', 't', 't')"
    )
    acquire_lock(env.db, env.audit, "db3", "a")
    for other in ("DB3", "db3 ", " \uff44\uff42\uff13"):  # fullwidth: NFKC
        with pytest.raises(LockHeld):
            acquire_lock(env.db, env.audit, other, "b")


def test_a_token_scan_reads_an_empty_environ_again(monkeypatch: pytest.MonkeyPatch) -> None:
    """Between fork and exec /proc/PID/environ can read empty for a moment; a scan that
    took that at face value let a step's just-forked descendant escape its kill."""
    from opsconsole.runbooks import procs

    real = Path.read_bytes
    answers = [b"", b""]

    def flaky(self: Path) -> bytes:
        if self.name == "environ" and answers:
            return answers.pop()
        return real(self)

    child = subprocess.Popen(["sleep", "30"], env={**os.environ, procs.TOKEN_ENV: "run-x/main/0/1"})
    try:
        monkeypatch.setattr(Path, "read_bytes", flaky)
        assert procs.find_by_token("run-x/", among=[child.pid]) == [child.pid]
        assert not answers  # it did read the empty answers, then the real one
    finally:
        child.kill()
        child.wait()
