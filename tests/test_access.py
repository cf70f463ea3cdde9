"""The access policy, its one enforcement point, and the two-person rules, in process.

A second or third person is a second AuditLog with another actor - as the CLI of
another OS account builds it. The same scenarios with real OS accounts and ``runuser``
are in tests/test_identity.py."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from opsconsole.access import AccessDenied, apply_policy, authorize, can, policy_in_force
from opsconsole.audit import AuditLog
from opsconsole.config import load_config
from opsconsole.errors import OpsError
from opsconsole.events import EventBus
from opsconsole.identity import current, os_user
from opsconsole.operator import UnattendedOperator
from opsconsole.runbooks import RunEnv, decide_approval, resume_run, start_run
from opsconsole.runbooks.approvals import ApprovalError, unproven_decisions
from opsconsole.runbooks.loader import load_runbook
from opsconsole.store import open_db
from tests import accounts
from tests.helpers import cli

INVENTORY = """\
regions:
  stg-1: {name: Staging, environment: staging}
  prd-1:
    name: Production
    environment: production
    hosts:
      prd-db-1: {address: 127.0.0.1, groups: [ledger]}
"""

POLICY = """\
roles:
  operators:
    members: {users: [alice], groups: [GROUP]}
    allow:
      - {permissions: [runbook.run], runbooks: ["deploy-*"], environments: [staging]}
      - incident.declare
  approvers:
    members: {users: [bob]}
    allow:
      - {permissions: [runbook.approve], environments: [staging, production]}
  commanders:
    members: {users: [carol]}
    allow: [incident.*, "runbook.*"]
  auditor:
    members: {users: [audra]}
    allow: [audit.verify]
  robot:
    members: {services: [scheduler]}
    allow: [{permissions: [runbook.run], environments: [staging]}]
"""

GATED = """\
name: {name}
params:
  region: {{required: true}}
steps:
  - {{id: look, shell: "echo look", check: true}}
  - {{id: change, shell: "echo changed"}}
