"""Who is acting: an identity taken from the system, never typed in.

On a shared host the acting person is the OS account of the process,
``pwd.getpwuid(os.geteuid())`` - not ``$USER``/``$LOGNAME`` (the getpass module's getuser reads
those first, and anyone can set them) and not a command-line flag. The scheduler acts
as the service identity ``scheduler`` (its OS account is recorded beside it). A shared
database server will later add its authenticated session user as a third kind.

``--as NAME`` survives only as an *on behalf of* annotation: it is recorded in the audit
details next to the real account and never grants or satisfies anything.
"""

from __future__ import annotations

import contextlib
import grp
import os
import pwd
from dataclasses import dataclass
from functools import lru_cache
from typing import Literal

__all__ = [
    "SCHEDULER",
    "Identity",
    "account_name",
    "current",
    "groups_of",
    "normalise",
    "os_user",
    "service",
]

SCHEDULER = "scheduler"


def os_user() -> str:
    """The account name of the effective uid (``uid-N`` if it has no passwd entry)."""
    uid = os.geteuid()
    try:
        return pwd.getpwuid(uid).pw_name
    except KeyError:
        return f"uid-{uid}"


def account_name(name: str) -> str:
    """``name`` as an existing OS account (roles are given to accounts, not to labels).

    Raises :class:`~opsconsole.errors.NotFoundError` for a name with no passwd entry."""
    from opsconsole.errors import NotFoundError

    clean = name.strip()
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


def current(on_behalf_of: str | None = None) -> Identity:
    """The identity of this process's effective OS account."""
    user = os_user()
    note = on_behalf_of.strip() if on_behalf_of else None
    return Identity(name=user, account=user, kind="os", on_behalf_of=note or None)


def service(name: str = SCHEDULER) -> Identity:
    """A service identity (the scheduler), recorded with the OS account running it."""
    return Identity(name=name, account=os_user(), kind="service")
