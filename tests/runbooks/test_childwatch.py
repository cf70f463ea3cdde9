"""Step processes are waited for by the event loop (a pidfd), not by a thread each."""

from __future__ import annotations

import sys
import threading
from typing import Any

import pytest


@pytest.mark.skipif(sys.platform != "linux", reason="pidfds are Linux only")
async def test_shell_steps_start_no_thread_per_process(
    env: Any, operator: Any, write_runbook: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    from opsconsole.runbooks import start_run
    from opsconsole.runbooks.state import get_steps

    started: list[str] = []
    real_start = threading.Thread.start

    def start(self: threading.Thread) -> None:
        started.append(self.name)
        real_start(self)

    monkeypatch.setattr(threading.Thread, "start", start)
    rb = write_runbook("""
        name: many
        steps:
          - {id: a, shell: ["true"]}
          - {id: b, shell: {command: "exit 3", ok_codes: [3]}}
          - {id: c, shell: ["sh", "-c", "echo $$"]}
        """)
    result = await start_run(rb, {}, env=env, operator=operator)
    assert result.status == "succeeded", result.error
    steps = get_steps(env.db, result.run_id)
    assert steps[1].result["rc"] == 3  # exit statuses still arrive
    assert steps[2].output.strip().isdigit()
    assert not [n for n in started if n.startswith("waitpid")], started
