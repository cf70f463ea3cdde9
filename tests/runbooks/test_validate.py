"""Every broken runbook in the corpus is reported at the right file:line:col and field."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from opsconsole.errors import SourceError
from opsconsole.runbooks import RunbookInvalid, load_runbook
from tests.helpers import cli

BROKEN = sorted((Path(__file__).parent / "broken").glob("*.yaml"))
REPO = Path(__file__).resolve().parents[2]


def _expectation(path: Path) -> tuple[str, list[str]]:
    first = path.read_text().splitlines()[0]
    m = re.match(r"# expect: (\d+:\d+) (.*)$", first)
    assert m, f"{path.name} needs an '# expect: LINE:COL words' first line"
    return m[1], m[2].split()


@pytest.mark.parametrize("path", BROKEN, ids=[p.stem for p in BROKEN])
def test_broken_runbook_names_file_line_col_and_field(path: Path) -> None:
    where, words = _expectation(path)
    with pytest.raises(RunbookInvalid) as err:
        load_runbook(path)
    assert err.value.exit_code == 15
    text = str(err.value)
    first = text.splitlines()[0]
    assert first.startswith(f"{path}:{where}:"), text
    for word in words:
        assert word in text, f"{word!r} not in {text!r}"


def test_corpus_is_big_enough() -> None:
    assert len(BROKEN) >= 12


def test_validate_cli_reports_each_broken_file_and_exits_15() -> None:
    result = cli("runbook", "validate", *map(str, BROKEN))
    assert result.exit_code == 15
    for path in BROKEN:
        assert str(path) in result.stderr
    assert f"0 valid, {len(BROKEN)} invalid" in result.stderr


def test_shipped_runbooks_are_valid() -> None:
    shipped = sorted((REPO / "runbooks").glob("*.yaml"))
    assert {p.stem for p in shipped} >= {"regional-failover", "backup-restore", "breach-response"}
    for path in shipped:
        try:
            load_runbook(path)
        except SourceError as exc:  # pragma: no cover - the message is the point
            pytest.fail(str(exc))
    result = cli("runbook", "validate", *map(str, shipped))
    assert result.exit_code == 0, result.output


def test_schema_command_prints_runbook_json_schema() -> None:
    import json

    result = cli("schema", "runbook")
    assert result.exit_code == 0
    schema = json.loads(result.stdout)
    assert "steps" in schema["properties"]
