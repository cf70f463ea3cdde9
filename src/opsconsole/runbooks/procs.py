"""Owning the processes a step starts, including ones that leave its process group.

Three mechanisms, each covering what the previous one cannot:

* the engine becomes a *child subreaper* (``prctl(PR_SET_CHILD_SUBREAPER)``), so a
  ``setsid``/double-forked descendant of a step is re-parented to the engine instead of
  init, and stays findable through ``/proc/<pid>/task/*/children``;
* every step process carries a *token* in its environment (``OPSCONSOLE_STEP_TOKEN``,
  ``<run id>/<phase>/<idx>/<attempt>``); environments are inherited through ``fork`` and
  ``setsid``, so after a ``kill -9`` of the engine a resume (or the run's guard) finds what
  the dead run left behind by scanning ``/proc``;
* each process is identified by pid *and* start time (``/proc/<pid>/stat`` field 22), so
  a recycled pid is never mistaken for the original;
* a process that dropped the token (``env -i``) but still holds one of a step's pipes is
  found through ``/proc/<pid>/fd`` (the pipe's inode), so it cannot keep the step
  waiting for end-of-file.

A token names one step attempt and is matched whole; a prefix ending in ``/`` (``<run
id>/``) names every process of a run.

Linux only (``/proc``); elsewhere these functions find nothing and kill nothing.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import signal
import time
from collections.abc import Iterable
from pathlib import Path

__all__ = [
    "TOKEN_ENV",
    "alive",
    "become_subreaper",
    "descendants",
    "find_by_token",
    "kill_all",
    "pipe_holders",
    "proc_start",
]

TOKEN_ENV = "OPSCONSOLE_STEP_TOKEN"
ENGINE_ENV = "OPSCONSOLE_ENGINE"
# Reads of an empty /proc/PID/environ before it counts as empty (1 ms apart).
ENVIRON_RETRIES = 20
_PR_SET_CHILD_SUBREAPER = 36
_subreaper = False


def become_subreaper() -> bool:
    """Make orphaned descendants of this process its children (once per process)."""
    global _subreaper
    if _subreaper:
        return True
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        _subreaper = libc.prctl(_PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) == 0
    except (OSError, AttributeError):
        _subreaper = False
    return _subreaper


def _stat(pid: int) -> list[str] | None:
    try:
        text = _read(f"/proc/{pid}/stat").decode("ascii", errors="replace")
    except OSError:
        return None
    # Field 2 (comm) may contain spaces and parentheses: split after the last ')'.
    return text.rsplit(")", 1)[-1].split()


def proc_start(pid: int) -> int | None:
    """The start time of ``pid`` in clock ticks since boot (None: no such process)."""
    fields = _stat(pid)
    return int(fields[19]) if fields and len(fields) > 19 else None


def alive(pid: int | None, start: int | None = None) -> bool:
    """``pid`` exists, is not a zombie, and (when given) started at ``start``."""
    if not pid:
        return False
    fields = _stat(pid)
    if fields is None:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return False
        except PermissionError:
            return True
        return not Path("/proc").is_dir()  # no procfs: trust kill(0)
    if fields[0] in ("Z", "X"):
        return False
    return start is None or int(fields[19]) == start


def _read(path: str) -> bytes:
    """A small /proc file, read raw (cheaper than ``Path.read_text``: once per step)."""
    fd = os.open(path, os.O_RDONLY)
    try:
        return os.read(fd, 65536)
    finally:
        os.close(fd)


def _children(pid: int) -> list[int]:
    out: list[int] = []
    try:
        tasks = os.listdir(f"/proc/{pid}/task")
    except OSError:
        return out
    for tid in tasks:
        with contextlib.suppress(OSError, ValueError):
            out.extend(int(c) for c in _read(f"/proc/{pid}/task/{tid}/children").split())
    return out


def descendants(pid: int) -> list[int]:
    """Every live descendant of ``pid`` (children first)."""
    out: list[int] = []
    todo = [pid]
    seen = {pid}
    while todo:
        for child in _children(todo.pop()):
            if child not in seen:
                seen.add(child)
                out.append(child)
                todo.append(child)
    return out


def _environ(pid: int) -> bytes:
    """``/proc/PID/environ``. It reads empty for a moment while the process is between
    fork and exec (its memory being replaced), which would hide its token from a scan
    that runs just then: read again briefly before taking an empty answer."""
    path = Path(f"/proc/{pid}/environ")
    for _ in range(ENVIRON_RETRIES):
        try:
            data = path.read_bytes()
        except OSError:
            return b""
        if data or not alive(pid):
            return data  # a zombie's reads empty for good: no point reading again
        time.sleep(0.001)
    return b""


def _has_token(pid: int, prefix: bytes, var: str = TOKEN_ENV) -> bool:
    """``var`` in the environment of ``pid`` is ``prefix`` - or starts with it when
    ``prefix`` ends with ``/`` (attempt ``1`` is not attempt ``10``; engine ``12-3`` is
    not engine ``12-34``)."""
    data = _environ(pid)
    if not data:
        return False
    start = 0
    needle = var.encode() + b"=" + prefix
    whole = not prefix.endswith(b"/")
    while True:
        i = data.find(needle, start)
        if i < 0:
            return False
        end = i + len(needle)
        if (i == 0 or data[i - 1] == 0) and (not whole or end == len(data) or data[end] == 0):
            return True
        start = i + 1


def _all_pids() -> list[int]:
    try:
        return [int(p) for p in os.listdir("/proc") if p.isdigit()]
    except OSError:
        return []


def find_by_token(
    prefix: str, *, among: Iterable[int] | None = None, var: str = TOKEN_ENV
) -> list[int]:
    """Live processes whose ``var`` is the token ``prefix`` (or, for a prefix ending in
    ``/``, starts with it); ``among``: only these pids."""
    me = os.getpid()
    pids = _all_pids() if among is None else among
    want = prefix.encode()
    return [p for p in pids if p != me and _has_token(p, want, var) and alive(p)]


def pipe_holders(inodes: Iterable[int]) -> list[int]:
    """Live processes other than this one with a descriptor on one of these pipes
    (``os.fstat(fd).st_ino`` of either end; a pipe's ends share the inode)."""
    links = {f"pipe:[{i}]" for i in inodes}
    if not links:
        return []
    me = os.getpid()
    out: list[int] = []
    for pid in _all_pids():
        if pid == me:
            continue
        try:
            fds = os.listdir(f"/proc/{pid}/fd")
        except OSError:
            continue
        for fd in fds:
            try:
                link = os.readlink(f"/proc/{pid}/fd/{fd}")
            except OSError:
                continue
            if link in links:
                if alive(pid):
                    out.append(pid)
                break
    return out


def _reap(pids: Iterable[int]) -> None:
    """Collect exit statuses of our own children that we killed (orphans adopted as
    subreaper); never ``waitpid(-1)``, which would steal asyncio's children."""
    for pid in pids:
        with contextlib.suppress(ChildProcessError, OSError):
            os.waitpid(pid, os.WNOHANG)


def kill_all(
    roots: Iterable[tuple[int, int | None]],
    token: str | None,
    *,
    grace: float = 0.0,
    scan: bool = False,
    holding: Iterable[int] = (),
    exclude: Iterable[int] = (),
    var: str = TOKEN_ENV,
) -> list[int]:
    """End ``roots`` (pid, start time: a pid that was reaped and reused by another
    process is never touched), their descendants, processes carrying ``token`` (among
    this process's descendants at any depth - orphans it adopted as subreaper, however
    deep; with ``scan``, any process on the host), processes holding one of the pipes
    ``holding`` (inodes), and the descendants of all these. SIGTERM first when
    ``grace`` > 0, then SIGKILL until none is left. Returns the pids signalled."""
    me = os.getpid()
    skip = {me, *exclude}
    roots = list(roots)
    pipes = set(holding)
    managed = {pid for pid, _ in roots}  # asyncio waits for these: never reap them here

    def targets() -> list[int]:
        found: set[int] = set()
        for pid, start in roots:
            if start is not None and alive(pid, start):
                found.add(pid)
        if token is not None:
            among = None if scan else descendants(me)
            found.update(find_by_token(token, among=among, var=var))
        found.update(pipe_holders(pipes))
        for p in list(found):
            found.update(descendants(p))
        return [p for p in found if p not in skip and alive(p)]

    signalled: set[int] = set()
    current = targets()
    if grace > 0 and current:
        for p in current:
            with contextlib.suppress(OSError):
                os.kill(p, signal.SIGTERM)
        signalled.update(current)
        end = time.monotonic() + grace
        while time.monotonic() < end:
            _reap(p for p in current if p not in managed)
            current = [p for p in current if alive(p)]
            if not current:
                break
            time.sleep(0.02)
    for _ in range(50):
        current = targets()
        if not current:
            break
        for p in current:
            with contextlib.suppress(OSError):
                os.kill(p, signal.SIGKILL)
        signalled.update(current)
        time.sleep(0.005)
        _reap(p for p in current if p not in managed)
    _reap(p for p in signalled if p not in managed)
    return sorted(signalled)


# --- the engine's side: identity, guard ------------------------------------------------

_engine_id: str | None = None
_guard: object | None = None


def engine_id() -> str:
    """This process as ``pid-starttime`` (unique on this host across pid reuse)."""
    global _engine_id
    if _engine_id is None or not _engine_id.startswith(f"{os.getpid()}-"):
        _engine_id = f"{os.getpid()}-{proc_start(os.getpid()) or 0}"
    return _engine_id


def step_environment(token: str) -> dict[str, str]:
    """Environment entries that mark a step's processes (inherited by all descendants)."""
    return {TOKEN_ENV: token, ENGINE_ENV: engine_id()}


def ensure_guard() -> None:
    """Become a subreaper and start the guard that ends our step processes if this
    process is killed (once per process)."""
    global _guard
    become_subreaper()
    if _guard is not None and getattr(_guard, "_owner", None) == os.getpid():
        return
    import atexit
    import subprocess
    import sys

    script = Path(__file__).with_name("guard.py")
    env = {k: v for k, v in os.environ.items() if k not in (TOKEN_ENV, ENGINE_ENV)}
    try:
        proc = subprocess.Popen(
            [sys.executable, "-I", str(script), engine_id()],
            stdin=subprocess.PIPE,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
            env=env,
            close_fds=True,
        )
    except OSError:
        return
    proc._owner = os.getpid()  # type: ignore[attr-defined]
    _guard = proc

    def _done() -> None:
        with contextlib.suppress(OSError, ValueError):
            assert proc.stdin is not None
            proc.stdin.write(b"done")
            proc.stdin.close()

    atexit.register(_done)
