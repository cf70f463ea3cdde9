"""Fixtures for the drill tests: a small config directory with demo and production regions."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from tests.demo_fixture import demo, demo_process, demo_thread  # noqa: F401

INVENTORY = """\
regions:
  demo-a:
    name: Alpha
    environment: demo
    standby: demo-b
    services:
      web:
        endpoints: [{url: "http://127.0.0.1:9/healthz"}]
  demo-b:
    name: Beta
    environment: demo
    standby: demo-a
    services:
      web:
        endpoints: [{url: "http://127.0.0.1:9/healthz"}]
  prod-c:
    name: Gamma
    environment: production
    services:
      web:
        endpoints: [{url: "http://127.0.0.1:9/healthz"}]
"""

# A runbook that needs nothing but a shell: it "recovers" between two markers.
QUICK_RUNBOOK = """\
name: quick-recovery
description: A tiny runbook for drill tests
params:
  region: {type: string, required: true}
  delay: {type: string, default: "0"}
steps:
  - id: start
    name: Recovery starts
    marker: recovery_start
    shell: ["true"]
  - id: work
    name: Do the work
    idempotent: true
    shell: ["sleep", "{{ params.delay }}"]
  - id: done
    name: Recovery ends
    marker: recovery_end
    shell: ["true"]
"""

NEEDS_PERSON_RUNBOOK = """\
name: needs-person
params:
  region: {type: string, required: true}
steps:
  - id: check
    shell: ["true"]
  - id: looks-fine
    manual: "Look at the dashboard"
    drill: auto-confirm
  - id: confirm
    manual: "Confirm the standby serves traffic"
"""


@pytest.fixture
def drill_config(tmp_path: Path) -> Path:
    cfg = tmp_path / "cfg"
    (cfg / "runbooks").mkdir(parents=True)
    (cfg / "inventory.yaml").write_text(INVENTORY)
    (cfg / "settings.yaml").write_text("runbook_dirs: [runbooks]\n")
    (cfg / "runbooks" / "quick-recovery.yaml").write_text(QUICK_RUNBOOK)
    (cfg / "runbooks" / "needs-person.yaml").write_text(NEEDS_PERSON_RUNBOOK)
    return cfg


@pytest.fixture
def write_drills(drill_config: Path) -> Callable[[str], Path]:
    def write(text: str) -> Path:
        path = drill_config / "drills.yaml"
        path.write_text(text)
        return path

    return write


def wait_for(predicate: Callable[[], Any], *, timeout: float = 240, what: str = "") -> Any:
    """Poll until ``predicate()`` is truthy; fail (naming ``what``) after a generous deadline."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what or predicate}")
        time.sleep(0.1)


@pytest.fixture(autouse=True)
def _on_both_engines(store_engine: str) -> str:
    """Every test here runs on SQLite and on PostgreSQL (see ``store_engine``)."""
    return store_engine
