"""Bad input to the newer command groups: one line naming the file (and line:col where
there is one), a distinct exit code, never a traceback.

Each case feeds a file the command cannot use as given: missing, a directory, not
UTF-8, or a path it cannot write to."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from tests.helpers import cli, cli_subprocess

NOT_UTF8 = b"version: 1\nname: caf\xe9\n"  # Latin-1 e-acute at line 2, column 10


def _one_error_line(res_output: str) -> str:
    assert "Traceback" not in res_output, res_output
    lines = [ln for ln in res_output.splitlines() if ln.startswith("error")]
    assert len(lines) == 1, res_output
    return lines[0]


def test_config_init_into_a_path_it_cannot_create_is_one_line(tmp_path: Path) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("not a directory\n")
    res = cli("config", "init", str(blocker / "opsconsole"))
    assert res.exit_code == 3, res.output
    line = _one_error_line(res.output)
    assert str(blocker / "opsconsole") in line and "choose" in line


@pytest.mark.parametrize("kind", ["missing", "directory", "not-utf8"])
def test_access_apply_of_an_unreadable_file_names_it(tmp_path: Path, kind: str) -> None:
    target = tmp_path / "access.yaml"
    if kind == "directory":
        target.mkdir()
    elif kind == "not-utf8":
        target.write_bytes(NOT_UTF8)
    res = cli("access", "apply", str(target))
    assert res.exit_code == 3, res.output
    line = _one_error_line(res.output)
    assert str(target) in line
    if kind == "not-utf8":
        assert f"{target}:2:10: not valid UTF-8" in line


def test_incident_ingest_of_a_non_utf8_payload_is_one_line(tmp_path: Path) -> None:
    payload = tmp_path / "alert.json"
    payload.write_bytes(b'{"status": "firing", "x": "\xff"}')
    res = cli(
        "--config",
        str(Path(__file__).resolve().parents[2] / "config"),
        "incident",
        "ingest",
        str(payload),
    )
    assert res.exit_code not in (0, 1), res.output  # a usage/config error, not "failed"
    assert str(payload) in _one_error_line(res.output)


def test_serve_with_a_non_utf8_token_file_is_one_line(tmp_path: Path) -> None:
    token = tmp_path / "serve.token"
    token.write_bytes(b"abc\xff\n")
    res = cli_subprocess(
        "--config",
        str(Path(__file__).resolve().parents[2] / "config"),
        "serve",
        "--port",
        "0",
        "--token-file",
        str(token),
    )
    assert res.returncode == 3, res.stderr
    assert str(token) in _one_error_line(res.stderr)


def test_drills_yaml_that_is_not_utf8_names_line_and_column(tmp_path: Path) -> None:
    config = tmp_path / "cfg"
    shutil.copytree(Path(__file__).resolve().parents[2] / "config", config)
    (config / "drills.yaml").write_bytes(NOT_UTF8)
    res = cli("--config", str(config), "drill", "list")
    assert res.exit_code == 3, res.output
    assert f"{config / 'drills.yaml'}:2:10: not valid UTF-8" in _one_error_line(res.output)


def test_a_config_dirs_access_yaml_that_is_not_utf8_is_one_line(tmp_path: Path) -> None:
    config = tmp_path / "cfg"
    shutil.copytree(Path(__file__).resolve().parents[2] / "config", config)
    (config / "access.yaml").write_bytes(NOT_UTF8)
    res = cli("--config", str(config), "incident", "list")
    assert res.exit_code == 3, res.output
    assert f"{config / 'access.yaml'}:2:10: not valid UTF-8" in _one_error_line(res.output)


@pytest.mark.parametrize(
    ("group", "text", "where"),
    [
        ("rules", "- a\n- b\n", ":1:1: "),
        ("access", "- a\n", ":1:1: "),
        ("rules", "rules:\n  - just-a-string\n", ":2:5: rules[0]: "),
    ],
)
def test_a_list_where_a_mapping_belongs_says_so_in_yaml_terms(
    tmp_path: Path, group: str, text: str, where: str
) -> None:
    path = tmp_path / f"{group}.yaml"
    path.write_text(text)
    res = cli(
        "--config",
        str(Path(__file__).resolve().parents[2] / "config"),
        group,
        "validate",
        str(path),
    )
    assert res.exit_code == 3, res.output
    line = _one_error_line(res.output)
    assert f"{path}{where}expected a mapping" in line
    assert "instance of" not in line  # no Python class names


def test_incident_report_to_an_unwritable_path_records_no_export(tmp_path: Path) -> None:
    config = str(Path(__file__).resolve().parents[2] / "config")
    declared = cli(
        "--config", config, "incident", "declare", "--severity", "SEV2",
        "--category", "system-failure", "--title", "t", "--region", "sa-east-1",
    )  # fmt: skip
    assert declared.exit_code == 0, declared.output
    blocker = tmp_path / "a-file"
    blocker.write_text("x")
    res = cli("--config", config, "incident", "report", "INC-2026-0001",
              "--out", str(blocker / "report.md"))  # fmt: skip
    assert res.exit_code == 1, res.output
    assert f"cannot write {blocker / 'report.md'}" in _one_error_line(res.output)
    events = cli("--config", config, "audit", "list", "--action", "incident.report", "--json")
    assert events.stdout.strip() == "[]", events.stdout
    ok = cli("--config", config, "incident", "report", "INC-2026-0001",
             "--out", str(tmp_path / "report.md"))  # fmt: skip
    assert ok.exit_code == 0, ok.output
    assert (tmp_path / "report.md").read_text().startswith("# Post-incident report")
    events = cli("--config", config, "audit", "list", "--action", "incident.report", "--json")
    assert str(tmp_path / "report.md") in events.stdout


def test_a_wrong_value_inside_a_union_is_one_problem_at_its_own_place(tmp_path: Path) -> None:
    """access.yaml's allow entries are `str | Grant`: a bad environment in a grant is one
    line at that environment, not two lines naming pydantic's union members."""
    path = tmp_path / "access.yaml"
    path.write_text(
        "roles:\n  x:\n    members: {users: [root]}\n"
        "    allow: [{permissions: [runbook.run], environments: [prod]}]\n"
    )
    res = cli("access", "validate", str(path))
    assert res.exit_code == 3, res.output
    line = _one_error_line(res.output)
    assert f"{path}:4:57: roles.x.allow[0].environments[0]: Input should be" in line, line
    assert "(got 'prod')" in line


