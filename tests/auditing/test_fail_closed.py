"""Fail closed, the same way, in every command group: a read-only (immutable) database
file or a full disk gives exit 5, one line, no traceback, and changes nothing."""

from __future__ import annotations

import contextlib
import shutil
import sqlite3
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.auditing.conftest import INVENTORY
from tests.helpers import cli_subprocess, opened

RUNBOOK = """\
name: quick
steps:
  - id: touch
    shell: ["touch", "{marker}"]
"""


def _config(base: Path) -> Path:
    cfg = base / "cfg"
    (cfg / "runbooks").mkdir(parents=True)
    (cfg / "inventory.yaml").write_text(INVENTORY)
    (cfg / "settings.yaml").write_text("runbook_dirs: [runbooks]\n")
    (cfg / "runbooks" / "quick.yaml").write_text(RUNBOOK.format(marker=base / "ran.marker"))
    return cfg


def _run(cfg: Path, db: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return cli_subprocess("--config", str(cfg), "--db", str(db), *args, timeout=120)


def _prepare(cfg: Path, db: Path) -> str:
    """An incident and a drill to note/record against; returns the incident id."""
    r = _run(
        cfg,
        db,
        "incident",
        "declare",
        "--title",
        "t",
        "--severity",
        "SEV3",
        "--category",
        "system-failure",
    )
    assert r.returncode == 0, r.stderr
    incident = r.stdout.split()[1]
    r = _run(cfg, db, "drill", "add", "d1", "--plan", "p", "--kind", "tabletop", "--owner", "o")
    assert r.returncode == 0, r.stderr
    return incident


def _commands(cfg: Path, incident: str) -> dict[str, list[str]]:
    return {
        "incident declare": [
            "incident",
            "declare",
            "--title",
            "x",
            "--severity",
            "SEV2",
            "--category",
            "system-failure",
        ],
        "incident note": ["incident", "note", incident, "a note"],
        "runbook run": ["runbook", "run", "quick", "--yes"],
        "drill add": ["drill", "add", "d2", "--plan", "p", "--kind", "tabletop", "--owner", "o"],
        "drill record": ["drill", "record", "d1", "--participants", "a,b", "--notes", "n"],
        "audit checkpoint": ["audit", "checkpoint", "--out", str(cfg / "cp.json")],
    }


def _snapshot(db: Path, cfg: Path) -> tuple[object, ...]:
    with opened(db) as conn:
        counts = tuple(
            conn.execute(f"SELECT count(*) FROM {t}").fetchone()[0]
            for t in ("audit_events", "incidents", "incident_events", "runs", "drill_runs")
        )
    drills = (cfg / "drills.yaml").read_text() if (cfg / "drills.yaml").exists() else ""
    return counts, drills, (cfg / "cp.json").exists(), (cfg.parent / "ran.marker").exists()


def _assert_failed_closed(result: subprocess.CompletedProcess[str], name: str) -> None:
    assert result.returncode == 5, (name, result.returncode, result.stderr)
    assert "Traceback" not in result.stderr, (name, result.stderr)
    lines = [ln for ln in result.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: "), (name, result.stderr)


@contextlib.contextmanager
def _immutable(path: Path) -> Iterator[None]:
    subprocess.run(["chattr", "+i", str(path)], check=True)
    try:
        yield
    finally:
        subprocess.run(["chattr", "-i", str(path)], check=True)


@contextlib.contextmanager
def _read_only(db: Path) -> Iterator[None]:
    """The whole database read-only for every new session: an immutable SQLite file
    (``chattr +i``, its WAL checkpointed first), or a PostgreSQL database whose
    transactions are read-only (as on a hot standby, or for a role without write grants)."""
    if isinstance(db, str):
        with opened(db) as conn:
            name = conn.execute("SELECT current_database()").fetchone()[0]
            conn.execute(f'ALTER DATABASE "{name}" SET default_transaction_read_only = on')
        try:
            yield
        finally:
            with opened(db) as conn:
                conn.execute("SET default_transaction_read_only = off")  # this session only
                conn.execute(f'ALTER DATABASE "{name}" RESET default_transaction_read_only')
        return
    conn = sqlite3.connect(db)
    conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    conn.close()
    with _immutable(db):
        yield


def test_readonly_database_fails_closed_in_every_command_group(
    tmp_path: Path, db_path: Path
) -> None:
    cfg, db = _config(tmp_path), db_path
    incident = _prepare(cfg, db)
    before = _snapshot(db, cfg)
    with _read_only(db):
        for name, args in _commands(cfg, incident).items():
            _assert_failed_closed(_run(cfg, db, *args), name)
        # Reading still works on the read-only database, and says it was not recorded.
        r = _run(cfg, db, "audit", "verify")
        assert r.returncode == 0 and "not recorded" in r.stdout, r.stdout + r.stderr
        out = cfg.parent / "export.jsonl"
        r = _run(cfg, db, "audit", "export", "--action", "drill.", "--out", str(out))
        assert r.returncode == 0, r.stderr
        assert len(out.read_text().splitlines()) == 1  # drill.add only
        r = _run(cfg, db, "audit", "list", "--json")
        assert r.returncode == 0 and '"drill.add"' in r.stdout, r.stderr
    assert _snapshot(db, cfg) == before


@pytest.fixture
def full_tmpfs(tmp_path: Path) -> Iterator[Path]:
    mnt = tmp_path / "tmpfs"
    mnt.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=4m", "tmpfs", str(mnt)], check=True)
    try:
        yield mnt
    finally:
        subprocess.run(["umount", "-l", str(mnt)], check=False)


def _fill(mnt: Path) -> Path:
    import os

    filler = mnt / "filler"
    fd = os.open(filler, os.O_WRONLY | os.O_CREAT)
    try:
        with contextlib.suppress(OSError):
            while True:
                os.write(fd, b"\0" * 4096)
    finally:
        os.close(fd)
    return filler


@pytest.mark.sqlite_only  # a full file system under the SQLite file and its WAL
@pytest.mark.parametrize("wal_open", [True, False], ids=["writing", "opening"])
def test_full_disk_fails_closed_in_every_command_group(full_tmpfs: Path, wal_open: bool) -> None:
    cfg, db = _config(full_tmpfs), full_tmpfs / "ops.db"
    incident = _prepare(cfg, db)
    # Held open, this connection keeps the -wal and -shm files in place (emptied), so the
    # commands open the database fine and fail when a write needs space.
    # Without it, opening the database already fails (no room for -wal/-shm).
    holder = sqlite3.connect(db)
    holder.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    if not wal_open:
        holder.close()
    before = _snapshot(db, cfg)
    filler = _fill(full_tmpfs)
    try:
        for name, args in _commands(cfg, incident).items():
            _assert_failed_closed(_run(cfg, db, *args), name)
    finally:
        filler.unlink()
        holder.close()
    assert _snapshot(db, cfg) == before
    leftovers = [p.name for p in cfg.iterdir() if p.name.startswith(".drills-")]
    assert leftovers == []
    # With space again, the same commands work.
    assert _run(cfg, db, *_commands(cfg, incident)["drill add"]).returncode == 0


def test_checkpoint_does_not_create_directories_or_record_before_writing(
    tmp_path: Path, db_path: Path
) -> None:
    cfg, db = _config(tmp_path), db_path
    _prepare(cfg, db)
    before = _snapshot(db, cfg)
    r = _run(cfg, db, "audit", "checkpoint", "--out", str(tmp_path / "nonexistent" / "cp.json"))
    assert r.returncode == 1 and "does not exist" in r.stderr and "Traceback" not in r.stderr
    assert not (tmp_path / "nonexistent").exists()
    assert _snapshot(db, cfg) == before  # no audit.checkpoint "ok" for a file never written


DRILL_WORKER = """
import sys
from tests.helpers import cli_subprocess, opened
cfg, db, who = sys.argv[1], sys.argv[2], sys.argv[3]
for i in range(8):
    r = cli_subprocess("--config", cfg, "--db", db, "drill", "add", f"d-{who}-{i}",
                       "--plan", "p", "--kind", "tabletop", "--owner", "o")
    assert r.returncode == 0, r.stderr
"""


def test_concurrent_drill_add_loses_nothing(tmp_path: Path, db_path: Path) -> None:
    import sys

    import yaml

    cfg, db = _config(tmp_path), db_path
    assert _run(cfg, db, "config", "check").returncode in (0, 1)
    import os

    from tests.helpers import SRC

    repo = Path(__file__).resolve().parents[2]
    # The workers import this tree's sources (not an installed copy), like the CLI runs.
    env = {**os.environ, "PYTHONPATH": f"{SRC}{os.pathsep}{repo}"}
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", DRILL_WORKER, str(cfg), str(db), str(n)],
            cwd=repo,
            env=env,
            stderr=subprocess.PIPE,
            text=True,
        )
        for n in range(3)
    ]
    for p in procs:
        _, err = p.communicate(timeout=600)
        assert p.returncode == 0, err
    names = set(yaml.safe_load((cfg / "drills.yaml").read_text())["drills"])
    assert names == {f"d-{w}-{i}" for w in range(3) for i in range(8)}
    with opened(db) as conn:
        audited = {
            r[0]
            for r in conn.execute("SELECT target FROM audit_events WHERE action = 'drill.add'")
        }
    assert audited == names


