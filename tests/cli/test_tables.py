"""Tables piped at 80 columns: region ids and paths are printed whole, never cut or wrapped."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from tests.helpers import cli, cli_subprocess

REPO = Path(__file__).resolve().parents[2]


def test_config_check_piped_keeps_every_region_id_whole(tmp_path: Path) -> None:
    proc = cli_subprocess("--config", str(REPO / "config"), "config", "check", env={"COLUMNS": ""})
    assert proc.returncode == 0, proc.stderr
    assert "…" not in proc.stdout
    rows = {line.split()[0]: line.split() for line in proc.stdout.splitlines()[2:6]}
    assert rows["ap-southeast-1"][-4] == "ap-south-1"  # its standby, in the standby column
    assert rows["ap-south-1"][-4] == "ap-southeast-1"
    assert set(rows) == {"ap-southeast-1", "ap-south-1", "sa-east-1", "eu-central-1"}
    assert max(len(line) for line in proc.stdout.splitlines()) <= 80


def test_runbook_list_never_breaks_a_path(tmp_path: Path) -> None:
    deep = tmp_path / "a-rather-long-directory-name-for-runbooks" / "and-another-level-below"
    deep.mkdir(parents=True)
    shutil.copy(REPO / "runbooks" / "quarantine.yaml", deep / "quarantine-the-payments-svc.yaml")
    cfg = tmp_path / "cfg"
    cfg.mkdir()
    shutil.copy(REPO / "config" / "inventory.yaml", cfg / "inventory.yaml")
    (cfg / "settings.yaml").write_text(f"runbook_dirs: [{deep}]\n")
    for columns in ("80", "40"):
        res = cli("--config", str(cfg), "runbook", "list", env={"COLUMNS": columns})
        assert res.exit_code == 0, res.output
        lines = res.stdout.splitlines()
        path = str(deep / "quarantine-the-payments-svc.yaml")
        assert any(path in line for line in lines), res.stdout
        for shipped in ("regional-failover", "backup-restore", "rotate-api-key"):
            assert any(line.startswith(shipped + " ") for line in lines), (shipped, res.stdout)
            assert any(line.rstrip().endswith(f"runbooks/{shipped}.yaml") for line in lines)


def test_listings_piped_at_80_columns_print_ids_whole(tmp_path: Path) -> None:
    """incident list, runbook runs, audit list and drill list/history: the ids a user
    copies into the next command (INC-..., run ids, drill names, regions) stay on one line."""
    cfg = tmp_path / "cfg"
    shutil.copytree(REPO / "config", cfg)
    base = ("--config", str(cfg))
    env = {"COLUMNS": "80"}
    declared = cli(
        *base,
        "incident",
        "declare",
        "--severity",
        "SEV1",
        "--category",
        "data-breach",
        "--title",
        "card data exposure",
        "--region",
        "eu-central-1",
    )
    assert declared.exit_code == 0, declared.output
    cli(*base, "runbook", "run", "regional-failover", "--var", "region=sa-east-1", "--yes")
    runs = json.loads(cli(*base, "runbook", "runs", "--json").stdout)
    run_id = runs[0]["id"]
    recorded = cli(
        *base,
        "drill",
        "record",
        "payments-tabletop",
        "--participants",
        "a,b",
        "--notes",
        "walked through the payments plan",
    )
    assert recorded.exit_code == 0, recorded.output
    cases = {
        ("incident", "list"): ["INC-2026-0001", "data-breach", "eu-central-1"],
        ("runbook", "runs"): [run_id, "regional-failover"],
        ("audit", "list"): ["incident.declare", "runbook.run.finished", "INC-2026-0001"],
        ("drill", "list"): ["payments-tabletop", "sa-east-1-failover", "payments-bcp"],
        ("drill", "history"): ["payments-tabletop", "payments-bcp"],
        ("notify", "list"): [run_id, "runbook.run_failed", "incident.declared"],
    }
    for command, words in cases.items():
        proc = cli_subprocess(*base, *command, env=env)
        assert proc.returncode == 0, (command, proc.stderr)
        for word in words:
            assert word in proc.stdout, (command, word, proc.stdout)
