"""``incident show ID --follow`` and ``runbook log RUN --follow``: real processes, another
real process changes the incident or drives the run, on both engines."""

from __future__ import annotations

import os
import queue
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from tests.helpers import SRC, cli_subprocess

pytestmark = pytest.mark.usefixtures("store_engine")

REPO = Path(__file__).resolve().parents[2]


class Follow:
    """A ``--follow`` process whose output lines are collected as they come."""

    def __init__(self, *args: str) -> None:
        env = dict(os.environ, PYTHONPATH=str(SRC), COLUMNS="200")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "opsconsole", *args],
            env=env,
            # As in a terminal: Ctrl-C at its default, whatever this process did to it.
            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        self.lines: list[str] = []
        self._q: queue.Queue[tuple[float, str]] = queue.Queue()
        self.seen_at: dict[str, float] = {}
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self._q.put((time.time(), line.rstrip("\n")))

    def wait_for(self, text: str, timeout: float = 60) -> float:
        """Until a line contains ``text``; returns when that line was read."""
        deadline = time.monotonic() + timeout
        while True:
            for at, line in [(a, ln) for a, ln in self._seen()]:
                if text in line:
                    return at
            left = deadline - time.monotonic()
            if left <= 0 or (self.proc.poll() is not None and self._q.empty()):
                err = self.proc.stderr.read() if self.proc.poll() is not None else ""  # type: ignore[union-attr]
                raise AssertionError(f"{text!r} never came:\n" + "\n".join(self.lines) + err)
            try:
                at, line = self._q.get(timeout=min(left, 0.5))
            except queue.Empty:
                continue
            self.lines.append(line)
            self.seen_at.setdefault(line, at)

    def _seen(self) -> list[tuple[float, str]]:
        return [(self.seen_at[ln], ln) for ln in self.lines]

    def finish(self, timeout: float = 60) -> tuple[int, str]:
        try:
            _, err = self.proc.communicate(timeout=timeout)
        finally:
            if self.proc.poll() is None:
                self.proc.kill()
        return self.proc.returncode, err


def _config(tmp_path: Path) -> Path:
    import shutil

    target = tmp_path / "config"
    shutil.copytree(REPO / "config", target)
    return target


def test_incident_show_follow_streams_another_operators_note(tmp_path: Path, db_path: Any) -> None:
    from opsconsole.audit import AuditLog
    from opsconsole.capabilities import register_all
    from opsconsole.config import load_config
    from opsconsole.incidents import IncidentService
    from opsconsole.store import open_db

    config = _config(tmp_path)
    register_all()
    db = open_db(db_path)
    svc = IncidentService(db, AuditLog(db, actor="root"), load_config(config))
    inc = svc.declare("payments down in Mumbai", severity="SEV2", category="system-failure")
    svc.note(inc.id, "first look: gateway 502s")
    follow = Follow("--config", str(config), "incident", "show", inc.id, "--follow")
    try:
        follow.wait_for("first look: gateway 502s")  # the current state first
        follow.wait_for("following")
        note = cli_subprocess(
            "--config", str(config), "incident", "note", inc.id, "bob: rolling back"
        )
        assert note.returncode == 0, note.stderr
        seen = follow.wait_for("bob: rolling back")
        # From the audit record's timestamp (taken just before its commit) to the line.
        from datetime import datetime

        from opsconsole.audit import query

        noted = next(
            e for e in query(db, action="incident.note") if "rolling back" in str(e["details"])
        )
        at = datetime.fromisoformat(str(noted["ts"])).timestamp()
        print(f"\nnote recorded by another process -> printed by --follow: {seen - at:.3f} s")
        status = cli_subprocess("--config", str(config), "incident", "status", inc.id, "mitigated")
        assert status.returncode == 0, status.stderr
        follow.wait_for("→ mitigated")
        # A note is someone else's text: printed, never interpreted by the terminal.
        hostile = cli_subprocess(
            "--config", str(config), "incident", "note", inc.id, "\x1b]0;owned\x07\x1b[2Jtitle"
        )
        assert hostile.returncode == 0, hostile.stderr
        follow.wait_for("title")
        assert not any("\x1b" in line or "\x07" in line for line in follow.lines)
        follow.proc.send_signal(signal.SIGINT)
        code, err = follow.finish()
    finally:
        if follow.proc.poll() is None:
            follow.proc.kill()
    assert code == 130, err
    assert "Traceback" not in err
    assert follow.lines.count(next(ln for ln in follow.lines if "bob: rolling back" in ln)) == 1


def test_unknown_incident_or_run_with_follow_is_one_line(tmp_path: Path) -> None:
    config = _config(tmp_path)
    shown = cli_subprocess("--config", str(config), "incident", "show", "INC-1999-0001", "-f")
    logged = cli_subprocess("--config", str(config), "runbook", "log", "no-such-run", "-f")
    for result in (shown, logged):
        assert result.returncode not in (0, 1), result.stderr
        assert "Traceback" not in result.stderr
        assert len(result.stderr.strip().splitlines()) == 1, result.stderr


RUNBOOK = """\
name: live-gate
description: Waits for a file, so that another terminal can follow it.
steps:
  - id: hello
    name: Say hello
    shell: ["echo", "hello from the first host"]
  - id: gate
    name: Wait for the go file
    shell: ["sh", "-c", "while [ ! -e {go} ]; do sleep 0.05; done; echo released"]
  - id: bye
    name: Say goodbye
    shell: ["echo", "bye"]
"""


def _until(condition: Callable[[], Any], what: str, timeout: float = 60) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


def test_runbook_log_follow_streams_steps_until_the_run_finishes(
    tmp_path: Path, db_path: Any
) -> None:
    from opsconsole.capabilities import register_all
    from opsconsole.runbooks.state import get_steps, list_runs
    from opsconsole.store import open_db

    config = _config(tmp_path)
    go = tmp_path / "go"
    book = tmp_path / "gate.yaml"
    book.write_text(RUNBOOK.format(go=go))
    env = dict(os.environ, PYTHONPATH=str(SRC))
    runner = subprocess.Popen(
        [sys.executable, "-m", "opsconsole", "--config", str(config), "runbook", "run", str(book)],
        env=env,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    follow: Follow | None = None
    try:
        register_all()
        db = open_db(db_path)
        run_id = _until(lambda: next(iter(r["id"] for r in list_runs(db, limit=5)), None), "run")
        _until(
            lambda: any(
                s.step_id == "gate" and s.status == "running" for s in get_steps(db, run_id)
            ),
            "the gate step to run",
        )
        follow = Follow("--config", str(config), "runbook", "log", run_id, "--follow")
        follow.wait_for("hello from the first host")  # the state so far, with its output
        follow.wait_for("following run")
        go.touch()
        follow.wait_for("released")
        follow.wait_for("bye")
        follow.wait_for(f"run {run_id}: succeeded")
        code, err = follow.finish()  # it ends by itself when the run finishes
        assert code == 0, err
        assert "Traceback" not in err
        assert runner.wait(timeout=60) == 0
    finally:
        for proc in (runner, follow.proc if follow else None):
            if proc is not None and proc.poll() is None:
                proc.kill()
