"""Finding a running demo from another terminal, whatever ``--state-dir`` it was started with.

A demo writes ``demo.json`` into its state directory once it serves (see
:mod:`opsconsole.demo.deployment`) and records that directory in a small pointer file,
``$XDG_STATE_HOME/opsconsole/demo-current.json``. ``opsconsole demo env|info|fault``
look at ``--state-dir`` if given, else the pointer, else the default state directory,
and only accept a demo whose process is still alive.
"""

from __future__ import annotations

import contextlib
import json
import os
from dataclasses import dataclass
from pathlib import Path

from opsconsole.errors import NotFoundError

__all__ = ["RunningDemo", "forget", "locate_demo", "pointer_file", "read_running", "remember"]


@dataclass(frozen=True)
class RunningDemo:
    pid: int
    router_url: str
    state_dir: Path
    config_dir: Path
    database: Path

    @property
    def api_key_file(self) -> Path:
        return self.state_dir / "api-key"


def pointer_file() -> Path:
    from opsconsole.paths import state_dir

    return state_dir() / "demo-current.json"


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # another account's process: alive, even if we may not signal it
    return True


def read_running(state_dir: Path) -> RunningDemo | None:
    """The demo serving from ``state_dir``, or None (no ``demo.json``, or its process died)."""
    try:
        data = json.loads((state_dir / "demo.json").read_text(encoding="utf-8"))
        demo = RunningDemo(
            pid=int(data["pid"]),
            router_url=str(data["router_url"]),
            state_dir=Path(data["state_dir"]),
            config_dir=Path(data["config_dir"]),
            database=Path(data["database"]),
        )
    except (OSError, ValueError, KeyError, TypeError):
        return None
    return demo if _alive(demo.pid) else None


def locate_demo(explicit: Path | None = None) -> RunningDemo:
    """The running demo: in ``explicit`` if given, else the last one started, else the default."""
    from opsconsole.demo.deployment import default_state_dir

    if explicit is not None:
        found = read_running(explicit.resolve())
        if found is None:
            raise NotFoundError(
                f"no running demo in {explicit}; start one with "
                f"`opsconsole demo --state-dir {explicit}`"
            )
        return found
    candidates: list[Path] = []
    with contextlib.suppress(OSError, ValueError, KeyError, TypeError):
        candidates.append(Path(json.loads(pointer_file().read_text())["state_dir"]))
    candidates.append(default_state_dir().resolve())
    for directory in candidates:
        found = read_running(directory)
        if found is not None:
            return found
    raise NotFoundError(
        f"no running demo found (looked in {default_state_dir()} and {pointer_file()}); "
        "start one with `opsconsole demo`, or pass the --state-dir it was started with"
    )


def remember(state_dir: Path) -> None:
    """Record ``state_dir`` as the demo other terminals should find (atomic replace)."""
    pointer = pointer_file()
    try:
        pointer.parent.mkdir(parents=True, exist_ok=True)
        tmp = pointer.with_name(f".{pointer.name}.{os.getpid()}")
        tmp.write_text(json.dumps({"state_dir": str(state_dir)}) + "\n", encoding="utf-8")
        tmp.replace(pointer)
    except OSError:
        pass  # only a convenience: `--state-dir` still finds the demo


def forget(state_dir: Path) -> None:
    """Remove the pointer if it still names ``state_dir`` (a later demo may have replaced it)."""
    pointer = pointer_file()
    try:
        if Path(json.loads(pointer.read_text())["state_dir"]) == state_dir:
            pointer.unlink()
    except (OSError, ValueError, KeyError, TypeError):
        pass