@pytest.mark.parametrize("how", ["--config", "OPSCONSOLE_CONFIG"])
def test_a_config_dir_without_inventory_names_where_it_came_from(tmp_path: Path, how: str) -> None:
    empty = tmp_path / "empty"
    empty.mkdir()
    if how == "--config":
        res = cli("--config", str(empty), "notify", "list")
    else:
        res = cli("notify", "list", env={"OPSCONSOLE_CONFIG": str(empty)})
    assert res.exit_code == 3, res.output
    line = _one_error_line(res.output)
    assert f"no inventory.yaml (from {how})" in line and "config init" in line, line


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("    secret_file: 5\n", "secret_file: should be a file path (got 5)"),
        ("    secret_file: [a]\n", "secret_file: should be a file path"),
    ],
)
def test_a_path_field_of_the_wrong_type_names_no_python_class(
    tmp_path: Path, text: str, expected: str
) -> None:
    config = tmp_path / "cfg"
    shutil.copytree(Path(__file__).resolve().parents[2] / "config", config)
    with (config / "settings.yaml").open("a") as fh:
        fh.write("notifications:\n  channels:\n  - name: a\n    url: json://x/{secret}\n" + text)
    res = cli("--config", str(config), "config", "check")
    assert res.exit_code == 3, res.output
    line = _one_error_line(res.output)
    assert expected in line and "class" not in line, line
