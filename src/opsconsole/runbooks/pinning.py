"""Sub-runbooks pinned at the start of a run: the text its approval covered.

A run records, in its start event, the SHA-256 of each sub-runbook it may call. A sub-run
started later (after an approval, on a resume) runs only that text; an edited, swapped or
newly added file is refused (``runbook.run.tampered``, denied).

* A literal name is pinned as it resolves at the start.
* A templated name is rendered with what is known at the start (params, vars,
  inventory) and pinned as such.
* A templated name that needs later step outputs cannot be resolved at the start: every
  runbook a bare name could then reach (the parent's directory, then the search path) is
  pinned instead.

With a templated name the set is *closed*: a sub-run whose name was not pinned (a
template that renders differently later, a file added since) is refused too.
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import TYPE_CHECKING, Any

from opsconsole.errors import OpsError
from opsconsole.templating import TemplateRenderError
from opsconsole.templating import render as render_text

if TYPE_CHECKING:
    from opsconsole.runbooks.results import RunEnv
    from opsconsole.runbooks.schema import Runbook

__all__ = ["check_pinned", "pin_sub_runbooks"]

CLOSED = "*closed*"  # a key no runbook name can take (names are file stems or paths)


def digest(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def _reachable(runbook: Runbook, env: RunEnv) -> dict[str, str]:
    """Digest of every runbook a bare name reaches, by name (first match wins, in the
    order :func:`find_sub_runbook` searches)."""
    from opsconsole.runbooks.loader import runbook_dirs

    dirs = [runbook.source.parent] if runbook.source else []
    out: dict[str, str] = {}
    for d in [*dirs, *runbook_dirs(env.config)]:
        try:
            files = sorted(p for p in Path(d).iterdir() if p.suffix in (".yaml", ".yml"))
        except OSError:
            continue
        for path in files:
            if path.stem in out or not path.is_file():
                continue
            try:
                out[path.stem] = digest(path.read_text("utf-8"))
            except (OSError, UnicodeDecodeError):
                continue
    return out


def pin_sub_runbooks(runbook: Runbook, env: RunEnv, tctx: dict[str, Any]) -> dict[str, str]:
    """Name -> SHA-256 of each sub-runbook the run may call, as the run starts (plus the
    :data:`CLOSED` mark when a name is templated). Recorded in the run's start event."""
    from opsconsole.runbooks.loader import find_sub_runbook

    out: dict[str, str] = {}
    names: list[str] = []
    templated = reachable = False
    for step in [*runbook.steps, *runbook.rollback]:
        if step.runbook is None:
            continue
        name = step.runbook.name
        if "{" in name:
            templated = True
            try:
                name = render_text(name, tctx)
            except TemplateRenderError:
                reachable = True  # depends on step outputs: pin every candidate
                continue
        names.append(name)
    if reachable:
        out.update(_reachable(runbook, env))
    for name in names:
        try:
            out[name] = digest(find_sub_runbook(name, runbook, env.config).read_text("utf-8"))
        except (OpsError, OSError, UnicodeDecodeError):
            continue  # not found now: the sub-run step fails with the loader's message
    if templated:
        out[CLOSED] = "1"
    return out


def check_pinned(
    name: str, text: str, source: Any, pinned: dict[str, str], run_id: str
) -> str | None:
    """Why the sub-runbook ``name`` (its ``text``, read from ``source``) may not run
    under the pins of run ``run_id``'s start event; None if it may."""
    if name not in pinned:
        if CLOSED not in pinned:
            return None  # a literal name whose file did not exist at the start
        why = f"was not a runbook run {run_id} could call when it started (and was approved)"
    elif digest(text) != pinned[name]:
        why = f"is not the text it was when run {run_id} started (and was approved)"
    else:
        return None
    return (
        f"sub-runbook {name} ({source}) {why}; the sub-run was not started. "
        "Abort this run and start it again to use the new text"
    )
