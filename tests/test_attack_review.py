"""Attacks on the landed identity/access, serve and engine code that the issues did not
list (a review by attack): each test reproduces one and pins the fix.

Uses the in-process two-person scenario of tests/test_access.py (a second person is a
second AuditLog with another actor, as another OS account's CLI builds it)."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import pytest

from opsconsole.errors import OpsError
from opsconsole.operator import UnattendedOperator
from opsconsole.runbooks import decide_approval, resume_run, start_run
from tests.test_access import _as, _env, _events, _run, group_member, site

__all__ = ["group_member", "site"]  # fixtures re-used from test_access


def _marker(tmp_path: Path) -> Path:
    return tmp_path / "hacked"


def test_self_approval_by_editing_requester_and_starter_in_the_tables(
    site: dict[str, Any],
) -> None:
    """A bastion group member can write the tables: renaming the requester and the run's
    starter there must not make the requester "someone else"."""
    site["policy"].unlink()  # default policy: only the two-person rule
    run = _run(site, "alice", "deploy-web", "stg-1")
    db = site["db"]
    db.execute("UPDATE run_approvals SET requested_by = 'mallory' WHERE run_id = ?", [run.run_id])
    db.execute("UPDATE runs SET actor = 'mallory' WHERE id = ?", [run.run_id])
    with pytest.raises(OpsError):
        decide_approval(db, _as(site, "alice"), run.run_id, approve=True, config=site["config"])
    with pytest.raises(OpsError, match="edited after it started"):
        asyncio.run(resume_run(run.run_id, env=_env(site, "alice"), operator=UnattendedOperator()))
    approved = _events(db, "runbook.approval.approved")
    assert [e["outcome"] for e in approved if e["outcome"] == "ok"] == []


def test_self_approval_when_only_the_decision_event_is_fooled(site: dict[str, Any]) -> None:
    """Even if a decision event names someone else as requester (its details come from the
    tables), the engine compares the decider with the requester the chain proves."""
    site["policy"].unlink()
    run = _run(site, "alice", "deploy-web", "stg-1")
    db = site["db"]
    db.execute("UPDATE run_approvals SET requested_by = 'mallory' WHERE run_id = ?", [run.run_id])
    db.execute("UPDATE runs SET actor = 'mallory' WHERE id = ?", [run.run_id])
    from opsconsole.runbooks.approvals import pending_approval

    pending = pending_approval(db, run.run_id)
    assert pending is not None
    # What decide_approval wrote before the fix: a well-formed event from alice herself.
    _as(site, "alice").record(
        "runbook.approval.approved",
        f"{run.run_id}/{pending.step_id}",
        {"requested_by": "mallory", "run_actor": "mallory", "approval_id": pending.id},
    )
    db.execute("UPDATE runs SET actor = 'alice' WHERE id = ?", [run.run_id])
    again = asyncio.run(
        resume_run(run.run_id, env=_env(site, "alice"), operator=UnattendedOperator())
    )
    assert again.status == "waiting_approval"


@pytest.mark.parametrize(
    ("column", "value"),
    [
        ("params", json.dumps({"region": "prd-1"})),
        ("source", None),  # the change step's command is replaced
    ],
)
def test_approved_run_edited_before_resume_does_not_run(
    site: dict[str, Any], tmp_path: Path, column: str, value: str | None
) -> None:
    """An approval is for the run as started: editing its stored params or runbook text
    between the approval and the resume must not run the edited change."""
    site["policy"].unlink()
    run = _run(site, "alice", "deploy-web", "stg-1")
    db = site["db"]
    decide_approval(db, _as(site, "bob"), run.run_id, approve=True, config=site["config"])
    marker = _marker(tmp_path)
    if value is None:
        source = db.execute("SELECT source FROM runs WHERE id = ?", [run.run_id]).fetchone()[0]
        value = source.replace("echo changed", f"touch {marker}")
    db.execute(f"UPDATE runs SET {column} = ? WHERE id = ?", [value, run.run_id])
    with pytest.raises(OpsError, match="edited"):
        asyncio.run(resume_run(run.run_id, env=_env(site, "alice"), operator=UnattendedOperator()))
    assert not marker.exists()
    steps = db.execute(
        "SELECT status FROM run_steps WHERE run_id = ? AND step_id = 'change'", [run.run_id]
    ).fetchone()
    assert steps[0] == "pending"
    [event] = _events(db, "runbook.run.tampered")
    assert event["outcome"] == "denied"
    # The run stays where it was (not claimed by the refused resume).
    status = db.execute("SELECT status FROM runs WHERE id = ?", [run.run_id]).fetchone()[0]
    assert status == "waiting_approval"


PARENT = """\
name: deploy-parent
params:
  region: {required: true}
