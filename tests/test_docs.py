"""Docs and code stay together: every command has help text and a row in README's Commands table."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
import typer.main

from opsconsole.cli.main import app

README = Path(__file__).resolve().parents[1] / "README.md"


def _commands() -> list[tuple[str, Any]]:
    """(``"runbook plan"``, command) for every group and command, depth first."""
    out: list[tuple[str, Any]] = []

    def walk(cmd: Any, path: tuple[str, ...]) -> None:
        if path:
            out.append((" ".join(path), cmd))
        if hasattr(cmd, "list_commands"):  # a group (the root one builds its commands lazily)
            ctx = cmd.context_class(cmd)
            for name in cmd.list_commands(ctx):
                walk(cmd.get_command(ctx, name), (*path, name))

    walk(typer.main.get_command(app), ())
    return out


def _readme_commands() -> list[str]:
    """The code spans of the first column of README's Commands table, without `opsconsole `."""
    section = README.read_text(encoding="utf-8").split("\n## Commands\n", 1)[1]
    section = section.split("\n## ", 1)[0]
    spans: list[str] = []
    for line in section.splitlines():
        if line.startswith("| `opsconsole "):
            first = line.split(" | ", 1)[0]
            spans += [s.removeprefix("opsconsole ") for s in re.findall(r"`([^`]+)`", first)]
    return spans


COMMANDS = _commands()


@pytest.mark.parametrize("name,cmd", COMMANDS, ids=[name for name, _ in COMMANDS])
def test_every_command_has_help_text(name: str, cmd: Any) -> None:
    assert (cmd.help or "").strip(), f"`opsconsole {name}` has no help text"
    for param in cmd.params:
        if param.param_type_name == "option" and param.name != "help":
            assert (param.help or "").strip(), (
                f"`opsconsole {name}` option {param.opts} has no help"
            )


@pytest.mark.parametrize(
    "name",
    [name for name, cmd in COMMANDS if not hasattr(cmd, "list_commands")],
)
def test_every_command_is_in_the_readme_commands_table(name: str) -> None:
    spans = _readme_commands()
    assert any(s == name or s.startswith(f"{name} ") for s in spans), (
        f"`opsconsole {name}` is missing from README.md's Commands table"
    )


def test_help_of_every_group_and_command_exits_zero() -> None:
    from tests.helpers import cli

    for name, _ in COMMANDS:
        result = cli(*name.split(), "--help")
        assert result.exit_code == 0, (name, result.output)
        assert "Usage: opsconsole " + name in " ".join(result.stdout.split()), name


def test_every_command_is_found() -> None:
    names = {name for name, _ in COMMANDS}
    assert {"status", "runbook run", "incident declare", "drill add", "audit verify"} <= names


def test_commands_quoted_in_shipped_playbooks_and_runbooks_exist() -> None:
    root = README.parent
    top = {name.split()[0] for name, _ in COMMANDS}
    for path in sorted([*root.glob("playbooks/*.yaml"), *root.glob("runbooks/*.yaml")]):
        for word in re.findall(r"`opsconsole ([a-z][a-z-]*)", path.read_text(encoding="utf-8")):
            assert word in top, f"{path.name} tells the reader to run `opsconsole {word}`"


def test_root_help_summaries_are_whole_sentences() -> None:
    """`opsconsole --help` shows each command's first paragraph, not its first line cut
    mid-sentence ("... /healthz, /readyz, the")."""
    from tests.helpers import cli

    text = cli("--help", env={"COLUMNS": "80"}).stdout.split("Commands:\n", 1)[1]
    summaries: dict[str, str] = {}
    name = ""
    for line in text.splitlines():
        m = re.match(r"  (\S+)\s+(.*)", line)
        if m:
            name = m[1]
            summaries[name] = m[2]
        elif line.startswith("   ") and name:
            summaries[name] += " " + line.strip()
    assert "serve" in summaries and "schema" in summaries, text
    for name, summary in summaries.items():
        assert summary.rstrip().endswith((".", ")")), (name, summary)
