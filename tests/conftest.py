"""Shared fixtures: every test gets its own database, state and config directories."""

from __future__ import annotations

import signal
from collections.abc import Iterator
from pathlib import Path

import pytest

from opsconsole.redact import secrets

pytest_plugins = ["tests.sshd"]

REPO = Path(__file__).resolve().parent.parent


@pytest.fixture(autouse=True)
def _isolated(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """No test touches the user's real database, config or audit key."""
    monkeypatch.setenv("OPSCONSOLE_DB", str(tmp_path / "state" / "opsconsole.db"))
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "xdg-state"))
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "xdg-config"))
    monkeypatch.delenv("OPSCONSOLE_CONFIG", raising=False)
    monkeypatch.delenv("OPSCONSOLE_AUDIT_KEY", raising=False)
    monkeypatch.chdir(tmp_path)
    secrets.clear()
    sigint = signal.getsignal(signal.SIGINT)
    yield
    secrets.clear()
    # A test that ran an event loop with its own SIGINT handler must not leave it behind:
    # child processes started by later tests would inherit an ignored Ctrl-C.
    if signal.getsignal(signal.SIGINT) is not sigint:
        signal.signal(signal.SIGINT, sigint)


@pytest.fixture
def example_config() -> Path:
    """The example inventory shipped in config/."""
    return REPO / "config"


@pytest.fixture
def db_path(tmp_path: Path) -> Path:
    return tmp_path / "state" / "opsconsole.db"