steps:
  - {id: look, shell: "echo look", check: true}
  - {id: child, runbook: {name: deploy-helper}}
requires_approval: true
"""


def test_sub_runbook_swapped_after_the_approval_does_not_run(
    site: dict[str, Any], tmp_path: Path
) -> None:
    """The approval covers the sub-runbooks the run calls as they were at its start: a
    helper file edited between the approval and the resume is refused, not run."""
    from opsconsole.runbooks.loader import load_runbook

    site["policy"].unlink()
    books = site["cfg"] / "runbooks"
    (books / "deploy-parent.yaml").write_text(PARENT)
    helper = books / "deploy-helper.yaml"
    helper.write_text("name: deploy-helper\nsteps:\n  - {id: h, shell: 'echo helper'}\n")
    rb = load_runbook(books / "deploy-parent.yaml")
    run = asyncio.run(
        start_run(rb, {"region": "stg-1"}, env=_env(site, "alice"), operator=UnattendedOperator())
    )
    assert run.status == "waiting_approval"
    db = site["db"]
    decide_approval(db, _as(site, "bob"), run.run_id, approve=True, config=site["config"])
    marker = _marker(tmp_path)
    helper.write_text(f"name: deploy-helper\nsteps:\n  - {{id: h, shell: 'touch {marker}'}}\n")
    done = asyncio.run(
        resume_run(run.run_id, env=_env(site, "alice"), operator=UnattendedOperator())
    )
    assert not marker.exists()
    assert done.status != "succeeded"
    assert "is not the text it was when run" in (done.error or "")
    assert [e["outcome"] for e in _events(db, "runbook.run.tampered")] == ["denied"]
    # Unchanged, the helper runs as approved.
    helper.write_text("name: deploy-helper\nsteps:\n  - {id: h, shell: 'echo helper'}\n")
    run2 = asyncio.run(
        start_run(rb, {"region": "stg-1"}, env=_env(site, "alice"), operator=UnattendedOperator())
    )
    decide_approval(db, _as(site, "bob"), run2.run_id, approve=True, config=site["config"])
    ok = asyncio.run(
        resume_run(run2.run_id, env=_env(site, "alice"), operator=UnattendedOperator())
    )
    assert ok.status == "succeeded", ok.error


@pytest.mark.parametrize(
    "edit",
    [
        "UPDATE run_steps SET status = 'succeeded' WHERE run_id = ? AND step_id = "
        "'requires-approval'",
        "UPDATE run_steps SET status = 'skipped' WHERE run_id = ? AND step_id = "
        "'requires-approval'",
    ],
)
def test_approval_step_marked_done_in_the_table_does_not_pass_the_gate(
    site: dict[str, Any], tmp_path: Path, edit: str
) -> None:
    """The gate's step row is an ordinary table row: marking it finished there must not
    let a resume go on to the change without an approval the chain proves."""
    site["policy"].unlink()
    run = _run(site, "alice", "deploy-web", "stg-1")
    db = site["db"]
    db.execute(edit, [run.run_id])
    again = asyncio.run(
        resume_run(run.run_id, env=_env(site, "alice"), operator=UnattendedOperator())
    )
    assert again.status == "waiting_approval"
    change = db.execute(
        "SELECT status FROM run_steps WHERE run_id = ? AND step_id = 'change'", [run.run_id]
    ).fetchone()[0]
    assert change == "pending"


def test_own_config_dir_cannot_lend_a_granted_runbook_name(
    site: dict[str, Any], tmp_path: Path, group_member: tuple[str, str]
) -> None:
    """`--config DIR` of one's own with runbooks/deploy-web.yaml (no requires_approval):
    the file is the starter's to change, so it does not run under deploy-web's grants."""
    import os
    import pwd

    from opsconsole.access import AccessDenied
    from opsconsole.config import load_config
    from opsconsole.runbooks.loader import load_runbook
    from tests.test_access import _apply

    _apply(site)
    member = group_member[1]  # in the operators role through its group
    mine = tmp_path / "mine"
    (mine / "runbooks").mkdir(parents=True)
    (mine / "inventory.yaml").write_text((site["cfg"] / "inventory.yaml").read_text())
    marker = _marker(tmp_path)
    (mine / "runbooks" / "deploy-web.yaml").write_text(
        f"name: deploy-web\nparams:\n  region: {{required: true}}\n"
        f"steps:\n  - {{id: change, shell: 'touch {marker}'}}\n"
    )
    uid = pwd.getpwnam(member).pw_uid
    for p in (mine, mine / "runbooks", mine / "runbooks" / "deploy-web.yaml"):
        os.chown(p, uid, -1)
    env = _env(site, member)
    env.config = load_config(mine)
    rb = load_runbook(mine / "runbooks" / "deploy-web.yaml")
    with pytest.raises(AccessDenied, match="runbook file:"):
        asyncio.run(start_run(rb, {"region": "stg-1"}, env=env, operator=UnattendedOperator()))
    assert not marker.exists()
    # The site's own runbook directory (not the member's to change) keeps its name.
    run = asyncio.run(
        start_run(
            load_runbook(site["cfg"] / "runbooks" / "deploy-web.yaml"),
            {"region": "stg-1"},
            env=_env(site, member),
            operator=UnattendedOperator(),
        )
    )
    assert run.status == "waiting_approval"


def test_a_refused_self_approval_does_not_hide_the_real_decision(site: dict[str, Any]) -> None:
    """The requester's refused attempt is recorded under the same action; it must not
    mask (and so revoke) the approval another account gave before it."""
    site["policy"].unlink()
    run = _run(site, "alice", "deploy-web", "stg-1")
    db = site["db"]
    decide_approval(db, _as(site, "bob"), run.run_id, approve=True, config=site["config"])
    from opsconsole.runbooks.approvals import proven_decision

    assert proven_decision(_as(site, "x"), run.run_id, "requires-approval") is not None
    with pytest.raises(OpsError):
        decide_approval(db, _as(site, "alice"), run.run_id, approve=False, config=site["config"])
    # The request is decided now, so that attempt is refused as "not waiting"; her
    # refusal recorded while it was still pending (racing bob's approval) looks like:
    _as(site, "alice").record(
        "runbook.approval.approved",
        f"{run.run_id}/requires-approval",
        {"reason": "self-approval refused"},
        "denied",
    )
    done = asyncio.run(
        resume_run(run.run_id, env=_env(site, "alice"), operator=UnattendedOperator())
    )
    assert done.status == "succeeded", done.error


def test_serve_refuses_a_non_utf8_authorization_header_with_401(tmp_path: Path) -> None:
    """Raw bytes in the bearer token gave a 500 and a traceback, unaudited."""
    import socket

    from opsconsole.store import open_db
    from tests.serve.helpers import Serve, write_config

    db = tmp_path / "serve.db"
    proc = Serve(write_config(tmp_path / "config"), db)
    try:
        host, port = proc.url.removeprefix("http://").split(":")
        with socket.create_connection((host, int(port))) as conn:
            conn.sendall(
                b"GET /metrics HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer \xff\xfe\xfd\r\n"
                b"Connection: close\r\n\r\n"
            )
            reply = b""
            while chunk := conn.recv(65536):
                reply += chunk
        assert reply.startswith(b"HTTP/1.1 401"), reply[:200]
    finally:
        assert proc.stop() == 0
    assert proc.proc.stderr is not None
    assert "Traceback" not in proc.proc.stderr.read()
    rows = (
        open_db(db)
        .execute("SELECT details FROM audit_events WHERE action = 'serve.refused'")
        .fetchall()
    )
    assert [json.loads(r[0])["reason"] for r in rows] == ["wrong token"]


@pytest.mark.parametrize("mode", [0o644, 0o604, 0o620, 0o666])
def test_serve_refuses_a_token_file_other_accounts_can_read_or_replace(
    tmp_path: Path, mode: int
) -> None:
    from tests.helpers import cli
    from tests.serve.helpers import write_config

    token = tmp_path / "token"
    token.write_text("s3cr3t-token-" + "x" * 30)
    token.chmod(mode)
    cfg = write_config(tmp_path / "config")
    result = cli("--config", str(cfg), "serve", "--port", "0", "--token-file", str(token))
    assert result.exit_code == 3, result.output
    assert f"mode {mode:04o} lets other accounts read or replace the token" in result.stderr
    assert "s3cr3t-token" not in result.output + result.stderr


def test_serve_error_log_of_a_malformed_request_masks_the_token(tmp_path: Path) -> None:
    """aiohttp's 400 for a bad header value logged the raw header - the bearer token -
    with a traceback on stderr (journald)."""
    import socket

    from tests.serve.helpers import TOKEN, Serve, write_config

    proc = Serve(write_config(tmp_path / "config"), tmp_path / "serve.db")
    try:
        host, port = proc.url.removeprefix("http://").split(":")
        with socket.create_connection((host, int(port))) as conn:
            conn.sendall(
                b"GET /metrics HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer "
                + TOKEN.encode()
                + b"\x00\r\nConnection: close\r\n\r\n"
            )
            reply = conn.recv(65536)
        assert reply.startswith(b"HTTP/1.0 400") or reply.startswith(b"HTTP/1.1 400"), reply
    finally:
        assert proc.stop() == 0
    assert proc.proc.stderr is not None
    err = proc.proc.stderr.read()
    assert "Error handling request" in err  # still logged, as one line
    assert TOKEN not in err and "Traceback" not in err
