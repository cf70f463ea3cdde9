"""Playbook schema and loader: the shipped playbooks, and file:line errors for broken ones."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from opsconsole.errors import SourceError
from opsconsole.incidents.playbook import load_playbook
from tests.helpers import cli
from tests.incidents.conftest import REPO

SHIPPED = sorted((REPO / "playbooks").glob("*.yaml"))

GOOD = """\
name: Test
category: test
decisions:
  notifiable: assessed notifiable
status_updates: {SEV1: 30}
phases:
  - id: triage
    tasks:
      - id: look
        title: Look
        owner: operations
deadlines:
  - id: tell
    title: Tell someone
    jurisdiction: SG
    anchor: decision:notifiable
    calendar_days: 3
    citation: PDPA s.26D
    verified_on: 2026-11-28
    met_by: look
calendars:
  SG: {timezone: Asia/Singapore}
"""


def _broken(tmp_path: Path, old: str, new: str) -> SourceError:
    text = GOOD.replace(old, new)
    assert text != GOOD
    path = tmp_path / "broken.yaml"
    path.write_text(text)
    with pytest.raises(SourceError) as info:
        load_playbook(path)
    return info.value


def test_shipped_playbooks_cover_the_four_categories() -> None:
    categories = {load_playbook(p).category for p in SHIPPED}
    assert {"data-breach", "system-failure", "network-security", "natural-disaster"} <= categories
    for path in SHIPPED:
        assert path.stem == load_playbook(path).category


def test_data_breach_playbook_carries_the_five_regimes() -> None:
    book = load_playbook(REPO / "playbooks" / "data-breach.yaml")
    by_place = {d.jurisdiction: d for d in book.deadlines}
    assert set(by_place) >= {"EU", "IN", "SG", "BR", "PCI"}
    assert by_place["EU"].hours == 72 and "Art. 33" in by_place["EU"].citation
    assert by_place["IN"].hours == 6 and "28 April 2022" in by_place["IN"].citation
    assert by_place["SG"].calendar_days == 3 and by_place["SG"].anchor == "decision:notifiable"
    assert "26D" in by_place["SG"].citation
    assert by_place["BR"].working_days == 3 and "15/2024" in by_place["BR"].citation
    assert "12.10" in by_place["PCI"].citation
    for d in book.deadlines:
        assert d.verified_on and d.met_by, d.id
    assert book.calendars["BR"].holidays, "working days need the Brazilian holiday list"


def test_good_playbook_loads(tmp_path: Path) -> None:
    path = tmp_path / "good.yaml"
    path.write_text(GOOD)
    assert load_playbook(path).deadlines[0].within == "3 calendar days"


@pytest.mark.parametrize(
    ("old", "new", "where", "message"),
    [
        ("        owner: operations", "        owner: janitor", ":11:16", "unknown role 'janitor'"),
        (
            "        title: Look\n",
            "        title: Look\n        colour: red\n",
            ":11:9",
            "unknown field",
        ),
        (
            "    calendar_days: 3\n",
            "",
            ":13:5",
            "exactly one of hours, calendar_days, working_days",
        ),
        (
            "    calendar_days: 3\n",
            "    calendar_days: 3\n    hours: 4\n",
            ":13:5",
            "(has hours, calendar_days)",
        ),
        ("met_by: look", "met_by: looks", ":20:13", "unknown task 'looks'"),
        ("decision:notifiable", "decision:assessed", ":16:13", "unknown decision 'assessed'"),
        ("anchor: decision:notifiable", "anchor: whenever", ":16:13", "anchor must be detected"),
        ("verified_on: 2026-11-28", "verified_on: last week", ":19:18", "verified_on"),
        ("{SEV1: 30}", "{SEV9: 30}", ":5:17", "unknown severity 'SEV9'"),
        ("timezone: Asia/Singapore", "timezone: Mars/Olympus", ":22:18", "unknown time zone"),
        (
            "        title: Look\n",
            "        title: Look\n        requires: [ghost]\n",
            ":11:20",
            "unknown task 'ghost'",
        ),
        (
            "  - id: triage\n",
            "  - id: triage\n    tasks: []\n  - id: more\n",
            ":8:12",
            "at least 1 item",
        ),
    ],
)
def test_malformed_playbook_names_file_line_and_field(
    tmp_path: Path, old: str, new: str, where: str, message: str
) -> None:
    err = _broken(tmp_path, old, new)
    text = str(err)
    assert f"broken.yaml{where}" in text, text
    assert message in text, text


def test_yaml_syntax_error_names_the_line(tmp_path: Path) -> None:
    err = _broken(tmp_path, "    tasks:\n", "    tasks: [\n")
    assert "broken.yaml:" in str(err) and "invalid YAML" in str(err)


def test_working_days_need_a_calendar(tmp_path: Path) -> None:
    path = tmp_path / "broken.yaml"
    path.write_text(
        GOOD.replace("    calendar_days: 3\n", "    working_days: 3\n").replace(
            "calendars:\n  SG: {timezone: Asia/Singapore}\n", "calendars: {}\n"
        )
    )
    with pytest.raises(SourceError) as info:
        load_playbook(path)
    assert "broken.yaml:15:19: deadlines[0].jurisdiction: working days need a calendar 'SG'" in str(
        info.value
    )


def test_schema_command_prints_the_playbook_schema() -> None:
    result = cli("schema", "playbook")
    assert result.exit_code == 0, result.output
    schema = json.loads(result.stdout)
    assert "phases" in schema["properties"] and "deadlines" in schema["properties"]


def test_shipped_playbooks_name_shipped_runbooks_with_their_params() -> None:
    runbooks = pytest.importorskip("opsconsole.runbooks", reason="runbook engine not built yet")
    for path in SHIPPED:
        for _, task in load_playbook(path).tasks():
            if task.runbook is None:
                continue
            book = runbooks.load_runbook(runbooks.find_runbook(task.runbook.name, None))
            unknown = set(task.runbook.params) - set(book.params)
            assert not unknown, f"{path.name}: {task.id}: {task.runbook.name} has no {unknown}"
            required = {n for n, p in book.params.items() if p.required}
            assert required <= set(task.runbook.params), f"{path.name}: {task.id}"
