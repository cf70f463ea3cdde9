"""Fixtures for incident tests: a service on a real SQLite file with a controllable clock."""

from __future__ import annotations

import shutil
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from opsconsole.audit import AuditLog
from opsconsole.config import Config, load_config
from opsconsole.incidents import IncidentService
from opsconsole.store import open_db

REPO = Path(__file__).resolve().parents[2]

# Roles are given to OS accounts: the people of these scenarios must exist.
PEOPLE = ["alice", "bob", "lena", "omar", "cora", "cas", "sam"]


@pytest.fixture(scope="session", autouse=True)
def _people() -> Iterator[None]:
    from tests import accounts

    missing = [p for p in PEOPLE if not accounts.exists(p)]
    if missing:
        accounts.require_root()
    for name in missing:
        accounts.add_user(name)
    yield
    for name in missing:
        accounts.remove_user(name)


class Clock:
    """A clock the test moves by hand: deadline tests never depend on real time."""

    def __init__(self, start: datetime) -> None:
        self.now = start

    def __call__(self) -> datetime:
        return self.now

    def advance(self, **kwargs: float) -> datetime:
        self.now += timedelta(**kwargs)
        return self.now


@pytest.fixture
def clock() -> Clock:
    # A Friday morning in UTC (late in Asia, night in Brazil).
    return Clock(datetime(2026, 11, 27, 9, 0, tzinfo=UTC))


@pytest.fixture
def config_dir(tmp_path: Path) -> Path:
    """A writable copy of the example config (inventory + settings)."""
    target = tmp_path / "config"
    shutil.copytree(REPO / "config", target)
    return target


@pytest.fixture
def config(config_dir: Path) -> Config:
    return load_config(config_dir)


@pytest.fixture
def make_service(db_path: Path, clock: Clock, config: Config) -> Callable[..., IncidentService]:
    def make(actor: str = "alice", *, cfg: Config | None = config) -> IncidentService:
        db = open_db(db_path)
        return IncidentService(db, AuditLog(db, actor=actor), cfg, clock=clock)

    return make


@pytest.fixture
def svc(make_service: Callable[..., IncidentService]) -> IncidentService:
    return make_service()


@pytest.fixture(autouse=True)
def _on_both_engines(store_engine: str, request: pytest.FixtureRequest) -> str:
    """Every test here runs on SQLite and on PostgreSQL (see ``store_engine``). On
    PostgreSQL roles name database login roles, so the same people exist there too."""
    if store_engine == "postgresql":
        cluster = request.getfixturevalue("pg_cluster")
        for name in PEOPLE:
            cluster.role(name, f"{name}-password")
    return store_engine
