"""A runbook that needs a second person's approval needs it for a rollback asked for
later too (``runbook rollback``: failing a region back is a change of its own); a
rollback the approved run starts itself (``on_failure: rollback``) is covered by the
run's approval.

Before: ``runbook rollback`` ran the rollback steps of an approval-gated runbook at
once, approved by nobody."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest

from opsconsole.errors import OpsError
from opsconsole.operator import UnattendedOperator
from opsconsole.runbooks import decide_approval, resume_run, rollback_run, start_run
from tests.test_access import _as, _env, group_member, site

__all__ = ["group_member", "site"]  # fixtures re-used from test_access

GATED = """\
name: deploy-gated
params:
  region: {{required: true}}
requires_approval: true
steps:
  - {{id: look, shell: "echo look", check: true}}
  - {{id: change, shell: "echo changed >> {log}"}}
  - {{id: last, shell: "exit {rc}", on_failure: rollback}}
rollback:
  - {{id: undo, undoes: change, shell: "echo undone >> {log}"}}
"""


def _approved_run(site: dict[str, Any], tmp_path: Path, rc: int) -> tuple[Any, Path]:
    """Started by alice, approved by bob, resumed by alice to its end."""
    from opsconsole.runbooks.loader import load_runbook

    site["policy"].unlink()  # the default policy: only the two-person rule
    log = tmp_path / "log"
    path = site["cfg"] / "runbooks" / "deploy-gated.yaml"
    path.write_text(GATED.format(log=log, rc=rc))
    rb = load_runbook(path)
    alice = _env(site, "alice")
    run = asyncio.run(start_run(rb, {"region": "stg-1"}, env=alice, operator=UnattendedOperator()))
    assert run.status == "waiting_approval", run.error
    decide_approval(site["db"], _as(site, "bob"), run.run_id, approve=True, config=site["config"])
    done = asyncio.run(resume_run(run.run_id, env=alice, operator=UnattendedOperator()))
    return done, log


def _step(site: dict[str, Any], run_id: str, step_id: str) -> str:
    row = (
        site["db"]
        .execute("SELECT status FROM run_steps WHERE run_id = ? AND step_id = ?", [run_id, step_id])
        .fetchone()
    )
    return str(row[0])


def test_a_later_rollback_of_a_gated_run_waits_for_a_second_person(
    site: dict[str, Any], tmp_path: Path
) -> None:
    done, log = _approved_run(site, tmp_path, rc=0)
    assert done.status == "succeeded", done.error
    alice = _env(site, "alice")
    asked = asyncio.run(rollback_run(done.run_id, env=alice, operator=UnattendedOperator()))
    assert asked.status == "waiting_approval", asked.error
    assert log.read_text().split() == ["changed"]  # nothing rolled back yet
    with pytest.raises(OpsError):  # the requester cannot approve her own rollback
        decide_approval(site["db"], _as(site, "alice"), done.run_id, approve=True)
    assert (
        asyncio.run(resume_run(done.run_id, env=alice, operator=UnattendedOperator())).status
        == "waiting_approval"
    )
    assert log.read_text().split() == ["changed"]
    decide_approval(site["db"], _as(site, "bob"), done.run_id, approve=True, config=site["config"])
    back = asyncio.run(resume_run(done.run_id, env=alice, operator=UnattendedOperator()))
    assert back.status == "rolled_back", back.error
    assert log.read_text().split() == ["changed", "undone"]
    assert _step(site, done.run_id, "requires-rollback-approval") == "succeeded"


def test_a_rollback_the_approved_run_starts_itself_needs_no_second_approval(
    site: dict[str, Any], tmp_path: Path
) -> None:
    done, log = _approved_run(site, tmp_path, rc=3)
    assert done.status == "rolled_back", done.error
    assert log.read_text().split() == ["changed", "undone"]
    assert _step(site, done.run_id, "requires-rollback-approval") == "skipped"
