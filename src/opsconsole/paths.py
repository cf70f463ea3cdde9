"""Where opsconsole keeps things: XDG locations and the environment overrides, in one place."""

from __future__ import annotations

import os
from pathlib import Path

__all__ = [
    "config_dir_candidates",
    "default_db_path",
    "shipped_dir",
    "state_dir",
    "user_config_dir",
]


def state_dir() -> Path:
    base = os.environ.get("XDG_STATE_HOME") or str(Path.home() / ".local" / "state")
    return Path(base) / "opsconsole"


def user_config_dir() -> Path:
    base = os.environ.get("XDG_CONFIG_HOME") or str(Path.home() / ".config")
    return Path(base) / "opsconsole"


def config_dir_candidates(explicit: Path | None) -> list[tuple[str, Path]]:
    """Where to look for the config directory, in order: --config, env, ./config, XDG."""
    out: list[tuple[str, Path]] = []
    if explicit is not None:
        out.append(("--config", explicit))
    env = os.environ.get("OPSCONSOLE_CONFIG")
    if env:
        out.append(("OPSCONSOLE_CONFIG", Path(env)))
    out.append(("./config", Path.cwd() / "config"))
    out.append(("XDG_CONFIG_HOME", user_config_dir()))
    return out


def default_db_path() -> Path:
    env = os.environ.get("OPSCONSOLE_DB")
    if env:
        return Path(env)
    return state_dir() / "opsconsole.db"


def shipped_dir(name: str) -> Path:
    """A folder shipped with opsconsole: ``runbooks``, ``playbooks``, ``config`` or ``schemas``.

    The repository's top-level folders are the one source of truth. A wheel (pip, pipx)
    carries them as package data, ``opsconsole/_shipped/NAME`` (see pyproject.toml), found
    through importlib.resources; an editable install or a source checkout has no such
    copy and reads the top-level folder of the checkout itself.
    """
    from importlib.resources import files

    packaged = files("opsconsole").joinpath("_shipped", name)
    if isinstance(packaged, Path) and packaged.is_dir():
        return packaged
    checkout = Path(__file__).resolve().parent.parent.parent / name
    if checkout.is_dir() or not isinstance(packaged, Path):
        return checkout
    return packaged
