"""The access policy and its one enforcement point.

Every interface (CLI, TUI, scheduler, ``serve``) reaches a protected action through a
capability, and the capability calls::

    authorize(audit, permission, *, target="", runbook=None, environments=())

``audit`` is the caller's :class:`~opsconsole.audit.AuditLog`: its ``actor`` is the
authenticated identity (see :mod:`opsconsole.identity`), its ``db`` the store whose
policy applies. It returns nothing when the actor holds ``permission`` (for that runbook
name and every environment given) and otherwise records the refusal in the audit log
(``outcome: denied``, the missing permission and the roles that have it) and raises
:class:`AccessDenied` (exit code 8).

Where the policy lives: ``config/access.yaml`` is *applied* to a database (automatically
the first time a config with one meets a database without one, later with ``opsconsole
access apply``, which needs ``access.manage`` under the policy in force or ownership of
the database file). The text is stored in the chained audit log (``access.policy.applied``),
and enforcement reads it from there, so neither a private ``--config`` directory nor an
``UPDATE`` of some table changes what is enforced. With no policy applied, the default is:
every account may do everything, but nobody approves their own request (that rule is in
:mod:`opsconsole.runbooks.approvals` and holds under every policy).
"""

from __future__ import annotations

import fnmatch
import hashlib
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from opsconsole.errors import ExitCode, OpsError
from opsconsole.identity import SCHEDULER, groups_of

if TYPE_CHECKING:
    from collections.abc import Callable, Collection, Iterable

    from opsconsole.audit import AuditLog

__all__ = [
    "ENVIRONMENTS",
    "PERMISSIONS",
    "AccessDenied",
    "AccessPolicy",
    "apply_policy",
    "authorize",
    "can",
    "load_policy_file",
    "policy_in_force",
    "proven_event",
    "sync_policy",
]

ENVIRONMENTS: tuple[str, ...] = ("production", "staging", "demo", "test")
Environment = Literal["production", "staging", "demo", "test"]

# permission -> what it allows. Scoped ones also take runbook globs and environments.
PERMISSIONS: dict[str, str] = {
    "runbook.run": "start a runbook (by name or glob) in an environment",
    "runbook.approve": "approve or deny another person's run",
    "runbook.resume-others": "resume a run someone else started",
    "runbook.rollback-others": "roll back a run someone else started",
    "runbook.abort-others": "abort a run someone else started",
    "runbook.unlock-others": "release a run lock held by someone else's run",
    "incident.declare": "declare an incident",
    "incident.command": "status changes and role assignments on any incident (as commander)",
    "incident.close": "close any incident",
    "incident.decide": "record decisions on any incident",
    "drill.manage": "add, edit, remove, record and review drills",
    "scheduler.run": "run the drill scheduler service",
    "ssh.trust": "pin SSH host keys",
    "audit.verify": "verify the audit chain",
    "audit.export": "export the audit log",
    "audit.checkpoint": "write checkpoints of the audit chain",
    "access.manage": "apply a new access policy",
}
SCOPED = frozenset(p for p in PERMISSIONS if p.startswith("runbook."))
POLICY_ACTION = "access.policy.applied"


class AccessDenied(OpsError):
    """The acting account lacks a permission (exit code 8)."""

    exit_code = ExitCode.DENIED


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


def _check_pattern(value: str) -> str:
    if not any(fnmatch.fnmatchcase(p, value) for p in PERMISSIONS):
        known = ", ".join(PERMISSIONS)
        raise ValueError(f"unknown permission {value!r}; known: {known} (globs like incident.*)")
    return value


class Members(_Strict):
    users: list[str] = Field(default_factory=list, description="OS account names")
    groups: list[str] = Field(default_factory=list, description="OS group names")
    services: list[Literal["scheduler"]] = Field(
        default_factory=list, description="service identities, e.g. scheduler"
    )
    database_roles: list[str] = Field(
        default_factory=list,
        description="PostgreSQL roles (team mode): the session user or a role it is a member of",
    )


class Grant(_Strict):
    permissions: list[str] = Field(min_length=1, description="permission names or globs")
    runbooks: list[str] = Field(
        default_factory=lambda: ["*"], description="runbook name globs (runbook.* only)"
    )
    environments: list[Environment] = Field(
        default_factory=lambda: list(ENVIRONMENTS), description="inventory environments"
    )

    @field_validator("permissions")
    @classmethod
    def _known(cls, value: list[str]) -> list[str]:
        return [_check_pattern(v) for v in value]


class Role(_Strict):
    description: str = ""
    members: Members = Field(default_factory=Members)
    allow: list[Annotated[str, Field(description="permission")] | Grant] = Field(
        default_factory=list, description="permissions (names/globs) or scoped grants"
    )

    @field_validator("allow")
    @classmethod
    def _known(cls, value: list[str | Grant]) -> list[str | Grant]:
        for item in value:
            if isinstance(item, str):
                _check_pattern(item)
        return value

    def grants(self) -> Iterable[Grant]:
        for item in self.allow:
            yield Grant(permissions=[item]) if isinstance(item, str) else item


