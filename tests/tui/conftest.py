"""Fixtures for the console: a demo-shaped inventory, a fixed health snapshot, the app."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from opsconsole.tui.feed import HealthSnapshot, HostView, RegionView, StaticFeed, TargetView
from tests.demo_fixture import demo, demo_thread  # noqa: F401

NOW = datetime(2026, 11, 28, 14, 0, 0, tzinfo=UTC)

REGIONS = [
    ("ap-southeast-1", "Singapore", "Asia/Singapore", "ap-south-1"),
    ("ap-south-1", "Mumbai", "Asia/Kolkata", "ap-southeast-1"),
    ("sa-east-1", "Sao Paulo", "America/Sao_Paulo", "eu-central-1"),
    ("eu-central-1", "Frankfurt", "Europe/Berlin", "sa-east-1"),
]
SERVICES = ("gateway", "payments", "lending")

MANUAL_RUNBOOK = """\
name: tui-manual
description: A runbook with a manual confirmation, for the console tests.
params:
  region:
    required: true
steps:
  - id: hello
    name: Say hello
    shell: ["echo", "hello {{ region }}"]
  - id: confirm
    name: Confirm by hand
    manual: |
      Check the dashboard for {{ region }}.
  - id: bye
    name: Say goodbye
    shell: ["echo", "bye"]
"""

ROLLBACK_RUNBOOK = """\
name: tui-rollback
description: Changes something, then waits for a person; rollback undoes it.
steps:
  - id: change
    name: Change something
    shell: ["echo", "changed"]
  - id: wait
    name: Wait for the person
    manual: Look at it.
rollback:
  - id: undo
    name: Undo the change
    undoes: change
    shell: ["echo", "undone"]
"""

APPROVAL_RUNBOOK = """\
name: tui-approval
description: Needs a second person before it changes anything.
steps:
  - id: gate
    name: Second pair of eyes
    approval: {message: "ok to proceed?", wait: 0}
  - id: act
    name: Act
    shell: ["echo", "acted"]
"""


def write_config(directory: Path, *, port: int = 9) -> Path:
    """A demo-shaped config directory (four regions, three services each)."""
    lines = ["regions:"]
    for rid, name, tz, standby in REGIONS:
        lines += [
            f"  {rid}:",
            f"    name: {name}",
            f"    timezone: {tz}",
            f"    standby: {standby}",
            "    environment: demo",
            "    services:",
        ]
        for sid in SERVICES:
            lines += [
                f"      {sid}:",
                "        endpoints:",
                f"          - url: http://127.0.0.1:{port}/{rid}/{sid}/healthz",
            ]
    lines += ["vars:", "  router_url: http://127.0.0.1:9"]
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "inventory.yaml").write_text("\n".join(lines) + "\n", encoding="utf-8")
    (directory / "settings.yaml").write_text("probe:\n  interval_seconds: 1\n", encoding="utf-8")
    (directory / "runbooks").mkdir(exist_ok=True)
    (directory / "runbooks" / "tui-manual.yaml").write_text(MANUAL_RUNBOOK, encoding="utf-8")
    (directory / "runbooks" / "tui-rollback.yaml").write_text(ROLLBACK_RUNBOOK, encoding="utf-8")
    (directory / "runbooks" / "tui-approval.yaml").write_text(APPROVAL_RUNBOOK, encoding="utf-8")
    return directory


def fixed_snapshot(*, down: str | None = "sa-east-1", now: datetime = NOW) -> HealthSnapshot:
    """Deterministic health: every latency, history and time derived from fixed numbers."""
    regions = []
    targets = []
    for r_i, (rid, name, tz, standby) in enumerate(REGIONS):
        is_down = rid == down
        regions.append(
            RegionView(
                id=rid,
                name=name,
                state="down" if is_down else "ok",
                since=now - timedelta(minutes=3 if is_down else 42),
                standby=standby,
                timezone=tz,
            )
        )
        for s_i, sid in enumerate(SERVICES):
            base = 20 + 7 * r_i + 3 * s_i
            history: list[float | None] = [base + ((i * 7 + s_i) % 9) * 4 for i in range(40)]
            if is_down:
                history[-6:] = [None] * 6
            targets.append(
                TargetView(
                    region=rid,
                    service=sid,
                    state="down" if is_down else "ok",
                    p50_ms=float(base),
                    p95_ms=float(base * 2 + 5),
                    availability=85.0 if is_down else 100.0,
                    history=tuple(history),
                    since=now - timedelta(minutes=3 if is_down else 42),
                    last_error="HTTP 503 Service Unavailable" if is_down else None,
                    phases={
                        "dns": 0.1,
                        "connect": 0.4,
                        "ttfb": float(base - 2),
                        "total": float(base),
                    },
                    errors=("e0: HTTP 503",) if is_down else (),
                    endpoint=f"{rid}/{sid}/default",
                    samples=40,
                )
            )
    host = HostView(
        cpu_percent=12.0,
        memory_percent=41.0,
        disk_percent=63.0,
        load_per_cpu=0.25,
        net_rx_bps=120_000,
        net_tx_bps=45_000,
    )
    return HealthSnapshot(regions=tuple(regions), targets=tuple(targets), host=host, taken_at=now)


@pytest.fixture
def tui_config(tmp_path: Path) -> Any:
    from opsconsole.config import load_config

    return load_config(write_config(tmp_path / "config"))


@pytest.fixture
def tui_db(db_path: Path) -> Any:
    from opsconsole.capabilities import register_all
    from opsconsole.store import open_db

    register_all()  # every table, as the console's entry point opens them
    return open_db(db_path)


@pytest.fixture
def make_app(tui_config: Any, tui_db: Any) -> Callable[..., Any]:
    """``make_app(read_only=False, snapshot=..., start="dashboard")`` -> a console app."""
    from opsconsole.tui.app import create_app

    def make(
        *,
        read_only: bool = False,
        snapshot: HealthSnapshot | None = None,
        start: str = "dashboard",
        config: Any = tui_config,
    ) -> Any:
        feed = StaticFeed(snapshot if snapshot is not None else fixed_snapshot())
        return create_app(
            config=config,
            db=tui_db,
            actor="ana",
            read_only=read_only,
            health_feed=feed,
            start=start,
            animate=False,
        )

    return make


async def wait_for(pilot: Any, condition: Callable[[], bool], *, timeout: float = 30.0) -> None:
    """Let the app run until ``condition()`` holds (generous deadline, no fixed sleeps)."""
    import asyncio

    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not condition():
        if loop.time() > deadline:
            raise AssertionError(f"condition not met within {timeout}s")
        await pilot.pause(0.05)


def plain(widget: Any, width: int = 160) -> str:
    """What a Static shows, as plain text (whatever it was given: str, Text, Table, Group)."""
    from rich.console import Console

    content = widget.content
    if isinstance(content, str):
        return content
    console = Console(width=width, no_color=True)
    with console.capture() as cap:
        console.print(content)
    return cap.get()


async def pick(pilot: Any, select: Any, value: str) -> None:
    """Choose ``value`` in a focused ``Select`` with the keys a person uses."""
    values = [v for _, v in select._options if v is not select.NULL]
    assert value in values, (value, values)
    select.focus()
    await pilot.press("enter")  # opens the list on the current value (or the blank)
    await pilot.pause()
    current = select.value
    start = values.index(current) if current in values else -1
    steps = values.index(value) - start
    await pilot.press(*(["down"] * steps if steps > 0 else ["up"] * -steps), "enter")
    await wait_for(pilot, lambda: select.value == value)
