"""The bastion: three real OS accounts (requester, approver, outsider) share one database.

Every command runs as a separate process under its account (``runuser -u NAME``); the
interpreter and a world-readable copy of this tree's ``src`` come from
:func:`tests.accounts.shared_python`. The accounts, their group and the shared
directory are made once per session and removed at the end.
"""

from __future__ import annotations

import json
import os
import shutil
import stat
import subprocess
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests import accounts

INVENTORY = """\
regions:
  stg-1: {name: Staging, environment: staging}
  prd-1: {name: Production, environment: production}
"""

RUNBOOK = """\
name: change
params:
  region: {required: true}
requires_approval: true
steps:
  - {id: look, shell: "echo looked", check: true}
  - {id: change, shell: "echo changed {{ region }}"}
"""

POLICY = """\
roles:
  requesters:
    members: {users: [REQ]}
    allow:
      - {permissions: [runbook.run], runbooks: [change]}
      - incident.declare
  approvers:
    members: {groups: [APPROVERS]}
    allow:
      - {permissions: [runbook.approve], runbooks: ["*"], environments: [production, staging]}
"""


@dataclass
class Bastion:
    base: Path
    config: Path
    db: Path
    group: str
    requester: str
    approver: str
    outsider: str
    python: str
    pythonpath: str

    def run(
        self, user: str, *args: str, env: dict[str, str] | None = None
    ) -> subprocess.CompletedProcess[str]:
        """``opsconsole --config CFG ARGS`` as ``user``; ``env`` is set after runuser, so
        it can try to impersonate (LOGNAME/USER)."""
        extra = [f"{k}={v}" for k, v in (env or {}).items()]
        su = [accounts.runuser(), "-u", user, "--"]
        argv = [*su, "env", *extra, self.python, "-m", "opsconsole"]
        return subprocess.run(
            [*argv, "--config", str(self.config), *args],
            capture_output=True,
            text=True,
            cwd=self.base,
            timeout=120,
            env={
                "PATH": "/usr/local/bin:/usr/bin:/bin",
                "PYTHONPATH": self.pythonpath,
                "HOME": str(self.base),
                "LANG": "C.UTF-8",
                "COLUMNS": "200",
            },
        )

    def sql(self, user: str, sql: str) -> None:
        """Edit the shared database directly, as ``user`` (a group member can)."""
        code = (
            "import sqlite3, sys; c = sqlite3.connect(sys.argv[1]); "
            "c.execute(sys.argv[2]); c.commit()"
        )
        done = subprocess.run(
            [accounts.runuser(), "-u", user, "--", self.python, "-c", code, str(self.db), sql],
            capture_output=True,
            text=True,
            cwd=self.base,
        )
        assert done.returncode == 0, done.stderr

    def events(self, action_prefix: str) -> list[dict[str, object]]:
        listed = self.run(
            self.approver, "audit", "list", "--action", action_prefix, "--json", "--limit", "1000"
        )
        assert listed.returncode == 0, listed.stderr
        return json.loads(listed.stdout)  # type: ignore[no-any-return]


@pytest.fixture(scope="session")
def bastion() -> Iterator[Bastion]:
    accounts.require_root()
    group, approvers = accounts.unique("ocbast"), accounts.unique("ocappr")
    req, appr, out = accounts.unique("ocreq"), accounts.unique("ocapp"), accounts.unique("ocout")
    base = Path(tempfile.mkdtemp(prefix="opsconsole-bastion-", dir="/tmp"))
    accounts.add_group(group)
    accounts.add_group(approvers)
    try:
        accounts.add_user(req, [group])
        accounts.add_user(appr, [group, approvers])
        accounts.add_user(out, [group])
        # The shared directory: traversable by all, writable by the team's group, sticky
        # so a member cannot swap the root-owned config/ (and its runbooks) for their own.
        os.chown(base, -1, __import__("grp").getgrnam(group).gr_gid)
        os.chmod(base, 0o3775)
        py = shared_dir = base / "py"
        shared_dir.mkdir()
        env = accounts.shared_python(py, req)
        cfg = base / "config"
        (cfg / "runbooks").mkdir(parents=True)
        (cfg / "inventory.yaml").write_text(INVENTORY)
        db = base / "state" / "ops.db"
        (cfg / "settings.yaml").write_text(f"database: {db}\nshared_group: {group}\n")
        (cfg / "runbooks" / "change.yaml").write_text(RUNBOOK)
        (cfg / "access.yaml").write_text(POLICY.replace("REQ", req).replace("APPROVERS", approvers))
        for root, dirs, files in os.walk(cfg):
            for d in dirs:
                os.chmod(os.path.join(root, d), 0o755)
            for f in files:
                os.chmod(os.path.join(root, f), 0o644)
        os.chmod(cfg, 0o755)
        yield Bastion(base, cfg, db, group, req, appr, out, env.python, env.pythonpath)
    finally:
        for user in (req, appr, out):
            accounts.remove_user(user)
        accounts.remove_group(approvers)
        accounts.remove_group(group)
        shutil.rmtree(base, ignore_errors=True)


def _started(b: Bastion, region: str, *extra: str) -> str:
    result = b.run(b.requester, "runbook", "run", "change", "--var", f"region={region}", *extra)
    assert result.returncode == 13, result.stdout + result.stderr
    runs = json.loads(b.run(b.requester, "runbook", "runs", "--json").stdout)
    return str(runs[0]["id"])


