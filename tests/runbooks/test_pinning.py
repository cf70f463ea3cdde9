"""Templated sub-runbook names are pinned at the start of a run like literal ones: the
helper a run calls after its approval is the text that was there when it started.

Before: only literal names were pinned, so ``runbook: {name: "deploy-{{ kind }}"}`` ran
whatever the file held when the sub-run began (edited after the approval)."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest

from opsconsole.operator import UnattendedOperator
from opsconsole.runbooks import decide_approval, resume_run, start_run
from tests.test_access import _as, _env, _events, group_member, site

__all__ = ["group_member", "site"]  # fixtures re-used from test_access

PARENT = """\
name: deploy-parent
params:
  kind: {{default: helper}}
steps:
  - {{id: look, shell: "echo helper", check: true}}
  - {{id: child, runbook: {{name: "{name}"}}}}
requires_approval: true
"""
HELPER = "name: deploy-{kind}\nsteps:\n  - {{id: h, shell: '{command}'}}\n"

NAMES = {
    "from-a-param": "deploy-{{ kind }}",
    "from-a-step-output": "deploy-{{ steps.look.stdout }}",
}


def _approved(site: dict[str, Any], name: str) -> tuple[Any, Path]:
    """A parent run calling a templated helper, approved by bob, waiting to resume."""
    from opsconsole.runbooks.loader import load_runbook

    site["policy"].unlink()
    books = site["cfg"] / "runbooks"
    (books / "deploy-parent.yaml").write_text(PARENT.format(name=name))
    (books / "deploy-helper.yaml").write_text(HELPER.format(kind="helper", command="echo ok"))
    rb = load_runbook(books / "deploy-parent.yaml")
    run = asyncio.run(start_run(rb, {}, env=_env(site, "alice"), operator=UnattendedOperator()))
    assert run.status == "waiting_approval", run.error
    decide_approval(site["db"], _as(site, "bob"), run.run_id, approve=True, config=site["config"])
    return run, books


def _resume(site: dict[str, Any], run: Any) -> Any:
    return asyncio.run(
        resume_run(run.run_id, env=_env(site, "alice"), operator=UnattendedOperator())
    )


@pytest.mark.parametrize("how", sorted(NAMES))
def test_a_templated_helper_edited_after_the_approval_does_not_run(
    site: dict[str, Any], tmp_path: Path, how: str
) -> None:
    run, books = _approved(site, NAMES[how])
    marker = tmp_path / "hacked"
    (books / "deploy-helper.yaml").write_text(
        HELPER.format(kind="helper", command=f"touch {marker}")
    )
    done = _resume(site, run)
    assert not marker.exists()
    assert done.status != "succeeded"
    assert "is not the text it was when run" in (done.error or "")
    assert [e["outcome"] for e in _events(site["db"], "runbook.run.tampered")] == ["denied"]


@pytest.mark.parametrize("how", sorted(NAMES))
def test_an_unchanged_templated_helper_runs(site: dict[str, Any], how: str) -> None:
    run, _ = _approved(site, NAMES[how])
    done = _resume(site, run)
    assert done.status == "succeeded", done.error


def test_a_helper_added_after_the_start_is_not_reachable_by_a_template(
    site: dict[str, Any], tmp_path: Path
) -> None:
    """The output names a runbook that did not exist when the run was approved."""
    run, books = _approved(site, "deploy-{{ steps.look.stdout }}-2")
    marker = tmp_path / "hacked"
    (books / "deploy-helper-2.yaml").write_text(
        HELPER.format(kind="helper-2", command=f"touch {marker}")
    )
    done = _resume(site, run)
    assert not marker.exists()
    assert "was not a runbook run" in (done.error or "")