class AccessPolicy(_Strict):
    """``config/access.yaml``: roles, their members and what they may do."""

    roles: dict[str, Role] = Field(default_factory=dict)

    def roles_of(
        self, actor: str, *, service: bool, db_roles: frozenset[str] | None = None
    ) -> list[str]:
        """The policy's roles ``actor`` has. ``db_roles`` (on PostgreSQL: the session user
        and every database role it is a member of) match ``database_roles`` only: there
        the actor is a database role, and OS ``users``/``groups`` name another namespace
        (a role called ``root`` is not the host's root)."""
        # Exact names: OS accounts `Alice` and `alice` are different people, and a
        # grant must never reach a look-alike. (Two-person checks compare the other way,
        # normalised, so a look-alike is never "someone else" either.)
        groups = groups_of(actor) if not service and db_roles is None else frozenset()
        out = []
        for name, role in self.roles.items():
            m = role.members
            if service:
                hit = actor in m.services
            elif db_roles is not None:
                hit = bool(db_roles & set(m.database_roles))
            else:
                hit = actor in m.users or bool(groups & set(m.groups))
            if hit:
                out.append(name)
        return out

    def roles_with(self, permission: str, runbook: str | None, envs: Collection[str]) -> list[str]:
        return [n for n, r in self.roles.items() if _role_allows(r, permission, runbook, envs)]


def _grant_allows(g: Grant, permission: str, runbook: str | None, env: str | None) -> bool:
    if not any(fnmatch.fnmatchcase(permission, p) for p in g.permissions):
        return False
    scoped = permission in SCOPED and runbook is not None
    if scoped and not any(fnmatch.fnmatchcase(str(runbook), pat) for pat in g.runbooks):
        return False
    return env is None or env in g.environments


def _role_allows(role: Role, permission: str, runbook: str | None, envs: Collection[str]) -> bool:
    grants = list(role.grants())
    return all(
        any(_grant_allows(g, permission, runbook, env) for g in grants)
        for env in (list(envs) or [None])
    )


# --- the policy in force ----------------------------------------------------------


@dataclass(frozen=True)
class PolicyRecord:
    policy: AccessPolicy
    sha256: str
    seq: int
    applied_by: str
    source: str


def load_policy_file(path: Path, text: str | None = None) -> AccessPolicy:
    """Parse and validate an access.yaml; problems name file:line:col (exit 3)."""
    from opsconsole.errors import ConfigError, SourceError
    from opsconsole.yamlsource import load_yaml, validate

    try:
        data, marks = load_yaml(path, text)
        return validate(AccessPolicy, data if data is not None else {}, marks)
    except SourceError as exc:
        raise ConfigError(exc.problems) from None


def proven_event(
    audit: AuditLog,
    actions: Iterable[str],
    target: str | None = None,
    where: Callable[[dict[str, Any]], bool] | None = None,
) -> dict[str, Any] | None:
    """The newest event of ``actions`` (on ``target``) whose own hash checks out.

    Decisions the engine acts on are read from here, not from mutable tables: a row
    whose hash does not match its content is an edit and is ignored."""
    from opsconsole.audit import _FIELDS, _digest

    names = list(actions)
    cols = (*_FIELDS, "prev_hash", "hash")
    sql = (
        f"SELECT {', '.join(cols)} FROM audit_events "
        f"WHERE action IN ({', '.join('?' * len(names))})"
    )
    args: list[Any] = list(names)
    if target is not None:
        sql += " AND target = ?"
        args.append(target)
    for row in audit.db.execute(sql + " ORDER BY seq DESC", args).fetchall():
        event = dict(zip(cols, row, strict=True))
        try:
            ok = _digest(event, event["prev_hash"], audit.key) == event["hash"]
        except OpsError:
            ok = False
        if ok:
            event["details"] = json.loads(event["details"] or "{}")
            if where is None or where(event):
                return event
    return None


_cache: dict[tuple[int, str], AccessPolicy] = {}


def policy_in_force(audit: AuditLog) -> PolicyRecord | None:
    """The policy last applied to this database, as the audit chain proves it."""
    event = proven_event(audit, [POLICY_ACTION])
    if event is None:
        if audit.db.execute(
            "SELECT 1 FROM audit_events WHERE action = ? LIMIT 1", [POLICY_ACTION]
        ).fetchone():
            # Fail closed: a policy was applied but no record of it verifies (edited, or
            # a keyed chain read without the key). Never fall back to "allow all".
            raise OpsError(
                "the access policy in force cannot be proven: its audit event does not "
                "verify (edited, or the audit key is missing); run `opsconsole audit verify`, "
                "then have root re-apply config/access.yaml with `opsconsole access apply`",
                exit_code=ExitCode.DENIED,
            )
        return None
    if event["outcome"] != "ok":
        return None
    det = event["details"]
    text = str(det.get("text", ""))
    key = (int(event["seq"]), str(det.get("sha256")))
    if _digest_text(text) != key[1]:
        # Fail closed: a policy whose text does not match its recorded digest is unusable.
        raise OpsError(
            f"the access policy in force (audit event {key[0]}) does not match its digest; "
            "re-apply config/access.yaml with `opsconsole access apply`",
            exit_code=ExitCode.DENIED,
        )
    if key not in _cache:
        _cache[key] = load_policy_file(Path(str(det.get("source", "access.yaml"))), text)
    return PolicyRecord(_cache[key], key[1], key[0], event["actor"], str(det.get("source")))


