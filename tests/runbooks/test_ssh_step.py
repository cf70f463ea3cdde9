"""`ssh` steps against the real loopback sshd (tests/sshd.py)."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest

from opsconsole.runbooks import start_run
from opsconsole.runbooks.state import get_steps


@pytest.fixture
def ssh_env(sshd: Any, tmp_path: Path, db_path: Path) -> Any:
    from opsconsole.audit import AuditLog
    from opsconsole.config import load_config
    from opsconsole.events import EventBus
    from opsconsole.runbooks import RunEnv
    from opsconsole.store import open_db

    cfg = tmp_path / "sshconfig"
    cfg.mkdir()
    empty = tmp_path / "empty_known_hosts"
    empty.write_text("")
    from opsconsole.testing.sshd import write_ed25519_key

    # A pinned key that is not the server's: what a changed (or spoofed) host looks like.
    other = write_ed25519_key(tmp_path / "impostor").split()
    changed = tmp_path / "changed_known_hosts"
    changed.write_text(f"[{sshd.address}]:{sshd.port} {other[0]} {other[1]}\n")
    text = sshd.inventory_yaml([f"h{i:02d}" for i in range(1, 6)])
    text += (
        f"      stranger: {{address: {sshd.address}, port: {sshd.port}, user: {sshd.user}, "
        f"key_file: '{sshd.key_file}', known_hosts: '{empty}'}}\n"
    )
    text += (
        f"      changed: {{address: {sshd.address}, port: {sshd.port}, user: {sshd.user}, "
        f"key_file: '{sshd.key_file}', known_hosts: '{changed}'}}\n"
    )
    (cfg / "inventory.yaml").write_text(text)
    db = open_db(db_path)
    return RunEnv(db=db, audit=AuditLog(db, actor="alice"), config=load_config(cfg), bus=EventBus())


async def test_ssh_step_success_failure_and_fanout(ssh_env, operator, write_runbook):
    rb = write_runbook("""
        name: ssh
        params: {word: {default: "a b; echo INJECTED"}}
        steps:
          - id: one
            ssh: {hosts: h01, command: "echo hello {{ word }}"}
          - id: fan
            ssh: {hosts: sshd, command: ["hostname"], forks: 3}
          - id: bad
            ssh: {hosts: h02, command: "exit 3"}
        """)
    result = await start_run(rb, {}, env=ssh_env, operator=operator)
    assert result.status == "failed"
    steps = {s.step_id: s for s in get_steps(ssh_env.db, result.run_id)}
    assert steps["one"].status == "succeeded"
    assert steps["one"].result["stdout"] == "hello a b; echo INJECTED"
    assert steps["fan"].status == "succeeded"
    assert sorted(steps["fan"].result["hosts"]) == ["h01", "h02", "h03", "h04", "h05"]
    assert all(h["status"] == "ok" for h in steps["fan"].result["hosts"].values())
    assert steps["bad"].status == "failed"
    assert steps["bad"].result["hosts"]["h02"]["rc"] == 3


async def test_ssh_timeout_stops_the_remote_command(ssh_env, operator, write_runbook, tmp_path):
    from opsconsole.runbooks.locks import pid_alive

    pidfile = tmp_path / "remote.pid"
    rb = write_runbook(f"""
        name: sshslow
        steps:
          - id: hang
            timeout: 2
            ssh: {{hosts: h01, command: "echo $$ > {pidfile}; exec sleep 120"}}
        """)
    result = await start_run(rb, {}, env=ssh_env, operator=operator)
    assert result.status == "timed_out", result.error
    pid = int(pidfile.read_text())
    deadline = time.monotonic() + 20
    while pid_alive(pid) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not pid_alive(pid), "the remote command must not outlive the timeout"


async def test_unknown_host_key_is_refused(ssh_env, operator, write_runbook):
    rb = write_runbook("""
        name: sshunknown
        steps:
          - id: hi
            ssh: {hosts: stranger, command: "echo should-not-run"}
        """)
    result = await start_run(rb, {}, env=ssh_env, operator=operator)
    assert result.status == "failed"
    step = get_steps(ssh_env.db, result.run_id)[0]
    assert "should-not-run" not in step.output
    assert "unknown" in (step.error or "").lower() or "host key" in (step.error or "").lower()


async def test_changed_host_key_is_refused(ssh_env, operator, write_runbook):
    rb = write_runbook("""
        name: sshchanged
        steps:
          - id: hi
            ssh: {hosts: changed, command: "echo should-not-run"}
        """)
    result = await start_run(rb, {}, env=ssh_env, operator=operator)
    assert result.status == "failed"
    step = get_steps(ssh_env.db, result.run_id)[0]
    assert "should-not-run" not in step.output
    assert "changed" in (step.error or "").lower() or "does not match" in (step.error or "").lower()


async def test_max_fail_percentage_tolerates_some_failures(ssh_env, operator, write_runbook):
    rb = write_runbook("""
        name: sshpct
        steps:
          - id: some-fail
            ssh:
              hosts: sshd
              forks: 5
              max_fail_percentage: 50
              command: "case $$ in *) test -e /nonexistent-{{ 'x' }} ;; esac"
        """)
    result = await start_run(rb, {}, env=ssh_env, operator=operator)
    # every host fails: 100% > 50% -> failed, with per-host results
    assert result.status == "failed"
    step = get_steps(ssh_env.db, result.run_id)[0]
    assert len(step.result["failed"]) >= 3
