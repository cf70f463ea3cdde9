from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

import pytest

from opsconsole.config import load_config
from opsconsole.drills.loader import check_target, load_drills
from opsconsole.drills.schedule import make_trigger, next_due, occurrences
from opsconsole.errors import ConfigError

REPO = Path(__file__).resolve().parents[2]


def test_shipped_example_drills_file_loads() -> None:
    loaded = load_drills(load_config(REPO / "config"))
    assert {"payments-tabletop", "sa-east-1-failover"} <= set(loaded.file.drills)
    live = loaded.file.drills["sa-east-1-failover"]
    assert live.kind == "live" and live.objectives.rto_seconds == 300


def test_missing_drills_file_means_no_drills(drill_config: Path) -> None:
    assert load_drills(load_config(drill_config)).file.drills == {}


@pytest.mark.parametrize(
    ("body", "line", "field", "message"),
    [
        (
            "drills:\n  x:\n    plan: p\n    kind: live\n    colour: red\n",
            5,
            "drills.x.colour",
            "unknown field",
        ),
        (
            "drills:\n  x:\n    plan: p\n    kind: tabletop\n    owner: o\n"
            "    schedule: {cron: '0 3 * * 9'}\n",
            6,
            "drills.x.schedule",
            "invalid cron",
        ),
        (
            "drills:\n  x:\n    plan: p\n    kind: tabletop\n    owner: o\n"
            "    schedule:\n      cron: '0 3 * * *'\n      timezone: Mars/Olympus\n",
            8,
            "drills.x.schedule.timezone",
            "unknown time zone",
        ),
        (
            "drills:\n  x:\n    plan: p\n    kind: live\n    owner: o\n    runbook: r\n"
            "    target: nowhere\n",
            7,
            "drills.x.target",
            "unknown region 'nowhere'",
        ),
        (
            "drills:\n  x:\n    plan: p\n    kind: live\n    owner: o\n    target: demo-a\n",
            3,
            "drills.x",
            "a live drill needs runbook",
        ),
        (
            "drills:\n  x:\n    plan: p\n    kind: drill\n    owner: o\n",
            4,
            "drills.x.kind",
            "'tabletop' or 'live'",
        ),
        (
            "drills:\n  x:\n    plan: p\n    kind: tabletop\n    owner: o\n    schedule:\n"
            "      cron: '0 3 * * *'\n      at: 2026-01-01T00:00:00Z\n",
            7,
            "drills.x.schedule",
            "exactly one of cron or at",
        ),
        (
            "drills:\n  x:\n    plan: p\n    kind: tabletop\n    owner: o\n"
            "    objectives: {rto_seconds: -5}\n",
            6,
            "drills.x.objectives.rto_seconds",
            "greater than 0",
        ),
    ],
)
def test_invalid_drills_file_names_file_line_and_field(
    drill_config: Path,
    write_drills: Callable[[str], Path],
    body: str,
    line: int,
    field: str,
    message: str,
) -> None:
    path = write_drills(body)
    with pytest.raises(ConfigError) as err:
        load_drills(load_config(drill_config))
    text = str(err.value)
    assert f"{path}:{line}:" in text, text
    assert field in text and message in text, text


def test_cron_weekday_numbers_follow_crontab_not_apscheduler() -> None:
    # crontab: 0 = Sunday. APScheduler 3.x alone would read 0 as Monday.
    sunday = make_trigger("0 3 * * 0", None, "UTC")
    fire = next_due(sunday, datetime(2026, 11, 25, tzinfo=UTC))  # a Wednesday
    assert fire == datetime(2026, 11, 29, 3, 0, tzinfo=UTC)
    assert fire.strftime("%a") == "Sun"
    weekdays = make_trigger("30 9 * * 1-5", None, "UTC")
    fires = occurrences(
        weekdays, datetime(2026, 11, 22, tzinfo=UTC), datetime(2026, 11, 29, tzinfo=UTC)
    )
    assert [f.strftime("%a") for f in fires] == ["Mon", "Tue", "Wed", "Thu", "Fri"]
    assert (
        next_due(
            make_trigger("0 0 * * 7", None, "UTC"), datetime(2026, 11, 25, tzinfo=UTC)
        ).strftime("%a")
        == "Sun"
    )


def test_cron_is_read_in_its_time_zone() -> None:
    trig = make_trigger("0 3 1 4,10 *", None, "America/Sao_Paulo")
    fire = next_due(trig, datetime(2026, 11, 28, tzinfo=UTC))
    assert fire is not None
    assert fire.astimezone(UTC) == datetime(2027, 4, 1, 6, 0, tzinfo=UTC)


def test_occurrences_are_strictly_after_the_anchor_and_up_to_now() -> None:
    trig = make_trigger("0 * * * *", None, "UTC")
    start = datetime(2026, 1, 1, 0, 0, tzinfo=UTC)
    got = occurrences(trig, start, datetime(2026, 1, 1, 3, 0, tzinfo=UTC))
    assert [t.hour for t in got] == [1, 2, 3]
    once = make_trigger(None, datetime(2026, 1, 1, 2, 30, tzinfo=UTC), "UTC")
    assert occurrences(once, start, datetime(2026, 1, 1, 2, 0, tzinfo=UTC)) == []
    assert len(occurrences(once, start, datetime(2026, 1, 1, 3, 0, tzinfo=UTC))) == 1


def test_six_field_cron_has_leading_seconds() -> None:
    trig = make_trigger("*/10 * * * * *", None, "UTC")
    got = occurrences(
        trig, datetime(2026, 1, 1, tzinfo=UTC), datetime(2026, 1, 1, 0, 0, 30, tzinfo=UTC)
    )
    assert [t.second for t in got] == [10, 20, 30]


def test_production_target_is_refused_unless_allowed(
    drill_config: Path, write_drills: Callable[[str], Path]
) -> None:
    write_drills(
        "drills:\n"
        "  prod:\n    plan: p\n    kind: live\n    owner: o\n    runbook: r\n    target: prod-c\n"
        "  prod-ok:\n    plan: p\n    kind: live\n    owner: o\n    runbook: r\n"
        "    target: prod-c\n    allow_production: true\n"
        "  sneaky:\n    plan: p\n    kind: live\n    owner: o\n    runbook: r\n"
        "    target: demo-a\n    params: {region: prod-c}\n"
        "  fine:\n    plan: p\n    kind: live\n    owner: o\n    runbook: r\n    target: demo-a\n"
    )
    config = load_config(drill_config)
    drills = load_drills(config).file.drills
    assert "production" in (check_target(drills["prod"], config.inventory) or "")
    assert check_target(drills["prod-ok"], config.inventory) is None
    assert "prod-c" in (check_target(drills["sneaky"], config.inventory) or "")
    assert check_target(drills["fine"], config.inventory) is None
