"""Access checks of the runbook engine: which name and environments a run is checked
against, and the calls into :func:`opsconsole.access.authorize`.

The name a policy's runbook globs match is the runbook's ``name`` when its file lies in
a runbook directory (configured or shipped); an ad-hoc file elsewhere is named
``file:/abs/path.yaml``, so copying a runbook under a harmless ``name`` does not inherit
that name's grants. The environments are those of the inventory regions (and of the
regions of hosts and host groups) that the run's parameters name; a run whose parameters
name no region is checked against every environment of the inventory.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from opsconsole.access import ENVIRONMENTS, authorize
from opsconsole.identity import normalise

if TYPE_CHECKING:
    from opsconsole.config import Config
    from opsconsole.runbooks.results import RunEnv
    from opsconsole.runbooks.schema import Runbook

__all__ = ["check_others", "check_start", "check_unlock", "policy_name", "run_environments"]


def policy_name(
    name: str, path: str | Path | None, config: Config | None, actor: str | None = None
) -> str:
    """The runbook name the policy's globs are matched against.

    With ``actor`` (the account starting the run): a file that account can change - it,
    or a directory above it, is theirs or writable by them - is ``file:/path`` even in
    a runbook directory. Otherwise ``--config DIR`` with a ``runbooks/`` of one's own
    holding a ``regional-failover.yaml`` without ``requires_approval`` would run under the
    grants for the real one, without its approval."""
    from opsconsole.runbooks.loader import runbook_dirs

    if path is None:
        return name
    where = Path(path).resolve()
    for d in runbook_dirs(config):
        try:
            if where.is_relative_to(d.resolve()):
                if actor is not None and _changeable_by(actor, where):
                    break
                return name
        except OSError:
            continue
    return f"file:{where}"


def _changeable_by(account: str, path: Path) -> bool:
    """Whether ``account`` could change the file at ``path``: it owns it or a directory
    above it, or one of them is writable by it (a sticky directory only for its own
    entries). Root, and names without a passwd entry (services), are not checked."""
    import grp
    import os
    import pwd
    import stat

    if account == "root":
        return False
    try:
        pw = pwd.getpwnam(account)
    except KeyError:
        return False
    gids = {pw.pw_gid} | {g.gr_gid for g in grp.getgrall() if account in g.gr_mem}

    def writable(st: os.stat_result) -> bool:
        if st.st_uid == pw.pw_uid:
            return True
        if st.st_gid in gids and st.st_mode & stat.S_IWGRP:
            return True
        return bool(st.st_mode & stat.S_IWOTH)

    child: os.stat_result | None = None
    for node in (path, *path.parents):
        try:
            st = os.stat(node)
        except OSError:
            return True  # cannot tell: do not trust the name
        if st.st_uid == pw.pw_uid:
            return True
        if child is None:
            if writable(st):
                return True
        elif writable(st) and not (st.st_mode & stat.S_ISVTX and child.st_uid != pw.pw_uid):
            return True
        child = st
    return False


def run_environments(config: Config | None, params: dict[str, Any]) -> list[str]:
    """The inventory environments a run with these parameters can touch (without an
    inventory: all of them, so a scoped grant never passes by default)."""
    if config is None:
        return list(ENVIRONMENTS)
    regions = config.inventory.regions
    hit: set[str] = set()
    for value in params.values():
        if not isinstance(value, str):
            continue
        if value in regions:
            hit.add(regions[value].environment)
        for rid, region in regions.items():
            if any(value == alias or value in h.groups for alias, h in region.hosts.items()):
                hit.add(regions[rid].environment)
    if not hit:
        hit = {r.environment for r in regions.values()}
    return sorted(hit)


def check_start(env: RunEnv, rb: Runbook, values: dict[str, Any], run_id: str) -> None:
    """``runbook.run`` for this runbook in every environment its parameters name."""
    authorize(
        env.audit,
        "runbook.run",
        target=run_id,
        runbook=policy_name(rb.name, rb.source, env.config, env.audit.actor),
        environments=run_environments(env.config, values),
    )


def check_others(env: RunEnv, run: Any, permission: str) -> None:
    """``permission`` (e.g. ``runbook.resume-others``) when ``run`` is someone else's."""
    if normalise(run.actor) == normalise(env.audit.actor):
        return
    authorize(
        env.audit,
        permission,
        target=run.id,
        runbook=policy_name(run.runbook, run.path, env.config),
        environments=run_environments(env.config, dict(run.params)),
    )


def check_unlock(db: Any, audit: Any, key: str, config: Config | None) -> None:
    """``runbook.unlock-others`` when the lock's holder run was started by someone else."""
    from opsconsole.runbooks.locks import get_lock
    from opsconsole.runbooks.state import get_run

    held = get_lock(db, key)
    if held is None or normalise(held.actor) == normalise(audit.actor):
        return
    run = get_run(db, held.run_id)
    authorize(
        audit,
        "runbook.unlock-others",
        target=key,
        runbook=policy_name(run.runbook, run.path, config),
        environments=run_environments(config, dict(run.params)),
    )