def test_requester_cannot_get_their_change_approved_but_a_second_account_can(
    bastion: Bastion,
) -> None:
    b = bastion
    run_id = _started(b, "prd-1")
    me = b.requester
    # Every disguise of the requester: another name in the environment and in --as,
    # case and space variants of their own name.
    disguises = [
        ({"LOGNAME": b.approver, "USER": b.approver}, ["--as", b.approver]),
        ({"LOGNAME": "ceo", "USER": "ceo", "USERNAME": "ceo"}, ["--as", "ceo"]),
        ({}, ["--as", me.upper()]),
        ({}, ["--as", f" {me}"]),
    ]
    for env, flags in disguises:
        tried = b.run(me, *flags, "runbook", "approve", run_id, env=env)
        assert tried.returncode == 7, tried.stdout + tried.stderr
        assert "cannot approve" in tried.stderr and "--as" not in tried.stderr
    # The outsider is a real other account but lacks the permission.
    outsider = b.run(b.outsider, "runbook", "approve", run_id)
    assert outsider.returncode == 8, outsider.stdout + outsider.stderr
    assert "missing permission runbook.approve; roles that have it: approvers" in outsider.stderr
    # A direct edit of the approvals table approves nothing.
    b.sql(me, f"UPDATE run_approvals SET decision='approved', decided_by='{b.approver}'")
    edited = b.run(me, "runbook", "resume", run_id)
    assert edited.returncode == 13, edited.stdout + edited.stderr
    assert "the table was edited" in edited.stderr
    # The second account with the permission approves; the requester resumes.
    approved = b.run(b.approver, "runbook", "approve", run_id, "--comment", "go")
    assert approved.returncode == 0, approved.stdout + approved.stderr
    done = b.run(me, "runbook", "resume", run_id)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "changed prd-1" in done.stdout + done.stderr

    decisions = [
        (e["actor"], e["outcome"], e["details"].get("on_behalf_of"))  # type: ignore[union-attr]
        for e in b.events("runbook.approval.approved")
        if e["target"] == f"{run_id}/requires-approval"
    ]
    assert decisions == [
        (me, "denied", b.approver),
        (me, "denied", "ceo"),
        (me, "denied", me.upper()),
        (me, "denied", f" {me}"),
        (b.approver, "ok", None),
    ]
    refused = [e for e in b.events("runbook.approve") if e["target"].startswith(run_id)]
    assert [(e["actor"], e["outcome"]) for e in refused] == [(b.outsider, "denied")]
    unproven = [e for e in b.events("runbook.approval.unproven") if e["target"].startswith(run_id)]
    assert [e["actor"] for e in unproven] == [me]
    # Nobody appears under a name they typed: only the three real accounts act here.
    actors = {e["actor"] for e in b.events("runbook.")}
    assert actors <= {b.requester, b.approver, b.outsider}


def test_drill_mode_does_not_auto_approve(bastion: Bastion) -> None:
    b = bastion
    run_id = _started(b, "stg-1", "--drill", "--yes")
    assert not [e for e in b.events("runbook.approval.auto")]
    again = b.run(b.requester, "runbook", "resume", run_id, "--yes")
    assert again.returncode == 13, again.stdout + again.stderr


def test_outsider_is_refused_and_the_refusal_is_audited(bastion: Bastion) -> None:
    b = bastion
    result = b.run(b.outsider, "runbook", "run", "change", "--var", "region=stg-1")
    assert result.returncode == 8, result.stdout + result.stderr
    assert "missing permission runbook.run; roles that have it: requesters" in result.stderr
    apply = b.run(b.requester, "access", "apply")
    assert apply.returncode == 8 and "missing permission access.manage" in apply.stderr
    sched = b.run(b.outsider, "scheduler", "--once")
    assert sched.returncode == 8 and "missing permission scheduler.run" in sched.stderr
    denied = [e for e in b.events("runbook.run") if e["outcome"] == "denied"]
    assert b.outsider in {e["actor"] for e in denied}


def test_shared_database_files_are_group_writable(bastion: Bastion) -> None:
    """While any account has the database open, its WAL and SHM files exist: they, the
    database, its lock file and the directory belong to the group and are writable by
    it, whoever created them (the requester's first command did)."""
    import grp

    b = bastion
    gid = grp.getgrnam(b.group).gr_gid
    state = b.db.parent
    st = state.stat()
    assert st.st_gid == gid and stat.S_IMODE(st.st_mode) == 0o2770
    code = (
        "import json, os, sqlite3, sys; d = sys.argv[1]; c = sqlite3.connect(d + '/ops.db'); "
        "c.execute('SELECT count(*) FROM audit_events').fetchone(); "
        "print(json.dumps({n: [os.stat(os.path.join(d, n)).st_gid, "
        "os.stat(os.path.join(d, n)).st_mode] for n in os.listdir(d)}))"
    )
    done = subprocess.run(
        [accounts.runuser(), "-u", b.outsider, "--", b.python, "-c", code, str(state)],
        capture_output=True,
        text=True,
    )
    assert done.returncode == 0, done.stderr
    files = json.loads(done.stdout)
    assert {"ops.db", "ops.db-wal", "ops.db-shm"} <= set(files), files
    for name, (file_gid, mode) in files.items():
        assert file_gid == gid, name
        assert stat.S_IMODE(mode) & 0o067 == 0o060, (name, oct(mode))