def _policy_text(path: Path) -> str:
    from opsconsole.errors import ConfigError, SourceError
    from opsconsole.yamlsource import read_source_text

    try:
        return read_source_text(path)
    except SourceError as exc:
        raise ConfigError(exc.problems) from None


def _digest_text(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def apply_policy(audit: AuditLog, path: Path) -> PolicyRecord:
    """Make ``path`` the policy in force: needs ``access.manage`` under the policy in
    force (anyone, by default), or root - the break-glass for a policy that locked out
    its own administrators. (Not the database file's owner: on a bastion that is
    whichever engineer happened to create it.)"""
    text = _policy_text(path)
    load_policy_file(path, text)  # refuse a broken file before anything changes
    if os.geteuid() != 0:
        authorize(audit, "access.manage", target=str(path))
    audit.record(
        POLICY_ACTION,
        str(path),
        {"sha256": _digest_text(text), "text": text, "source": str(path)},
    )
    record = policy_in_force(audit)
    assert record is not None
    return record


def sync_policy(audit: AuditLog, config_dir: Path | None) -> str | None:
    """Called when an interface opens the store with a config directory.

    A config's access.yaml is applied to a database that has no policy yet; if the
    database already has a different one, that one stays in force and the returned
    warning says so."""
    if config_dir is None:
        return None
    path = config_dir / "access.yaml"
    if not path.is_file():
        return None
    current = policy_in_force(audit)
    text = _policy_text(path)
    if current is None:
        apply_policy(audit, path)
        return None
    if current.sha256 != _digest_text(text):
        return (
            f"warning: {path} differs from the access policy in force for this database "
            f"(applied by {current.applied_by} from {current.source}); it is not used. "
            "Apply it with `opsconsole access apply` (needs access.manage)."
        )
    return None


# --- enforcement ------------------------------------------------------------------


def _is_service(audit: AuditLog) -> bool:
    return audit.interface == "scheduler" and audit.actor == SCHEDULER


def actor_db_roles(audit: AuditLog) -> frozenset[str] | None:
    """On PostgreSQL, the database roles the actor holds (itself and every role it is a
    member of, as the server says); None on SQLite."""
    from opsconsole.identity import database_roles, session

    dbs = session(audit.db)
    if dbs is None:
        return None
    return dbs.roles if audit.actor == dbs.user else database_roles(audit.db, audit.actor)


def can(
    audit: AuditLog,
    permission: str,
    *,
    runbook: str | None = None,
    environments: Collection[str] = (),
) -> bool:
    """Whether the actor holds ``permission`` (no audit record; for hiding UI actions)."""
    if permission not in PERMISSIONS:
        raise ValueError(f"unknown permission {permission}")
    record = policy_in_force(audit)
    if record is None:
        return True
    policy = record.policy
    mine = policy.roles_of(audit.actor, service=_is_service(audit), db_roles=actor_db_roles(audit))
    return any(_role_allows(policy.roles[r], permission, runbook, environments) for r in mine)


def authorize(
    audit: AuditLog,
    permission: str,
    *,
    target: str = "",
    runbook: str | None = None,
    environments: Collection[str] = (),
) -> None:
    """The enforcement point: return if allowed, else audit the refusal and raise."""
    if can(audit, permission, runbook=runbook, environments=environments):
        return
    record = policy_in_force(audit)
    assert record is not None
    holders = record.policy.roles_with(permission, runbook, environments)
    scope = []
    if runbook is not None:
        scope.append(f"runbook {runbook}")
    if environments:
        scope.append(f"environment {', '.join(sorted(environments))}")
    where = f" ({'; '.join(scope)})" if scope else ""
    audit.record(
        permission,
        target,
        {
            "missing_permission": permission,
            "runbook": runbook,
            "environments": sorted(environments),
            "roles_with_it": holders,
            "policy_sha256": record.sha256,
        },
        "denied",
    )
    has = f"roles that have it: {', '.join(holders)}" if holders else "no role has it"
    if audit.db.engine == "postgresql":
        has += " (on PostgreSQL a role's members are its database_roles)"
    raise AccessDenied(
        f"{audit.actor} is not allowed to {PERMISSIONS[permission]}{where}: "
        f"missing permission {permission}; {has} (see `opsconsole access show`)"
    )
