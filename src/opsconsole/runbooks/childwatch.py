"""Waiting for step processes without a thread per process (Python 3.11 on Linux).

asyncio on 3.11 watches each child with a thread of its own (``ThreadedChildWatcher``):
starting that thread and handing the GIL to it costs about a millisecond per shell step,
a third of what the engine spends on a ``true`` step. Python 3.12 watches children
through a pidfd polled by the event loop that started them; :func:`install` puts the
same watcher in place on 3.11. It needs no signal handler and no thread, serves every
event loop (each loop watches the children it started), and - like the thread watcher -
waits only for its own pids, so orphans the engine adopts as subreaper are left to
:mod:`opsconsole.runbooks.procs`.
"""

from __future__ import annotations

import asyncio
import os
import sys
import warnings
from typing import Any

__all__ = ["install", "reaped"]

_installed = False
# Pids this watcher reaped whose ``returncode`` asyncio has not set yet (it does so one
# loop callback later): such a pid may already name another process.
_reaped: set[int] = set()


class _PidfdWatcher(asyncio.AbstractChildWatcher):
    """Python 3.12's ``PidfdChildWatcher``: bound to no loop, always active."""

    def __enter__(self) -> _PidfdWatcher:
        return self

    def __exit__(self, *exc: object) -> None:
        return None

    def is_active(self) -> bool:
        return True

    def close(self) -> None:
        return None

    def attach_loop(self, loop: Any) -> None:
        return None

    def add_child_handler(self, pid: int, callback: Any, *args: Any) -> None:
        loop = asyncio.get_running_loop()
        pidfd = os.pidfd_open(pid)
        loop._add_reader(pidfd, self._do_wait, pid, pidfd, callback, args)  # type: ignore[attr-defined]

    def _do_wait(self, pid: int, pidfd: int, callback: Any, args: tuple[Any, ...]) -> None:
        asyncio.get_running_loop()._remove_reader(pidfd)  # type: ignore[attr-defined]
        try:
            _, status = os.waitpid(pid, 0)
        except ChildProcessError:
            returncode = 255  # reaped elsewhere (what asyncio reports then too)
        else:
            returncode = os.waitstatus_to_exitcode(status)
        os.close(pidfd)
        _reaped.add(pid)
        callback(pid, returncode, *args)  # schedules the transport's process_exited
        asyncio.get_running_loop().call_soon(_reaped.discard, pid)  # ... which runs first

    def remove_child_handler(self, pid: int) -> bool:
        return True  # asyncio never calls it (as in 3.12)


def install() -> bool:
    """Use the pidfd watcher for this process's asyncio subprocesses (Python 3.11 on a
    kernel with pidfds; elsewhere asyncio's own choice stays). Once per process."""
    global _installed
    if _installed:
        return True
    if sys.version_info >= (3, 12) or not hasattr(os, "pidfd_open") or sys.platform != "linux":
        return False
    try:
        os.close(os.pidfd_open(os.getpid()))
    except OSError:
        return False
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        asyncio.get_event_loop_policy().set_child_watcher(_PidfdWatcher())
    _installed = True
    return True


def reaped(pid: int) -> bool:
    """``pid``, a child started in this thread's event loop, was reaped (although its
    ``returncode`` may not be set yet). Meaningful only when :func:`install` returned
    True: then children are reaped nowhere but in their loop's thread, so a pid for which
    this is False and whose ``returncode`` is None still names that child."""
    return pid in _reaped