requires_approval: true
"""


@pytest.fixture(scope="module")
def group_member() -> Iterator[tuple[str, str]]:
    """A real OS group with a real member (policy `groups:` match real membership)."""
    accounts.require_root()
    group, user = accounts.unique("ocg"), accounts.unique("ocm")
    accounts.add_group(group)
    accounts.add_user(user, [group])
    yield group, user
    accounts.remove_user(user)
    accounts.remove_group(group)


@pytest.fixture
def site(tmp_path: Path, db_path: Path, group_member: tuple[str, str]) -> dict[str, Any]:
    cfg = tmp_path / "config"
    (cfg / "runbooks").mkdir(parents=True)
    (cfg / "inventory.yaml").write_text(INVENTORY)
    for name in ("deploy-web", "wipe-all"):
        (cfg / "runbooks" / f"{name}.yaml").write_text(GATED.format(name=name))
    policy = cfg / "access.yaml"
    policy.write_text(POLICY.replace("GROUP", group_member[0]))
    db = open_db(db_path)
    return {"cfg": cfg, "db": db, "config": load_config(cfg), "policy": policy}


def _as(site: dict[str, Any], actor: str, interface: str = "cli") -> AuditLog:
    return AuditLog(site["db"], actor=actor, interface=interface)  # type: ignore[arg-type]


def _env(site: dict[str, Any], actor: str) -> RunEnv:
    return RunEnv(db=site["db"], audit=_as(site, actor), config=site["config"], bus=EventBus())


def _apply(site: dict[str, Any]) -> None:
    apply_policy(_as(site, os_user()), site["policy"])


def _events(db: Any, action: str) -> list[dict[str, Any]]:
    rows = db.execute(
        "SELECT actor, outcome, details FROM audit_events WHERE action = ? ORDER BY seq", [action]
    ).fetchall()
    return [{"actor": a, "outcome": o, "details": json.loads(d)} for a, o, d in rows]


# --- identity ---------------------------------------------------------------------


def test_identity_is_the_effective_account_not_the_environment(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import pwd

    for var in ("LOGNAME", "USER", "LNAME", "USERNAME"):
        monkeypatch.setenv(var, "ceo")
    real = pwd.getpwuid(__import__("os").geteuid()).pw_name
    assert current().name == real != "ceo"
    assert current("ceo").on_behalf_of == "ceo"
    from opsconsole.audit import os_user as audit_user

    assert audit_user() == real


# --- the policy file --------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "where", "message"),
    [
        ("roles:\n  a:\n    allow: [runbook.fly]\n", ":3:", "unknown permission 'runbook.fly'"),
        (
            "roles:\n  a:\n    allow:\n"
            "      - {permissions: [runbook.run], environments: [prod]}\n",
            ":4:",
            "roles.a.allow",
        ),
        ("roles:\n  a:\n    members: {user: [x]}\n", ":3:", "unknown field"),
        ("roles:\n  a:\n  a:\n", ":3:", "duplicate key"),
    ],
)
def test_broken_policy_names_file_and_line(
    tmp_path: Path, text: str, where: str, message: str
) -> None:
    path = tmp_path / "access.yaml"
    path.write_text(text)
    result = cli("access", "validate", str(path))
    assert result.exit_code == 3, result.output
    assert f"access.yaml{where}" in result.stderr and message in result.stderr
    assert "Traceback" not in result.output


def test_schema_access_is_json_schema() -> None:
    result = cli("schema", "access")
    schema = json.loads(result.stdout)
    assert "roles" in schema["properties"]
    assert "Grant" in schema["$defs"]


def test_shipped_example_policy_is_valid() -> None:
    example = Path(__file__).resolve().parent.parent / "config" / "access.yaml.example"
    result = cli("access", "validate", str(example))
    assert result.exit_code == 0, result.output
    text = example.read_text()
    for role in ("commander", "operations", "communications", "legal", "customer-service"):
        assert f"  {role}:" in text
    assert "  auditor:" in text


# --- allow / deny -----------------------------------------------------------------


@pytest.mark.parametrize(
    ("actor", "permission", "runbook", "envs", "allowed"),
    [
        ("alice", "runbook.run", "deploy-web", ["staging"], True),  # user, glob, env
        ("alice", "runbook.run", "deploy-web", ["production"], False),  # environment
        ("alice", "runbook.run", "wipe-all", ["staging"], False),  # runbook glob
        ("alice", "runbook.run", "deploy-web", ["staging", "production"], False),
        ("alice", "runbook.approve", "deploy-web", ["staging"], False),  # permission
        ("alice", "incident.declare", None, [], True),
        ("alice", "incident.close", None, [], False),
        ("ALICE", "incident.declare", None, [], False),  # look-alike names get nothing
        (" alice", "incident.declare", None, [], False),
        ("bob", "runbook.approve", "wipe-all", ["production"], True),  # role
        ("bob", "runbook.run", "deploy-web", ["staging"], False),
        ("carol", "incident.close", None, [], True),  # permission glob
        ("carol", "runbook.unlock-others", "wipe-all", ["production"], True),
        ("carol", "drill.manage", None, [], False),
        ("audra", "audit.verify", None, [], True),
        ("audra", "audit.export", None, [], False),
        ("nobody-here", "incident.declare", None, [], False),
    ],
)
def test_policy_allows_and_denies(
    site: dict[str, Any],
    actor: str,
    permission: str,
    runbook: str | None,
    envs: list[str],
    allowed: bool,
) -> None:
    _apply(site)
    assert can(_as(site, actor), permission, runbook=runbook, environments=envs) is allowed


def test_group_membership_grants_the_group_role(
    site: dict[str, Any], group_member: tuple[str, str]
) -> None:
    _apply(site)
    member = _as(site, group_member[1])
    assert can(member, "runbook.run", runbook="deploy-x", environments=["staging"])
    assert not can(member, "runbook.run", runbook="deploy-x", environments=["production"])
    assert not can(_as(site, "root"), "runbook.run", runbook="deploy-x", environments=["staging"])


def test_scheduler_service_identity_only_as_the_service(site: dict[str, Any]) -> None:
    _apply(site)
    service = _as(site, "scheduler", "scheduler")
    assert can(service, "runbook.run", runbook="x", environments=["staging"])
    assert not can(service, "runbook.run", runbook="x", environments=["production"])
    # An OS account that happens to be called scheduler is not the service.
    assert not can(_as(site, "scheduler"), "runbook.run", runbook="x", environments=["staging"])


def test_refusal_is_audited_with_missing_permission_and_roles(site: dict[str, Any]) -> None:
    _apply(site)
    with pytest.raises(AccessDenied) as err:
        authorize(
            _as(site, "alice"),
            "runbook.approve",
            target="r1",
            runbook="wipe-all",
            environments=["production"],
        )
    assert err.value.exit_code == 8
    assert "missing permission runbook.approve" in str(err.value)
    assert "roles that have it: approvers, commanders" in str(err.value)
    [event] = _events(site["db"], "runbook.approve")
    assert event["actor"] == "alice" and event["outcome"] == "denied"
    assert event["details"]["missing_permission"] == "runbook.approve"
    assert event["details"]["roles_with_it"] == ["approvers", "commanders"]


def test_default_without_policy_allows_everything(site: dict[str, Any]) -> None:
    assert policy_in_force(_as(site, "x")) is None
    for perm in ("runbook.run", "runbook.approve", "access.manage", "audit.verify"):
        assert can(_as(site, "anyone"), perm, environments=["production"])


def test_cli_refusal_exits_8_naming_permission(site: dict[str, Any]) -> None:
    _apply(site)
    result = cli("--config", str(site["cfg"]), "audit", "verify")
    assert result.exit_code == 8, result.output
    assert "missing permission audit.verify; roles that have it: auditor" in result.stderr


def test_private_config_cannot_replace_the_policy_in_force(
    site: dict[str, Any], tmp_path: Path
) -> None:
    _apply(site)
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "inventory.yaml").write_text(INVENTORY)
    me = os_user()
    (mine / "access.yaml").write_text(
        f"roles:\n  me:\n    members: {{users: [{me}]}}\n    allow: ['*']\n"
    )
    result = cli("--config", str(mine), "audit", "verify")
    assert result.exit_code == 8, result.output
    assert "differs from the access policy in force" in result.stderr


def test_edited_policy_event_is_not_trusted(site: dict[str, Any]) -> None:
    _apply(site)
    db = site["db"]
    db.execute("DROP TRIGGER audit_events_no_update")
    db.execute(
        "UPDATE audit_events SET details = replace(details, 'users: [bob]', 'users: [alice]') "
        "WHERE action = 'access.policy.applied'"
    )
    # The edited event no longer matches its hash: nothing is allowed until root
    # re-applies the policy (fail closed, never "no policy, allow all").
    with pytest.raises(OpsError, match="cannot be proven") as err:
        can(_as(site, "alice"), "runbook.approve")
    assert err.value.exit_code == 8
    _apply(site)  # root's break-glass
    assert not can(_as(site, "alice"), "runbook.approve")
    assert can(_as(site, "bob"), "runbook.approve")


# --- runbooks under the policy ----------------------------------------------------


def _run(site: dict[str, Any], actor: str, name: str, region: str, **kw: Any) -> Any:
    rb = load_runbook(site["cfg"] / "runbooks" / f"{name}.yaml")
    return asyncio.run(
        start_run(
            rb, {"region": region}, env=_env(site, actor), operator=UnattendedOperator(), **kw
        )
    )


def test_run_checked_against_the_environments_its_parameters_name(site: dict[str, Any]) -> None:
    _apply(site)
    assert _run(site, "alice", "deploy-web", "stg-1").status == "waiting_approval"
    with pytest.raises(AccessDenied, match="environment production"):
        _run(site, "alice", "deploy-web", "prd-1")
    with pytest.raises(AccessDenied, match="environment production"):
        _run(site, "alice", "deploy-web", "ledger")  # a host group in production
    with pytest.raises(AccessDenied, match="runbook wipe-all"):
        _run(site, "alice", "wipe-all", "stg-1")
    # A refused run leaves no run behind.
    assert site["db"].execute("SELECT count(*) FROM runs").fetchone()[0] == 1


def test_copied_runbook_file_does_not_inherit_a_granted_name(
    site: dict[str, Any], tmp_path: Path
) -> None:
    _apply(site)
    rogue = tmp_path / "rogue.yaml"
    rogue.write_text(GATED.format(name="deploy-web"))
    rb = load_runbook(rogue)
    with pytest.raises(AccessDenied, match="runbook file:"):
        asyncio.run(
            start_run(
                rb, {"region": "stg-1"}, env=_env(site, "alice"), operator=UnattendedOperator()
            )
        )


def test_approval_needs_permission_and_a_different_account(site: dict[str, Any]) -> None:
    _apply(site)
    run = _run(site, "alice", "deploy-web", "stg-1")
    db, cfg = site["db"], site["config"]
    for me in ("alice", "ALICE", " alice ", "Alice"):
        with pytest.raises(ApprovalError, match="cannot approve"):
            decide_approval(db, _as(site, me), run.run_id, approve=True, config=cfg)
    with pytest.raises(AccessDenied, match=r"missing permission runbook.approve"):
        decide_approval(db, _as(site, "audra"), run.run_id, approve=True, config=cfg)
    decided = decide_approval(db, _as(site, "bob"), run.run_id, approve=True, config=cfg)
    assert decided.decided_by == "bob"
    outcomes = [(e["actor"], e["outcome"]) for e in _events(db, "runbook.approval.approved")]
    assert outcomes == [
        ("alice", "denied"),
        ("ALICE", "denied"),
        (" alice ", "denied"),
        ("Alice", "denied"),
        ("bob", "ok"),
    ]
    assert [e["outcome"] for e in _events(db, "runbook.approve")] == ["denied"]
    done = asyncio.run(
        resume_run(run.run_id, env=_env(site, "alice"), operator=UnattendedOperator())
    )
    assert done.status == "succeeded"


def test_resume_rollback_unlock_of_others_runs_need_permission(site: dict[str, Any]) -> None:
    _apply(site)
    run = _run(site, "alice", "deploy-web", "stg-1")
    op = UnattendedOperator()
    with pytest.raises(AccessDenied, match=r"runbook.resume-others"):
        asyncio.run(resume_run(run.run_id, env=_env(site, "bob"), operator=op))
    # carol holds runbook.*: she may resume it (it keeps waiting for the approval).
    again = asyncio.run(resume_run(run.run_id, env=_env(site, "carol"), operator=op))
    assert again.status == "waiting_approval"


def test_table_edit_of_run_approvals_approves_nothing(site: dict[str, Any]) -> None:
    run = _run(site, "alice", "deploy-web", "stg-1")
    site["db"].execute(
        "UPDATE run_approvals SET decision = 'approved', decided_by = 'bob' WHERE run_id = ?",
        [run.run_id],
    )
    op = UnattendedOperator()
    again = asyncio.run(resume_run(run.run_id, env=_env(site, "alice"), operator=op))
    assert again.status == "waiting_approval"
    assert "the table was edited" in (again.error or "")
    [event] = _events(site["db"], "runbook.approval.unproven")
    assert event["outcome"] == "denied"
    edited = unproven_decisions(_as(site, "x"))
    assert [(a.run_id, a.decision, a.decided_by) for a in edited] == [
        (run.run_id, "approved", "bob")
    ]
    site["policy"].unlink()
    verify = cli("--config", str(site["cfg"]), "audit", "verify")
    assert verify.exit_code == 6, verify.output
    assert f"run_approvals TAMPERED: {run.run_id}/requires-approval says approved" in verify.stderr
    # A real approval still works afterwards (a fresh request was opened).
    decide_approval(site["db"], _as(site, "bob"), run.run_id, approve=True)
    done = asyncio.run(resume_run(run.run_id, env=_env(site, "alice"), operator=op))
    assert done.status == "succeeded"
    # The real decision is backed by the chain; only the edited row is reported.
    assert [a.decided_by for a in unproven_decisions(_as(site, "x"))] == ["bob"]
    assert len(unproven_decisions(_as(site, "x"))) == 1


def test_forged_audit_row_with_wrong_hash_approves_nothing(site: dict[str, Any]) -> None:
    site["policy"].unlink()  # the default policy: only the two-person rule
    run = _run(site, "alice", "deploy-web", "stg-1")
    db = site["db"]
    last = db.execute("SELECT seq, hash FROM audit_events ORDER BY seq DESC LIMIT 1").fetchone()
    db.execute(
        "INSERT INTO audit_events (seq, ts, actor, interface, action, target, details, outcome, "
        "alg, prev_hash, hash) VALUES (?, '2026-01-01T00:00:00.000000Z', 'bob', 'cli', "
        "'runbook.approval.approved', ?, '{}', 'ok', 'sha256', ?, ?)",
        [last[0] + 1, f"{run.run_id}/requires-approval", last[1], "0" * 64],
    )
    db.execute("UPDATE run_approvals SET decision = 'approved' WHERE run_id = ?", [run.run_id])
    again = asyncio.run(
        resume_run(run.run_id, env=_env(site, "alice"), operator=UnattendedOperator())
    )
    assert again.status == "waiting_approval"
    assert cli("audit", "verify").exit_code == 6


def test_drill_mode_does_not_auto_approve(site: dict[str, Any]) -> None:
    # Unattended (scheduler): fails at once, naming the step.
    unattended = _run(site, "alice", "deploy-web", "stg-1", mode="drill")
    assert unattended.status == "failed"
    assert "needs approval at step requires-approval" in (unattended.error or "")
    assert _events(site["db"], "runbook.approval.auto") == []


def test_attended_drill_waits_for_a_second_person_via_cli(site: dict[str, Any]) -> None:
    site["policy"].unlink()  # the default policy: a single engineer may run drills
    rb = str(site["cfg"] / "runbooks" / "deploy-web.yaml")
    cfg = ("--config", str(site["cfg"]))
    result = cli(*cfg, "runbook", "run", rb, "--drill", "--yes", "--var", "region=stg-1")
    assert result.exit_code == 13, result.output
    assert _events(site["db"], "runbook.approval.auto") == []
    run_id = site["db"].execute("SELECT id FROM runs").fetchone()[0]
    self_approve = cli(*cfg, "runbook", "approve", run_id)
    assert self_approve.exit_code == 7
    still = cli(*cfg, "runbook", "resume", run_id, "--yes")
    assert still.exit_code == 13


# --- incidents --------------------------------------------------------------------


def test_commander_only_changes(site: dict[str, Any]) -> None:
    from opsconsole.errors import NotFoundError
    from opsconsole.incidents import IncidentService

    db, cfg = site["db"], site["config"]
    svc = IncidentService(db, _as(site, "alice"), cfg)
    inc = svc.declare("db down", severity="SEV2", category="system-failure")
    assert inc.roles["commander"] == "alice"
    svc.set_status(inc.id, "investigating")  # the commander may
    _apply(site)
    bob = IncidentService(db, _as(site, "bob"), cfg)
    with pytest.raises(AccessDenied, match=r"missing permission incident.command"):
        bob.set_status(inc.id, "mitigated")
    with pytest.raises(AccessDenied, match=r"missing permission incident.decide"):
        bob.decide(inc.id, "notifiable")
    with pytest.raises(AccessDenied, match=r"incident.command"):
        bob.assign(inc.id, "legal", "root")
    carol = IncidentService(db, _as(site, "carol"), cfg)  # incident.* in the policy
    carol.set_status(inc.id, "mitigated")
    with pytest.raises(NotFoundError, match="no account 'lena-nobody'"):
        svc.assign(inc.id, "legal", "lena-nobody")
    svc.assign(inc.id, "commander", "root")
    with pytest.raises(AccessDenied):  # alice handed over: no longer commander
        svc.set_status(inc.id, "resolved")
    denied = _events(db, "incident.command")
    assert {e["actor"] for e in denied} == {"bob", "alice"}


def test_bastion_database_files_are_group_writable(
    tmp_path: Path, group_member: tuple[str, str]
) -> None:
    import os
    import stat

    group = group_member[0]
    cfg = tmp_path / "cfg"
    cfg.mkdir()
    (cfg / "inventory.yaml").write_text(INVENTORY)
    (cfg / "settings.yaml").write_text(f"database: ../shared/ops.db\nshared_group: {group}\n")
    old = os.umask(0o022)
    try:
        result = cli(
            "--config", str(cfg), "--db", str(tmp_path / "shared" / "ops.db"), "incident", "list"
        )
    finally:
        os.umask(old)
    assert result.exit_code == 0, result.output
    import grp

    gid = grp.getgrnam(group).gr_gid
    shared = tmp_path / "shared"
    st = shared.stat()
    assert st.st_gid == gid and stat.S_IMODE(st.st_mode) == 0o2770
    names = sorted(p.name for p in shared.iterdir())
    assert {"ops.db", "ops.db-wal", "ops.db-shm"} <= set(names)
    for p in shared.iterdir():
        mode = stat.S_IMODE(p.stat().st_mode)
        assert p.stat().st_gid == gid, p
        assert mode & 0o060 == 0o060 and mode & 0o007 == 0, (p, oct(mode))


def test_unknown_shared_group_is_a_config_error(tmp_path: Path) -> None:
    cfg = tmp_path / "cfg"
    cfg.mkdir()
    (cfg / "inventory.yaml").write_text(INVENTORY)
    (cfg / "settings.yaml").write_text("shared_group: no-such-group-xyz\n")
    result = cli("--config", str(cfg), "incident", "list")
    assert result.exit_code == 3
    assert "no OS group 'no-such-group-xyz'" in result.stderr


def test_access_check_answers_for_another_account(site: dict[str, Any]) -> None:
    cfg = ("--config", str(site["cfg"]))
    yes = cli(
        *cfg,
        "access",
        "check",
        "runbook.run",
        "--user",
        "alice",
        "--runbook",
        "deploy-web",
        "--env",
        "staging",
    )
    assert yes.exit_code == 0, yes.output
    assert "alice: runbook.run allowed" in yes.stdout
    no = cli(
        *cfg,
        "access",
        "check",
        "runbook.run",
        "--user",
        "alice",
        "--runbook",
        "deploy-web",
        "--env",
        "production",
    )
    assert no.exit_code == 8
    assert "roles that have it: commanders" in no.stdout
    assert cli(*cfg, "access", "check", "runbook.fly").exit_code == 2


def test_scheduler_records_its_service_identity_and_os_account(site: dict[str, Any]) -> None:
    site["policy"].unlink()
    result = cli("--config", str(site["cfg"]), "--as", "bob", "scheduler", "--once")
    assert result.exit_code == 0, result.output
    [start] = _events(site["db"], "scheduler.start")
    assert start["actor"] == "scheduler"
    assert start["details"]["os_user"] == os_user()
    assert start["details"]["on_behalf_of"] == "bob"


def test_access_show_names_account_roles_and_policy(site: dict[str, Any]) -> None:
    me = os_user()
    site["policy"].write_text(
        site["policy"].read_text().replace("users: [audra]", f"users: [{me}]")
    )
    result = cli("--config", str(site["cfg"]), "--as", "ceo", "access", "show", "--json")
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert data["account"] == me and data["on_behalf_of"] == "ceo"
    assert data["roles"] == ["auditor"]
    assert data["permissions"] == ["audit.verify"]
    assert data["policy"]["sha256"]
    text = cli("--config", str(site["cfg"]), "access", "show")
    assert "auditor: audit.verify" in text.stdout


def test_serve_with_the_scheduler_needs_scheduler_run(site: dict[str, Any], tmp_path: Path) -> None:
    token = tmp_path / "token"
    token.write_text("t" * 40)
    token.chmod(0o600)
    result = cli(
        "--config", str(site["cfg"]), "serve", "--scheduler", "--port", "0",
        "--token-file", str(token),
    )  # fmt: skip
    assert result.exit_code == 8, result.output
    assert "missing permission scheduler.run" in result.stderr


def test_unlocking_anothers_run_lock_needs_permission(site: dict[str, Any]) -> None:
    from opsconsole.runbooks.locks import release_lock

    text = GATED.format(name="deploy-locked") + 'lock: "deploy:{{ region }}"\n'
    (site["cfg"] / "runbooks" / "deploy-locked.yaml").write_text(text)
    _apply(site)
    run = _run(site, "alice", "deploy-locked", "stg-1")
    assert run.status == "waiting_approval"
    db, cfg = site["db"], site["config"]
    with pytest.raises(AccessDenied, match=r"missing permission runbook\.unlock-others"):
        release_lock(db, _as(site, "bob"), "deploy:stg-1", force=True, config=cfg)
    held = release_lock(db, _as(site, "carol"), "deploy:stg-1", force=True, config=cfg)
    assert held.run_id == run.run_id


def test_aborting_anothers_run_needs_permission(site: dict[str, Any]) -> None:
    from opsconsole.runbooks import abort_run

    _apply(site)
    run = _run(site, "alice", "deploy-web", "stg-1")
    with pytest.raises(AccessDenied, match=r"missing permission runbook\.abort-others"):
        abort_run(run.run_id, env=_env(site, "bob"))
    [event] = _events(site["db"], "runbook.abort-others")
    assert (event["actor"], event["outcome"]) == ("bob", "denied")
    assert abort_run(run.run_id, env=_env(site, "carol")).status == "aborted"
