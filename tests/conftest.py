"""Shared fixtures: every test gets its own database, state and config directories."""

from __future__ import annotations

import signal
from collections.abc import Iterator
from pathlib import Path

import pytest

from opsconsole.redact import secrets

pytest_plugins = ["tests.sshd", "tests.pg"]

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


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgresql)])
def store_engine(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """Run a test on each engine: the embedded SQLite file, and a database of its own in
    the session's throw-away PostgreSQL cluster (``OPSCONSOLE_DB`` points to it).

    A directory or module opts in with an autouse fixture that requests this one; a
    test about SQLite files themselves carries ``@pytest.mark.sqlite_only``."""
    if request.param == "sqlite":
        yield "sqlite"
        return
    if request.node.get_closest_marker("sqlite_only"):
        pytest.skip("about the SQLite file itself")
    cluster = request.getfixturevalue("pg_cluster")
    url = cluster.new_database()
    monkeypatch.setenv("OPSCONSOLE_DB", url)
    yield "postgresql"
    cluster.drop_database(url)
    # The URL taken for a path (Path() folds "//") makes a SQLite file under ./postgresql:
    # and the test silently passes on the wrong engine.
    stray = request.getfixturevalue("tmp_path") / "postgresql:"
    assert not stray.exists(), f"a PostgreSQL URL was used as a SQLite path: {stray}"


@pytest.fixture
def db_path(tmp_path: Path, request: pytest.FixtureRequest) -> Path:
    """Where this test's database is: a SQLite path, or (on the PostgreSQL run of a test
    that runs on both engines) the URL of its database."""
    if "store_engine" in request.fixturenames and (
        request.getfixturevalue("store_engine") == "postgresql"
    ):
        import os

        return os.environ["OPSCONSOLE_DB"]  # type: ignore[return-value]
    return tmp_path / "state" / "opsconsole.db"
