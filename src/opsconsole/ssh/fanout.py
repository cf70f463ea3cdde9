"""Run one command on many hosts in parallel, with a forks limit and a failure budget."""

from __future__ import annotations

import threading
from collections.abc import Callable
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from opsconsole.ssh.client import DEFAULT_MAX_OUTPUT, CommandResult, run_command
from opsconsole.ssh.threads import in_thread

if TYPE_CHECKING:
    from opsconsole.config import Host

__all__ = ["FanoutOutputCallback", "FanoutResult", "run_on_hosts", "run_on_hosts_async"]

FanoutOutputCallback = Callable[[str, str, str], None]
"""``(alias, stream, text)``; called from worker threads."""


@dataclass
class FanoutResult:
    results: dict[str, CommandResult] = field(default_factory=dict)
    """per host alias, in the order the hosts were given; only hosts that were started"""
    failed: int = 0
    aborted: bool = False
    """max_fail_percentage was exceeded, or ``stop`` was set, before every host started"""
    skipped: list[str] = field(default_factory=list)
    """hosts never started because the run was aborted"""

    @property
    def ok(self) -> bool:
        return self.failed == 0 and not self.aborted

    @property
    def succeeded(self) -> int:
        return sum(1 for r in self.results.values() if r.ok)


def run_on_hosts(
    hosts: dict[str, Host],
    command: str,
    *,
    forks: int = 5,
    max_fail_percentage: float | None = None,
    timeout: float,
    known_hosts: Path | None = None,
    on_output: FanoutOutputCallback | None = None,
    on_result: Callable[[CommandResult], None] | None = None,
    stop: threading.Event | None = None,
    max_output: int = DEFAULT_MAX_OUTPUT,
    remote_timeout: bool = True,
) -> FanoutResult:
    """Run ``command`` on every host, at most ``forks`` at a time; blocking.

    A host fails when its result is not ``ok`` (exit != 0, error, timeout). As soon as
    ``failed * 100 / len(hosts) > max_fail_percentage`` no further host is started;
    hosts already running finish, the rest are listed in ``skipped``. Setting ``stop``
    (e.g. on Ctrl-C) starts no further host *and* kills the commands still running.
    ``timeout`` applies to each host. ``on_result`` is called as each host finishes.
    """
    if forks < 1:
        raise ValueError("forks must be at least 1")
    aliases = list(hosts)
    outcome = FanoutResult()
    done: dict[str, CommandResult] = {}
    if not aliases:
        return outcome

    def one(alias: str) -> CommandResult:
        cb = None
        if on_output is not None:

            def cb(stream: str, text: str, _alias: str = alias) -> None:
                on_output(_alias, stream, text)

        return run_command(
            hosts[alias],
            command,
            timeout=timeout,
            known_hosts=known_hosts,
            alias=alias,
            on_output=cb,
            max_output=max_output,
            remote_timeout=remote_timeout,
            cancel=stop,
        )

    def over_budget() -> bool:
        if stop is not None and stop.is_set():
            return True
        if max_fail_percentage is None:
            return False
        return outcome.failed * 100 / len(aliases) > max_fail_percentage

    pending = iter(aliases)
    running: dict[Future[CommandResult], str] = {}
    with ThreadPoolExecutor(
        max_workers=min(forks, len(aliases)), thread_name_prefix="ssh-fanout"
    ) as pool:

        def start_more() -> None:
            while len(running) < forks and not over_budget():
                alias = next(pending, None)
                if alias is None:
                    return
                running[pool.submit(one, alias)] = alias

        start_more()
        while running:
            finished, _ = wait(running, return_when=FIRST_COMPLETED)
            for fut in finished:
                alias = running.pop(fut)
                res = fut.result()
                done[alias] = res
                if not res.ok:
                    outcome.failed += 1
                if on_result is not None:
                    on_result(res)
            start_more()
    outcome.skipped = list(pending)
    outcome.aborted = bool(outcome.skipped)
    outcome.results = {a: done[a] for a in aliases if a in done}
    return outcome


run_on_hosts_async = in_thread(run_on_hosts)
"""``run_on_hosts`` in a worker thread, for async callers."""
