"""A playbook task's runbook, run through the real runbook engine and linked to the incident."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from opsconsole.config import load_config
from opsconsole.errors import OpsError
from opsconsole.incidents import IncidentError
from opsconsole.incidents.runlink import render_params, run_task_runbook
from opsconsole.operator import UnattendedOperator
from tests.helpers import cli
from tests.incidents.conftest import Clock

runbooks = pytest.importorskip("opsconsole.runbooks.engine", reason="runbook engine not built yet")

PLAYBOOK = """\
name: Linked
category: linked
phases:
  - id: contain
    tasks:
      - id: isolate
        title: Isolate the region
        owner: operations
        runbook:
          name: isolate
          params: {{region: "{{{{ region }}}}", marker: "{marker}"}}
      - id: broken
        title: A runbook that fails
        owner: operations
        runbook: fails
      - id: plain
        title: No runbook here
        owner: operations
"""

ISOLATE = """\
name: isolate
params:
  region: {required: true}
  marker: {required: true}
steps:
  - id: write
    shell: "echo isolated {{ region }} {{ run.incident_id }} > {{ marker }}"
"""

FAILS = """\
name: fails
steps:
  - id: bad
    shell: "echo nope >&2; exit 3"
"""


@pytest.fixture
def linked_config(config_dir: Path, tmp_path: Path) -> Path:
    (config_dir / "runbooks").mkdir()
    (config_dir / "runbooks" / "isolate.yaml").write_text(ISOLATE)
    (config_dir / "runbooks" / "fails.yaml").write_text(FAILS)
    (config_dir / "playbooks").mkdir()
    (config_dir / "playbooks" / "linked.yaml").write_text(
        PLAYBOOK.format(marker=tmp_path / "isolated.txt")
    )
    settings = (config_dir / "settings.yaml").read_text()
    (config_dir / "settings.yaml").write_text(settings + "playbook_dirs: [playbooks]\n")
    return config_dir


def _env(svc: Any) -> Any:
    from opsconsole.runbooks import RunEnv

    return RunEnv(db=svc.db, audit=svc.audit, config=svc.config)


async def test_task_runbook_run_is_linked_to_task_and_timeline(
    linked_config: Path, make_service: Any, tmp_path: Path, clock: Clock
) -> None:
    svc = make_service(cfg=load_config(linked_config))
    inc = svc.declare("isolate Mumbai", severity="SEV2", category="linked", regions=["ap-south-1"])
    svc.task(inc.id, "isolate", "start")
    result = await run_task_runbook(
        svc, inc.id, "isolate", env=_env(svc), operator=UnattendedOperator()
    )
    assert result.status == "succeeded", result.error
    # The runbook really ran, with the incident's region and id.
    assert (tmp_path / "isolated.txt").read_text() == f"isolated ap-south-1 {inc.id}\n"
    task = svc.get(inc.id).task("isolate")
    assert (task.run_id, task.run_status) == (result.run_id, "succeeded")
    # The engine stored the incident on its run.
    from opsconsole.runbooks.state import get_run

    assert get_run(svc.db, result.run_id).incident_id == inc.id
    kinds = [(e.kind, e.text) for e in svc.timeline(inc.id)]
    launch = kinds.index(
        (
            "run.start",
            "runbook isolate launched for task isolate with "
            f"region=ap-south-1, marker={tmp_path / 'isolated.txt'}",
        )
    )
    assert kinds[launch + 1][0] == "run"  # after the launch, whatever the engine audited
    assert (
        kinds[launch + 1][1] == f"runbook isolate run {result.run_id}: succeeded for task isolate"
    )
    report = svc.report(inc.id)
    assert f"| {result.run_id} | isolate | isolate | succeeded |" in report


async def test_failed_run_outcome_is_recorded(linked_config: Path, make_service: Any) -> None:
    svc = make_service(cfg=load_config(linked_config))
    inc = svc.declare("fail", severity="SEV3", category="linked", regions=["ap-south-1"])
    result = await run_task_runbook(
        svc, inc.id, "broken", env=_env(svc), operator=UnattendedOperator()
    )
    assert result.status == "failed"
    task = svc.get(inc.id).task("broken")
    assert task.run_status == "failed"
    run = svc.get(inc.id).runs[0]
    assert (run.run_id, run.status) == (result.run_id, "failed")
    assert "exit status 3" in (run.error or "")


async def test_task_without_runbook_is_refused(linked_config: Path, make_service: Any) -> None:
    svc = make_service(cfg=load_config(linked_config))
    inc = svc.declare("x", severity="SEV3", category="linked")
    with pytest.raises(IncidentError, match="has no runbook"):
        await run_task_runbook(svc, inc.id, "plain", env=_env(svc), operator=UnattendedOperator())


def test_unknown_placeholder_is_a_clear_error(linked_config: Path, make_service: Any) -> None:
    svc = make_service(cfg=load_config(linked_config))
    inc = svc.get(svc.declare("x", severity="SEV3", category="linked").id)
    task = inc.task("isolate")
    task.runbook_params = {"region": "{{ planet }}"}
    with pytest.raises(OpsError, match="unknown placeholder"):
        render_params(task, inc)


def test_cli_task_start_with_run_launches_and_links(linked_config: Path, tmp_path: Path) -> None:
    base = ("--config", str(linked_config))
    declared = cli(
        *base,
        "incident",
        "declare",
        "--title",
        "t",
        "--severity",
        "SEV2",
        "--category",
        "linked",
        "--region",
        "ap-south-1",
    )
    assert declared.exit_code == 0, declared.output
    iid = declared.stdout.split()[1]
    started = cli(*base, "incident", "task", iid, "isolate", "start", "--run", "--yes")
    assert started.exit_code == 0, started.output
    assert "run " in started.stdout and ": succeeded" in started.stdout
    assert (tmp_path / "isolated.txt").read_text() == f"isolated ap-south-1 {iid}\n"
    shown = cli(*base, "incident", "show", iid, "--json")
    import json

    task = next(t for t in json.loads(shown.stdout)["tasks"] if t["id"] == "isolate")
    assert task["run_status"] == "succeeded" and task["run_id"]


def test_cli_task_started_without_run_can_launch_its_runbook_later(
    linked_config: Path, tmp_path: Path
) -> None:
    base = ("--config", str(linked_config), "incident")
    declared = cli(*base, "declare", "--title", "t", "--severity", "SEV2", "--category", "linked")
    iid = declared.stdout.split()[1]
    started = cli(*base, "task", iid, "isolate", "start")  # no tty: it only says how
    assert started.exit_code == 0, started.output
    said = " ".join(started.stdout.split())  # the console wraps long lines
    assert f"opsconsole incident task {iid} isolate start --run" in said
    launched = cli(*base, "task", iid, "isolate", "start", "--run", "--yes")
    assert launched.exit_code == 0, launched.output
    assert ": succeeded" in launched.stdout
    assert (tmp_path / "isolated.txt").exists()
    again = cli(*base, "task", iid, "plain", "start")
    assert cli(*base, "task", iid, "plain", "start", "--run").exit_code == 7, again.output
