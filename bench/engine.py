"""Per-step cost of the runbook engine: flat, and close to the cost of the process itself.

Run: python bench/engine.py [--sizes 50,200,800]

For each size N: a runbook of N ``shell: ["true"]`` steps runs through the real engine
(``start_run``: every transition committed with its audit record, in a temporary SQLite
database), against a shell loop that starts ``sh -c true`` N times, measured in the same
run. Prints wall and CPU (ours + children) per step, the ratio to the loop (target <= 3x)
and the growth of the per-step cost from the smallest to the largest size (linear cost:
close to 1.0; the quadratic engine this replaces grew 4x from 50 to 800).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _util import verdict

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "src"))


def _cpu() -> float:
    me = resource.getrusage(resource.RUSAGE_SELF)
    kids = resource.getrusage(resource.RUSAGE_CHILDREN)
    return me.ru_utime + me.ru_stime + kids.ru_utime + kids.ru_stime


def shell_loop(n: int) -> tuple[float, float]:
    script = f'i=0; while [ "$i" -lt {n} ]; do sh -c true; i=$((i+1)); done'
    c0, t0 = _cpu(), time.perf_counter()
    subprocess.run(["sh", "-c", script], check=True)
    return time.perf_counter() - t0, _cpu() - c0


def engine_run(n: int, work: Path) -> tuple[float, float]:
    from tests.runbooks.conftest import ScriptedOperator

    from opsconsole.audit import AuditLog
    from opsconsole.config import load_config
    from opsconsole.events import EventBus
    from opsconsole.runbooks import RunEnv, load_runbook, start_run
    from opsconsole.store import open_db

    d = work / f"n{n}"
    d.mkdir()
    cfg = d / "config"
    cfg.mkdir()
    (cfg / "inventory.yaml").write_text(
        "regions:\n  r1:\n    name: R\n    services:\n      api:\n"
        "        endpoints: [{url: 'http://127.0.0.1:9/'}]\n"
    )
    rb_path = d / "steps.yaml"
    rb_path.write_text(
        "name: steps\nsteps:\n"
        + "".join(f"  - {{id: s{i}, shell: [\"true\"]}}\n" for i in range(n))
    )
    db = open_db(d / "state.db")
    if os.environ.get("BENCH_SYNCHRONOUS"):  # to show what the fsyncs cost (not the default)
        db.execute(f"PRAGMA synchronous = {os.environ['BENCH_SYNCHRONOUS']}")
    env = RunEnv(
        db=db,
        audit=AuditLog(db, actor="bench", interface="bench"),
        config=load_config(cfg),
        bus=EventBus(),
    )
    rb = load_runbook(rb_path)
    c0, t0 = _cpu(), time.perf_counter()
    result = asyncio.run(start_run(rb, {}, env=env, operator=ScriptedOperator()))
    wall, cpu = time.perf_counter() - t0, _cpu() - c0
    assert result.status == "succeeded", result.error
    return wall, cpu


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--sizes", default="50,200,800")
    args = ap.parse_args()
    sizes = [int(s) for s in args.sizes.split(",")]
    os.environ.setdefault("OPSCONSOLE_DB", "/nonexistent/unused.db")
    sys.path.insert(0, str(ROOT))
    work = Path(tempfile.mkdtemp(prefix="bench-engine-"))
    engine_run(5, work / "warm") if (work / "warm").mkdir() is None else None
    rows = []
    for n in sizes:
        base_wall, base_cpu = shell_loop(n)
        wall, cpu = engine_run(n, work)
        rows.append((n, wall, cpu, base_wall, base_cpu))
        print(
            f"{n:>4} steps: engine {wall:6.2f} s ({wall / n * 1000:5.1f} ms/step, "
            f"cpu {cpu:5.2f} s) | sh -c true loop {base_wall:5.2f} s "
            f"({base_wall / n * 1000:4.1f} ms each, cpu {base_cpu:4.2f} s) | "
            f"ratio {wall / base_wall:4.2f}x"
        )
    first, last = rows[0], rows[-1]
    growth = (last[1] / last[0]) / (first[1] / first[0])
    cpu_growth = (last[2] / last[0]) / (first[2] / first[0])
    worst = max(r[1] / r[3] for r in rows)
    print(
        f"per-step growth {first[0]} -> {last[0]} steps: wall {growth:.2f}x, cpu {cpu_growth:.2f}x"
    )
    print(f"worst ratio to the shell loop: {worst:.2f}x, {verdict(worst, 3.0)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
