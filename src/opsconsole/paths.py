"""Where opsconsole keeps things: XDG locations and the environment overrides, in one place."""

from __future__ import annotations

import os
from pathlib import Path

__all__ = ["config_dir_candidates", "default_db_path", "shipped_dir", "state_dir"]


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
    """A directory shipped with the source tree (runbooks/, playbooks/, config/)."""
    here = Path(__file__).resolve()
    # src/opsconsole/paths.py -> repository root
    return here.parent.parent.parent / name
