"""Who is acting: an identity taken from the system, never typed in.

On a shared host the acting person is the OS account of the process,
``pwd.getpwuid(os.geteuid())`` - not ``$USER``/``$LOGNAME`` (the getpass module's getuser reads
those first, and anyone can set them) and not a command-line flag. The scheduler acts
as the service identity ``scheduler`` (its OS account is recorded beside it). On a
PostgreSQL store (team mode) the acting account is the connection's authenticated
``session_user`` (kind ``database``): a person's identity comes from their own database
credentials (password, client certificate, GSSAPI, peer), and the database itself refuses
audit records and approval decisions in anyone else's name (see :func:`session`).

``--as NAME`` survives only as an *on behalf of* annotation: it is recorded in the audit
details next to the real account and never grants or satisfies anything.
"""

from __future__ import annotations

import contextlib
import grp
import os
import pwd
import weakref
from dataclasses import dataclass
from functools import lru_cache
from typing import Any, Literal

__all__ = [
    "SCHEDULER",
    "DbSession",
    "Identity",
    "account_name",
    "current",
    "groups_of",
    "normalise",
    "os_user",
    "service",
    "session",
]

SCHEDULER = "scheduler"


def os_user() -> str:
    """The account name of the effective uid (``uid-N`` if it has no passwd entry)."""
    uid = os.geteuid()
    try:
        return pwd.getpwuid(uid).pw_name
    except KeyError:
        return f"uid-{uid}"


def account_name(name: str, db: Any = None) -> str:
    """``name`` as an existing account (roles are given to accounts, not to labels): an OS
    account, or on PostgreSQL (``db`` given) a database role that can log in - there the
    session user is who acts, so that is whom a role must name.

    Raises :class:`~opsconsole.errors.NotFoundError` for a name that is neither."""
    from opsconsole.errors import NotFoundError

    clean = name.strip()
    if db is not None and getattr(db, "engine", "sqlite") == "postgresql":
        row = db.execute(
            "SELECT rolname FROM pg_roles WHERE rolname = ? AND rolcanlogin", [clean]
        ).fetchone()
        if row is None:
            raise NotFoundError(
                f"no database role {clean!r} that can log in; on a shared store roles name "
                "database login roles (`opsconsole db init --person NAME`)"
            )
        return str(row[0])
    try:
        return pwd.getpwnam(clean).pw_name
    except KeyError:
        raise NotFoundError(
            f"no account {clean!r} on this host; roles name OS accounts (`getent passwd`)"
        ) from None


def normalise(name: str) -> str:
    """How two account names are compared: ``' ROOT'`` and ``root`` are the same person.

    OS account names are case-sensitive, but nobody should be able to pass a two-person
    check with a case or whitespace variant of the requester's name."""
    return " ".join(name.split()).casefold()


@lru_cache(maxsize=256)
def groups_of(user: str) -> frozenset[str]:
    """The OS groups of ``user`` (primary and supplementary); empty for an unknown name."""
    try:
        entry = pwd.getpwnam(user)
    except KeyError:
        return frozenset()
    out = {g.gr_name for g in grp.getgrall() if user in g.gr_mem}
    with contextlib.suppress(KeyError):
        out.add(grp.getgrgid(entry.pw_gid).gr_name)
    return frozenset(out)


@dataclass(frozen=True)
class Identity:
    """An authenticated actor.

    ``name`` is what the audit log records as ``actor``: the OS account, or the service
    name (``scheduler``) for a service. ``account`` is always the OS account of the
    process. ``on_behalf_of`` is an annotation only."""

    name: str
    account: str
    kind: Literal["os", "service", "database"] = "os"
    on_behalf_of: str | None = None

    @property
    def groups(self) -> frozenset[str]:
        return groups_of(self.account)


@dataclass(frozen=True)
class DbSession:
    """Who a PostgreSQL connection is authenticated as.

    ``user`` is ``session_user`` (``SET ROLE`` changes ``current_user``, never this);
    ``roles`` are every role it is a member of, directly or through groups, itself
    included. ``privileged``: a superuser or a member of the role owning the schema's
    tables - it can drop the database's guards anyway, so they do not bind it (the
    administrator, migrations, the test harness); every other role is held to acting as
    itself."""

    user: str
    roles: frozenset[str]
    privileged: bool


_sessions: weakref.WeakKeyDictionary[Any, DbSession] = weakref.WeakKeyDictionary()


def session(db: Any) -> DbSession | None:
    """The authenticated session of ``db`` on PostgreSQL (None on SQLite); asked once per
    connection."""
    if getattr(db, "engine", "sqlite") != "postgresql":
        return None
    found = _sessions.get(db)
    if found is None:
        row = db.execute(
            "SELECT session_user::text, r.rolsuper OR COALESCE(pg_has_role(session_user, "
            "c.relowner, 'MEMBER'), false), c.oid IS NOT NULL FROM pg_roles r "
            "LEFT JOIN pg_class c ON c.oid = to_regclass('audit_events') "
            "WHERE r.rolname = session_user"
        ).fetchone()
        found = DbSession(user=row[0], roles=database_roles(db, row[0]), privileged=bool(row[1]))
        if row[2]:  # before the schema exists, ownership is not known yet: ask again
            _sessions[db] = found
    return found


def database_roles(db: Any, role: str) -> frozenset[str]:
    """``role`` and every role it is a member of (``pg_has_role(..., 'MEMBER')``: direct or
    through other roles, inheriting or not); empty if no such role exists."""
    rows = db.execute(
        "SELECT r.rolname::text FROM pg_roles r WHERE EXISTS (SELECT 1 FROM pg_roles m "
        "WHERE m.rolname = ?) AND pg_has_role(?, r.oid, 'MEMBER')",
        [role, role],
    ).fetchall()
    return frozenset(r[0] for r in rows)


def current(on_behalf_of: str | None = None, db: Any = None) -> Identity:
    """The acting identity: the session user of a PostgreSQL store ``db``, else this
    process's effective OS account."""
    user = os_user()
    note = (on_behalf_of.strip() if on_behalf_of else None) or None
    dbs = session(db) if db is not None else None
    if dbs is not None:
        return Identity(name=dbs.user, account=user, kind="database", on_behalf_of=note)
    return Identity(name=user, account=user, kind="os", on_behalf_of=note)


def service(name: str = SCHEDULER, db: Any = None) -> Identity:
    """A service identity (the scheduler), recorded with the OS account running it. On
    PostgreSQL a service acts as its own database role: the session user."""
    dbs = session(db) if db is not None else None
    if dbs is not None:
        return Identity(name=dbs.user, account=os_user(), kind="database")
    return Identity(name=name, account=os_user(), kind="service")
