"""One bounded YAML loader: alias bombs, deep nesting, recursive aliases, bad dates,
invalid UTF-8 and huge values are refused with file:line, under a memory cap."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from tests.helpers import SRC, cli

BOMB = "a: &a [x,x,x,x,x,x,x,x,x]\n" + "".join(
    f"{chr(98 + i)}: &{chr(98 + i)} [" + ",".join([f"*{chr(97 + i)}"] * 9) + "]\n" for i in range(9)
)


def _load_capped(path: Path, mb: int = 200) -> subprocess.CompletedProcess[str]:
    code = textwrap.dedent(f"""
        import resource, sys
        resource.setrlimit(resource.RLIMIT_DATA, ({mb} << 20, {mb} << 20))
        from pathlib import Path
        from opsconsole.errors import SourceError
        from opsconsole.yamlsource import load_yaml
        try:
            load_yaml(Path({str(path)!r}))
        except SourceError as exc:
            print(exc)
    """)
    return subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        timeout=60,
        env={"PYTHONPATH": str(SRC), "PATH": "/usr/bin:/bin"},
    )


@pytest.mark.parametrize(
    ("text", "where", "msg"),
    [
        (BOMB, ":5:", "after expanding aliases"),
        ("[" * 3000 + "]" * 3000, ":1:", "nested deeper than"),
        ("a: &a [*a]\n", ":1:8", "refers to a node that contains it"),
        ("when: 2026-13-45\n", ":1:7", "month must be in 1..12"),
        ("n: " + "9" * 5000 + "\n", ":1:4", "invalid value"),
        ("? [a, b]\n: c\n", ":1:", "mapping key must be a plain value"),
    ],
)
def test_hostile_yaml_is_refused_with_its_position_under_a_memory_cap(
    tmp_path: Path, text: str, where: str, msg: str
) -> None:
    path = tmp_path / "x.yaml"
    path.write_text(text)
    proc = _load_capped(path)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "Traceback" not in proc.stderr
    assert f"x.yaml{where}" in proc.stdout and msg in proc.stdout, proc.stdout


def test_invalid_utf8_and_oversized_files_are_located(tmp_path: Path) -> None:
    from opsconsole.errors import SourceError
    from opsconsole.yamlsource import load_yaml

    bad = tmp_path / "bad.yaml"
    bad.write_bytes(b"a: 1\nb: \xff\n")
    with pytest.raises(SourceError, match=r"bad.yaml:2:4: not valid UTF-8"):
        load_yaml(bad)
    big = tmp_path / "big.yaml"
    big.write_text("a: " + "x" * (2 << 20) + "\n")
    with pytest.raises(SourceError, match="larger than 1024 KiB"):
        load_yaml(big)


def test_a_bomb_in_the_runbook_directory_does_not_hang_list(tmp_path: Path) -> None:
    config_dir = tmp_path / "cfg"
    config_dir.mkdir()
    (config_dir / "inventory.yaml").write_text(
        "regions:\n  r1:\n    name: R\n    services:\n      api:\n"
        "        endpoints: [{url: 'http://127.0.0.1:9/'}]\n"
    )
    rbdir = config_dir / "runbooks"
    rbdir.mkdir()
    (rbdir / "bomb.yaml").write_text(BOMB)
    res = cli("--config", str(config_dir), "runbook", "list")
    assert res.exit_code == 0
    assert "INVALID" in res.output and "after expanding aliases" in res.output


def test_a_huge_time_zone_is_a_user_error(tmp_path: Path) -> None:
    cfg = tmp_path / "cfg"
    cfg.mkdir()
    (cfg / "inventory.yaml").write_text(
        "regions:\n  r1:\n    name: R\n    timezone: " + "x" * 200_000 + "\n    services: {}\n"
    )
    res = cli("--config", str(cfg), "config", "check")
    assert "Traceback" not in res.output
    assert res.exit_code != 0 and "unknown time zone" in res.output
