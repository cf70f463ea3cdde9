"""Commit-to-follower latency of live updates, PostgreSQL (LISTEN/NOTIFY) vs SQLite
(change counter polled every 0.2 s), measured in the same run.

A writer process records N audited changes, ``--gap`` s apart, and prints when each
committed; this process follows the store through :func:`opsconsole.changes.open_changes`
and notes when each arrived: the figure runs from the start of the audited write (its
durable commit included) to the follower having the change. Prints min / median / p95 /
max per engine and the ratio of the medians. The PostgreSQL cluster is a throw-away one
(tests/pg.py, needs root), with fsync on as in production.

    python3 bench/changes.py [--count 100] [--gap 0.05]
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "src"))
sys.path.insert(0, str(ROOT))

WRITER = """
import sys, time
from opsconsole.audit import AuditLog
from opsconsole.store import open_db
db = open_db(sys.argv[1])
log = AuditLog(db, actor="bench", interface="cli")
print("ready", flush=True)
sys.stdin.readline()
for i in range(int(sys.argv[2])):
    t0 = time.time()  # before the write: the figure includes its (durable) commit
    seq = log.record("incident.note", "INC-BENCH", {"text": str(i)})
    print(seq, t0, flush=True)
    time.sleep(float(sys.argv[3]))
"""


def measure(location: str, count: int, gap: float) -> list[float]:
    from opsconsole.capabilities import register_all
    from opsconsole.changes import open_changes
    from opsconsole.store import open_db

    register_all()
    open_db(location).close()
    source = open_changes(location)
    stop = threading.Event()
    cursor = source.cursor_now()
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src")}
    writer = subprocess.Popen(
        [sys.executable, "-c", WRITER, location, str(count), str(gap)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
        env=env,
    )
    assert writer.stdin and writer.stdout and writer.stdout.readline().strip() == "ready"
    writer.stdin.write("go\n")
    writer.stdin.flush()
    received: dict[int, float] = {}
    deadline = time.monotonic() + 120 + count * gap
    while len(received) < count and time.monotonic() < deadline:
        for change in source.wait(cursor, stop, timeout=5):
            received[change.seq] = time.time()
            cursor = change.seq
    committed = {int(s): float(t) for s, t in (line.split() for line in writer.stdout)}
    writer.wait()
    source.close()
    return sorted(received[s] - committed[s] for s in committed if s in received)


def show(name: str, lat: list[float]) -> float:
    ms = [x * 1000 for x in lat]
    p95 = ms[max(0, int(len(ms) * 0.95) - 1)]
    med = statistics.median(ms)
    print(
        f"{name:10s} n={len(ms)}  min {ms[0]:.2f} ms  median {med:.2f} ms  "
        f"p95 {p95:.2f} ms  max {ms[-1]:.2f} ms"
    )
    return med


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=100)
    parser.add_argument("--gap", type=float, default=0.05)
    args = parser.parse_args()
    from tests.pg import start_cluster

    with tempfile.TemporaryDirectory() as tmp:
        sqlite = measure(str(Path(tmp) / "bench.db"), args.count, args.gap)
    cluster = start_cluster(durable=True)
    try:
        cluster.sql("CREATE DATABASE bench")
        pg = measure(cluster.url("bench"), args.count, args.gap)
    finally:
        cluster.stop()
    print(f"write start -> follower latency, {args.count} changes {args.gap:g} s apart")
    med_sqlite = show("sqlite", sqlite)
    med_pg = show("postgresql", pg)
    print(f"median ratio postgresql/sqlite: {med_pg / med_sqlite:.3f} (target: every change < 1 s)")
    worst = max(sqlite[-1], pg[-1])
    print("OK" if worst < 1.0 else f"SLOW: worst {worst:.3f} s")


if __name__ == "__main__":
    main()
