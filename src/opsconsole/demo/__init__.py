"""The embedded demo deployment: four simulated regions on 127.0.0.1: ``opsconsole demo``.

Importing this package is cheap; aiohttp and friends load with the submodules.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from opsconsole.demo.deployment import Demo, DemoInfo, DemoThread, default_state_dir
    from opsconsole.demo.runner import DemoClient, run_headless

__all__ = ["Demo", "DemoClient", "DemoInfo", "DemoThread", "default_state_dir", "run_headless"]


def __getattr__(name: str) -> Any:
    if name in ("Demo", "DemoInfo", "DemoThread", "default_state_dir"):
        from opsconsole.demo import deployment

        return getattr(deployment, name)
    if name in ("DemoClient", "run_headless"):
        from opsconsole.demo import runner

        return getattr(runner, name)
    raise AttributeError(name)
