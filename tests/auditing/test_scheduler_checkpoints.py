"""The scheduler ships signed checkpoints to the witnesses on its own, at the interval in
settings (a real ``opsconsole scheduler`` process)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from opsconsole.auditing.checkpoints import check, load_public_key, parse_checkpoint
from tests.auditing.conftest import INVENTORY
from tests.drills.conftest import wait_for
from tests.drills.test_service import Scheduler, drills_yaml
from tests.helpers import cli_subprocess

pytestmark = pytest.mark.timeout(600)


def test_scheduler_writes_signed_checkpoints_to_the_witness(
    tmp_path: Path, db_path: Path, signing_keys: tuple[Path, Path], witness_dir: Path
) -> None:
    cfg = tmp_path / "cfg"
    cfg.mkdir()
    (cfg / "inventory.yaml").write_text(INVENTORY)
    (cfg / "drills.yaml").write_text(drills_yaml())
    (cfg / "settings.yaml").write_text(
        f"audit:\n  signing_key_file: {signing_keys[0]}\n  public_key_file: {signing_keys[1]}\n"
        f"  checkpoint_interval_seconds: 1\n  witnesses:\n    - dir: {witness_dir}\n"
    )
    s = Scheduler(cfg, tmp_path / "scheduler.log")
    try:
        wait_for(
            lambda: (witness_dir / "checkpoint-00000001.json").exists() or None,
            timeout=240,
            what="a checkpoint from the scheduler",
        )
        # Nothing new, nothing to sign; one more event, one more checkpoint.
        db = db_path
        assert (
            cli_subprocess("--config", str(cfg), "--db", str(db), "audit", "list").returncode == 0
        )
        r = cli_subprocess("--config", str(cfg), "--db", str(db), "audit", "verify")
        assert r.returncode == 0, r.stderr
        wait_for(
            lambda: (witness_dir / "checkpoint-00000002.json").exists() or None,
            timeout=240,
            what="two checkpoints from the scheduler",
        )
    finally:
        assert s.stop() == 0
    latest = parse_checkpoint((witness_dir / "latest.json").read_bytes(), "latest")
    assert check(latest, load_public_key(signing_keys[1])) is None
    first = parse_checkpoint((witness_dir / "checkpoint-00000001.json").read_bytes(), "1")
    second = parse_checkpoint((witness_dir / "checkpoint-00000002.json").read_bytes(), "2")
    assert second.previous == first.digest() and second.seq >= first.seq
    body = json.loads((witness_dir / "latest.json").read_text())
    assert body["signing_key_id"] == latest.signing_key_id
