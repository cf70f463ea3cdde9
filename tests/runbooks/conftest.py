"""Fixtures for runbook tests: a config directory, a RunEnv on the test database, a
scripted operator, and a helper that writes runbook YAML to a file."""

from __future__ import annotations

import textwrap
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from opsconsole.operator import NeedsAPerson

INVENTORY = """\
regions:
  test-1:
    name: Test One
    environment: test
    standby: test-2
    services:
      api:
        endpoints:
          - url: {url}
  test-2:
    name: Test Two
    environment: test
    standby: test-1
    services:
      api:
        endpoints:
          - url: {url}
vars:
  greeting: hello
"""


class ScriptedOperator:
    """Answers confirmations from a list (then ``default_answer``), records every prompt."""

    name = "scripted"

    def __init__(
        self,
        answers: list[bool] | None = None,
        values: list[str] | None = None,
        default_answer: bool | None = None,
    ) -> None:
        self.answers = list(answers or [])
        self.values = list(values or [])
        self.default_answer = default_answer
        self.prompts: list[str] = []
        self.shown: list[str] = []

    async def confirm(self, prompt: str, *, default: bool = False, auto_ok: bool = False) -> bool:
        self.prompts.append(prompt)
        if self.answers:
            return self.answers.pop(0)
        if self.default_answer is not None:
            return self.default_answer
        raise NeedsAPerson(f"unexpected question: {prompt}")

    async def ask(self, prompt: str, *, secret: bool = False, default: str | None = None) -> str:
        self.prompts.append(prompt)
        if self.values:
            return self.values.pop(0)
        if default is not None:
            return default
        raise NeedsAPerson(f"unexpected question: {prompt}")

    async def show(self, text: str) -> None:
        self.shown.append(text)


@pytest.fixture
def config_dir(tmp_path: Path) -> Path:
    d = tmp_path / "config"
    d.mkdir()
    (d / "inventory.yaml").write_text(INVENTORY.format(url="http://127.0.0.1:9/healthz"))
    return d


@pytest.fixture
def env(config_dir: Path, db_path: Path) -> Any:
    from opsconsole.audit import AuditLog
    from opsconsole.config import load_config
    from opsconsole.events import EventBus
    from opsconsole.runbooks import RunEnv
    from opsconsole.store import open_db

    db = open_db(db_path)
    return RunEnv(
        db=db,
        audit=AuditLog(db, actor="alice", interface="test"),
        config=load_config(config_dir),
        bus=EventBus(),
    )


@pytest.fixture
def write_runbook(tmp_path: Path) -> Callable[..., Any]:
    from opsconsole.runbooks import load_runbook

    counter = {"n": 0}

    def write(text: str, name: str | None = None, *, load: bool = True) -> Any:
        counter["n"] += 1
        path = tmp_path / "runbooks" / f"{name or 'rb' + str(counter['n'])}.yaml"
        path.parent.mkdir(exist_ok=True)
        path.write_text(textwrap.dedent(text))
        return load_runbook(path) if load else path

    return write


@pytest.fixture
def operator() -> ScriptedOperator:
    return ScriptedOperator()


@pytest.fixture(autouse=True)
def _on_both_engines(store_engine: str) -> str:
    """Every test here runs on SQLite and on PostgreSQL (see ``store_engine``)."""
    return store_engine
