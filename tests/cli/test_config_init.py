"""``opsconsole config init``: the example config shipped with the package, to edit."""

from __future__ import annotations

from pathlib import Path

from tests.helpers import cli

REPO = Path(__file__).resolve().parents[2]


def test_config_init_writes_the_shipped_example_where_it_is_found(tmp_path: Path) -> None:
    res = cli("config", "init")
    assert res.exit_code == 0, res.output
    target = tmp_path / "xdg-config" / "opsconsole"  # XDG_CONFIG_HOME from conftest
    for name in ("inventory.yaml", "settings.yaml", "drills.yaml", "incidents.yaml"):
        assert (target / name).read_text() == (REPO / "config" / name).read_text()
    # Found without --config (cwd is tmp_path: no ./config there).
    checked = cli("config", "check", "--json")
    assert checked.exit_code == 0, checked.output
    assert str(target) in checked.stdout


def test_config_init_never_overwrites_without_force(tmp_path: Path) -> None:
    target = tmp_path / "mine"
    assert cli("config", "init", str(target)).exit_code == 0
    (target / "inventory.yaml").write_text("# my edits\n")
    res = cli("config", "init", str(target))
    assert res.exit_code == 7
    assert "already exists" in res.stderr
    assert (target / "inventory.yaml").read_text() == "# my edits\n"
    assert cli("config", "init", str(target), "--force").exit_code == 0
    assert (target / "inventory.yaml").read_text() != "# my edits\n"
