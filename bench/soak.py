"""Soak: kill the engine at random moments (SIGKILL, SIGTERM, SIGHUP), resume, and count
non-idempotent side effects that happened twice or never.

Run: python bench/soak.py [--kills 50] [--runs 10] [--steps 12] [--seed 1]

Each run is a real ``opsconsole runbook run`` process of a runbook whose steps are not
idempotent: step ``sN`` appends ``sN`` to an effects file as its last action (after a
short sleep, and through a double-forked ``setsid`` child for every third step, so a
step process that outlived its engine would write late). The soak kills the process at
a random moment, checks that no process of the run survives, then resumes it - and
kills the resume too, until its share of kills is spent; a last resume finishes it.

An interrupted non-idempotent step makes the engine ask whether to run it again; the
soak answers as a careful operator would, by looking at the world: "no, treat it as
done" if its effect is there, "yes" if not. So a duplicate means the engine ran a step
it had finished, ran one twice at once, or let a killed step's process write later; a
missing effect means a step was marked done without running. Target: 0 and 0.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import random
import signal
import sqlite3
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SIGNALS = [signal.SIGKILL, signal.SIGTERM, signal.SIGHUP]


def runbook(effects: Path, steps: int) -> str:
    lines = ["name: soak", "steps:"]
    for i in range(steps):
        write = f"echo s{i} >> {effects}"
        if i % 3 == 2:  # the effect comes from a double-forked setsid grandchild
            cmd = f"(setsid sh -c 'sleep 0.05; {write}' &); sleep 0.2"
        else:
            cmd = f"sleep 0.05; {write}"
        lines.append(f'  - id: s{i}\n    shell: "{cmd}"')
    return "\n".join(lines) + "\n"


def _db_query(db: Path, sql: str, args: list[object]) -> list[tuple[object, ...]]:
    for _ in range(50):
        try:
            with contextlib.closing(sqlite3.connect(db, timeout=10)) as conn:
                return conn.execute(sql, args).fetchall()
        except sqlite3.Error:
            time.sleep(0.1)
    return []


def _survivors(run_id: str) -> int:
    sys.path.insert(0, str(ROOT / "src"))
    from opsconsole.runbooks.procs import find_by_token

    return len(find_by_token(f"{run_id}/"))


def _answers(db: Path, run_id: str, effects: Path) -> str:
    rows = _db_query(
        db,
        "SELECT step_id FROM run_steps WHERE run_id = ? AND status IN ('running', 'interrupted')",
        [run_id],
    )
    if not rows:
        return ""
    done = set(effects.read_text().split()) if effects.exists() else set()
    return "n\ny\n" if rows[0][0] in done else "y\n"


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--kills", type=int, default=50)
    ap.add_argument("--runs", type=int, default=10)
    ap.add_argument("--steps", type=int, default=24)
    ap.add_argument("--seed", type=int, default=1)
    args = ap.parse_args()
    rng = random.Random(args.seed)
    work = Path(tempfile.mkdtemp(prefix="soak-"))
    cfg = work / "config"
    cfg.mkdir()
    (cfg / "inventory.yaml").write_text(
        "regions:\n  r1:\n    name: R\n    services:\n      api:\n"
        "        endpoints: [{url: 'http://127.0.0.1:9/'}]\n"
    )
    db = work / "state.db"
    env = dict(os.environ, PYTHONPATH=str(ROOT / "src"), OPSCONSOLE_DB=str(db))
    base = [sys.executable, "-m", "opsconsole", "--config", str(cfg), "runbook"]
    kills: Counter[str] = Counter()
    duplicates = missing = survivors = tracebacks = unfinished = 0
    per_run = [
        args.kills // args.runs + (1 if r < args.kills % args.runs else 0) for r in range(args.runs)
    ]
    t_start = time.monotonic()
    carry = 0  # kills a run that finished early did not use go to the next one
    for r in range(args.runs):
        effects = work / f"effects-{r}"
        rb = work / f"soak-{r}.yaml"
        rb.write_text(runbook(effects, args.steps))
        run_id: str | None = None
        budget = per_run[r] + carry
        used = 0
        while True:
            last = used >= budget
            if run_id is None:
                cmd, answers = [*base, "run", str(rb)], ""
            else:
                cmd, answers = [*base, "resume", run_id], _answers(db, run_id, effects)
            proc = subprocess.Popen(
                cmd,
                env=env,
                stdin=subprocess.PIPE,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.PIPE,
                text=True,
                start_new_session=True,
            )
            assert proc.stdin is not None
            with contextlib.suppress(BrokenPipeError):
                proc.stdin.write(answers)
                proc.stdin.close()
            proc.stdin = None  # communicate() must not touch it again
            if not last:
                time.sleep(rng.uniform(0.6, 2.5))  # python start-up is ~0.5 s here
                sig = rng.choice(SIGNALS)
                if proc.poll() is None:  # only a kill of a live engine counts
                    with contextlib.suppress(ProcessLookupError):
                        os.kill(proc.pid, sig)
                    kills[sig.name] += 1
                    used += 1
            try:
                err = proc.communicate(timeout=120)[1]
            except subprocess.TimeoutExpired:
                proc.kill()
                err = proc.communicate()[1]
            tracebacks += "Traceback" in err
            if run_id is None:
                rows = _db_query(db, "SELECT id FROM runs WHERE path = ?", [str(rb)])
                run_id = str(rows[0][0]) if rows else None
                if run_id is None:  # killed before the run was recorded: start again
                    continue
            time.sleep(0.3)
            survivors += _survivors(run_id)
            status = _db_query(db, "SELECT status FROM runs WHERE id = ?", [run_id])
            if status and status[0][0] == "succeeded":
                break
        carry = max(0, budget - used)
        time.sleep(0.5)  # a late writer would show up now
        status = _db_query(db, "SELECT status FROM runs WHERE id = ?", [run_id])
        if not status or status[0][0] != "succeeded":
            unfinished += 1
        counts = Counter(effects.read_text().split()) if effects.exists() else Counter()
        duplicates += sum(1 for i in range(args.steps) if counts[f"s{i}"] > 1)
        missing += sum(1 for i in range(args.steps) if counts[f"s{i}"] == 0)
    total = sum(kills.values())
    print(
        f"runs {args.runs} x {args.steps} non-idempotent steps, kills {total} "
        f"({', '.join(f'{k} {v}' for k, v in sorted(kills.items()))}) in "
        f"{time.monotonic() - t_start:.0f} s"
    )
    print(
        f"duplicates {duplicates}, missing {missing}, surviving step processes {survivors}, "
        f"unfinished runs {unfinished}, tracebacks {tracebacks}"
    )
    return 0 if duplicates == missing == survivors == unfinished == tracebacks == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