@pytest.mark.sqlite_only  # an immutable copy of the file on read-only media
def test_verify_and_export_work_on_a_read_only_copy(tmp_path: Path) -> None:
    cfg, db = _config(tmp_path), tmp_path / "ops.db"
    _prepare(cfg, db)
    evidence = tmp_path / "evidence"
    evidence.mkdir()
    copy = evidence / "ops.db"
    src, dst = sqlite3.connect(db), sqlite3.connect(copy)
    src.backup(dst)
    src.close()
    dst.close()
    shutil.copy(copy, tmp_path / "pristine.db")
    copy.chmod(0o444)
    with _immutable(copy), _immutable(evidence):
        r = _run(cfg, copy, "audit", "verify")
        assert r.returncode == 0, r.stderr
        assert "intact" in r.stdout and "not recorded" in r.stdout
        out = tmp_path / "export.jsonl"
        r = _run(cfg, copy, "audit", "export", "--action", "drill.", "--out", str(out))
        assert r.returncode == 0, r.stderr
        assert len(out.read_text().splitlines()) == 1  # drill.add only
        r = _run(cfg, copy, "audit", "list", "--json")
        assert r.returncode == 0, r.stderr
    assert copy.read_bytes() == (tmp_path / "pristine.db").read_bytes()
    assert sorted(p.name for p in evidence.iterdir()) == ["ops.db"]
