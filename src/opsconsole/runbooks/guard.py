"""The run guard: ends a dead engine's step processes at once.

Started once per engine process (``python -I guard.py ENGINE_ID``, stdlib only, in its
own session so terminal signals do not reach it). It blocks reading its stdin, a pipe
from the engine. The engine writes ``done`` before it exits normally; an end of file
without it means the engine was killed (``kill -9``), and the guard kills every process
whose environment carries ``OPSCONSOLE_ENGINE=ENGINE_ID`` - the step processes and all
their descendants, ``setsid`` or not - before they can do anything more.
"""

from __future__ import annotations

import os
import signal
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import procs


def main() -> int:
    engine_id = sys.argv[1]
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGHUP, signal.SIG_IGN)
    data = b""
    while True:
        chunk = os.read(0, 64)
        if not chunk:
            break
        data += chunk
    if b"done" in data:
        return 0
    for _ in range(3):
        procs.kill_all([], engine_id, scan=True, var=procs.ENGINE_ENV)
    return 0


if __name__ == "__main__":
    sys.exit(main())
