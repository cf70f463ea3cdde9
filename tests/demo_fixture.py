"""Pytest fixtures that run the demo deployment (issue 3) for any test.

Use them from a test module or your own ``tests/<yours>/conftest.py``::

    from tests.demo_fixture import demo, demo_thread  # noqa: F401

``demo`` yields a :class:`opsconsole.demo.DemoInfo`: ``.state_dir``, ``.config_dir``
(pass to ``--config``), ``.db_path``, ``.router_url``, ``.api_key`` (current key, re-read),
``.api_key_file``, ``.service_ports`` and ``.service_url(region, service)``. The demo
runs in a background thread of the test process, on free ports, in ``tmp_path/demo``,
and stops after the test. ``demo_thread`` is the :class:`opsconsole.demo.DemoThread`
(``.demo.sim`` is the live simulation). ``demo_process`` runs
``opsconsole demo --no-ui`` as a real subprocess instead (SIGTERM at the end).

Note: ``tests/conftest.py`` sets ``OPSCONSOLE_DB`` for every test, which wins over the
demo settings' ``database``; CLI calls in tests use the test's database.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from opsconsole.demo import DemoInfo, DemoThread

__all__ = ["demo", "demo_process", "demo_thread"]


@pytest.fixture
def demo_thread(tmp_path: Path) -> Iterator[DemoThread]:
    runner = DemoThread(tmp_path / "demo")
    runner.start()
    try:
        yield runner
    finally:
        runner.stop()


@pytest.fixture
def demo(demo_thread: DemoThread) -> DemoInfo:
    assert demo_thread.demo.info is not None
    return demo_thread.demo.info


@pytest.fixture
def demo_process(tmp_path: Path) -> Iterator[DemoInfo]:
    from tests.helpers import SRC

    state_dir = (tmp_path / "demo-proc").resolve()
    env = dict(os.environ, PYTHONPATH=str(SRC) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    proc = subprocess.Popen(
        [sys.executable, "-m", "opsconsole", "demo", "--no-ui", "--state-dir", str(state_dir)],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    meta = state_dir / "demo.json"
    deadline = time.monotonic() + 60
    while True:
        if meta.is_file():
            try:
                data = json.loads(meta.read_text())
                break
            except ValueError:
                pass
        if proc.poll() is not None:
            raise RuntimeError(f"demo exited early: {proc.stderr.read() if proc.stderr else ''}")
        if time.monotonic() > deadline:
            proc.kill()
            raise RuntimeError("demo did not start within 60 s")
        time.sleep(0.05)
    info = DemoInfo(
        state_dir=state_dir,
        config_dir=Path(data["config_dir"]),
        db_path=Path(data["database"]),
        router_url=data["router_url"],
        router_port=data["ports"]["router"],
        service_ports=data["ports"]["services"],
    )
    try:
        yield info
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
