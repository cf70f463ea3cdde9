"""``opsconsole access``: who you are, the access policy in force, and applying a new one."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from opsconsole.cli.state import console, print_json, state

app = typer.Typer(
    help="Identity and access policy: who you are, what you may do, apply access.yaml.",
    no_args_is_help=True,
)

FileArg = Annotated[
    Path | None, typer.Argument(help="An access.yaml (default: the config directory's).")
]


def _file(path: Path | None) -> Path:
    if path is not None:
        return path
    return state.config().directory / "access.yaml"


@app.command("show")
def show(as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False) -> None:
    """Your account, groups and roles, the policy in force, and what you may do."""
    from opsconsole.access import PERMISSIONS, actor_db_roles, can, policy_in_force
    from opsconsole.identity import groups_of

    audit = state.audit()
    record = policy_in_force(audit)
    db_roles = actor_db_roles(audit)
    roles = (
        record.policy.roles_of(audit.actor, service=False, db_roles=db_roles)
        if record is not None
        else ["(default)"]
    )
    allowed = [p for p in PERMISSIONS if can(audit, p)]
    data = {
        "account": audit.actor,
        "on_behalf_of": audit.on_behalf_of,
        "groups": sorted(groups_of(audit.actor) if db_roles is None else db_roles),
        "policy": None
        if record is None
        else {
            "sha256": record.sha256,
            "source": record.source,
            "applied_by": record.applied_by,
            "audit_seq": record.seq,
        },
        "roles": roles,
        "permissions": allowed,
    }
    if as_json:
        print_json(data)
        return
    out = console()
    kind = "groups" if db_roles is None else "database roles"
    out.print(f"account: {audit.actor} ({kind}: {', '.join(data['groups']) or '-'})")  # type: ignore[arg-type]
    if record is None:
        out.print(
            "policy: none applied - the default: every account may do everything, "
            "but nobody approves their own request"
        )
    else:
        out.print(
            f"policy: {record.source} sha256 {record.sha256[:12]} applied by "
            f"{record.applied_by} (audit event {record.seq})"
        )
    out.print(f"roles: {', '.join(roles) or '-'}")
    for name in roles if record is not None else []:
        for g in record.policy.roles[name].grants():  # type: ignore[union-attr]
            scope = ""
            if any(p.startswith("runbook.") for p in g.permissions):
                scope = f" (runbooks {', '.join(g.runbooks)}; {', '.join(g.environments)})"
            out.print(f"  {name}: {', '.join(g.permissions)}{scope}", markup=False)
    out.print("may (unscoped check; runbook grants may be limited to names/environments):")
    for p in PERMISSIONS:
        mark = "yes" if p in allowed else "no "
        out.print(f"  {mark} {p}: {PERMISSIONS[p]}", markup=False)


@app.command("validate")
def validate(path: FileArg = None) -> None:
    """Check an access.yaml; problems are printed as file:line:col: field: message (exit 3)."""
    from opsconsole.access import load_policy_file

    target = _file(path)
    policy = load_policy_file(target)
    typer.echo(f"{target}: OK ({len(policy.roles)} roles)")


@app.command("apply")
def apply(path: FileArg = None) -> None:
    """Make an access.yaml the policy in force for this database (needs access.manage,
    or root); recorded in the audit chain."""
    from opsconsole.access import apply_policy

    target = _file(path)
    record = apply_policy(state.audit(), target)
    typer.echo(f"applied {target} (sha256 {record.sha256[:12]}, audit event {record.seq})")


@app.command("check")
def check(
    permission: Annotated[str, typer.Argument(help="e.g. runbook.approve")],
    user: Annotated[
        str | None, typer.Option("--user", help="Account to check (default: you).")
    ] = None,
    runbook: Annotated[str | None, typer.Option("--runbook", help="Runbook name.")] = None,
    environment: Annotated[
        list[str] | None, typer.Option("--env", help="Environment (repeatable).")
    ] = None,
) -> None:
    """Would the policy in force allow PERMISSION? Exit 0 yes, 8 no (nothing recorded)."""
    from opsconsole.access import PERMISSIONS, can, policy_in_force
    from opsconsole.audit import AuditLog
    from opsconsole.errors import OpsError

    if permission not in PERMISSIONS:
        raise OpsError(
            f"unknown permission {permission!r}; known: {', '.join(PERMISSIONS)}", exit_code=2
        )
    mine = state.audit()
    who = mine
    if user:
        who = AuditLog(mine.db, actor=user, key=mine.key)
        who.actor = user  # evaluated only, never recorded (on PostgreSQL a role name)
    envs = environment or []
    allowed = can(who, permission, runbook=runbook, environments=envs)
    record = policy_in_force(who)
    holders = record.policy.roles_with(permission, runbook, envs) if record else ["(default)"]
    verdict = "allowed" if allowed else "denied"
    typer.echo(f"{who.actor}: {permission} {verdict}; roles that have it: {', '.join(holders)}")
    if not allowed:
        raise typer.Exit(8)
