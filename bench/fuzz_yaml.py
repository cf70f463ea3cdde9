"""Fuzz every YAML kind (config, runbooks, playbooks, drills) through the real loaders.

Each worker is a subprocess with its data segment capped (``RLIMIT_DATA``, default
200 MB): a loader that tries to build an alias bomb dies with MemoryError, which counts as
a failure. Anything but the project's own user errors (``OpsError``: file:line messages)
is a *traceback*. Prints the counts and the first failures; exits 1 if there were any.

    python3 bench/fuzz_yaml.py [--cases 400] [--seed 1] [--mb 200]
"""

from __future__ import annotations

import argparse
import json
import os
import random
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
HOSTILE = [
    "a: &a [x,x,x,x,x,x,x,x,x]\n"
    + "".join(
        f"{chr(98 + i)}: &{chr(98 + i)} [" + ",".join([f"*{chr(97 + i)}"] * 9) + "]\n"
        for i in range(9)
    ),
    "[" * 3000 + "]" * 3000,
    "{a: " * 2000 + "1" + "}" * 2000,
    "a: &a [*a]\n",
    "d: 2026-13-45\n",
    "t: .inf\n",
    "t: .nan\n",
    "n: " + "9" * 5000 + "\n",
    "tz: " + "x" * 200_000 + "\n",
    "x: !!python/object:os.system [ls]\n",
    "x: !!binary AAAA\n",
    "x: !!set {a, b}\n",
    "? [a, b]\n: c\n",
    "a: 1\na: 2\n",
    "\t- x\n",
    "x: *undefined\n",
    "%YAML 1.1\n---\na: 1\n---\nb: 2\n",
    "x: '\x1b[31m[/bold]'\n",
]
VALUES = [
    "",
    "0",
    "-1",
    ".inf",
    "null",
    "[]",
    "{}",
    "2026-13-45",
    "'{{ x }}'",
    "*a",
    "&a x",
    "~",
    "true",
    "9" * 400,
    '"\\u0000"',
    "[1, [2, [3]]]",
    "!!str",
    "'[/bold]'",
]


def seeds() -> dict[str, list[Path]]:
    return {
        "runbook": sorted((ROOT / "runbooks").glob("*.yaml")),
        "playbook": sorted((ROOT / "playbooks").glob("*.yaml")),
        "inventory": [ROOT / "config" / "inventory.yaml"],
        "settings": [ROOT / "config" / "settings.yaml"],
        "drills": [ROOT / "config" / "drills.yaml"],
    }


def mutate(text: str, rng: random.Random) -> bytes:
    lines = text.splitlines(keepends=True)
    for _ in range(rng.randint(1, 4)):
        op = rng.randrange(8)
        i = rng.randrange(max(1, len(lines)))
        if op == 0 and lines:
            del lines[i]
        elif op == 1 and lines:
            lines.insert(i, lines[rng.randrange(len(lines))])
        elif op == 2 and lines:
            line = lines[i]
            if ":" in line:
                key = line.split(":", 1)[0]
                lines[i] = f"{key}: {rng.choice(VALUES)}\n"
        elif op == 3:
            lines.insert(i, rng.choice(HOSTILE))
        elif op == 4 and lines:
            lines[i] = "  " * rng.randint(0, 6) + lines[i].lstrip()
        elif op == 5:
            return (rng.choice(HOSTILE)).encode()
        elif op == 6 and lines:
            raw = bytearray(lines[i].encode())
            if raw:
                raw[rng.randrange(len(raw))] = rng.randrange(256)
            lines[i] = raw.decode("latin-1")
        elif op == 7:
            lines = lines[: rng.randrange(len(lines) + 1)]
    return "".join(lines).encode("utf-8", "surrogateescape") if lines else b""


WORKER = r"""
import json, resource, sys, traceback
from pathlib import Path
limit = int(sys.argv[1]) * 1024 * 1024
resource.setrlimit(resource.RLIMIT_DATA, (limit, limit))
sys.setrecursionlimit(10000)
from opsconsole.errors import OpsError
from opsconsole.config import load_config
from opsconsole.runbooks import load_runbook
from opsconsole.incidents.playbook import load_playbook
from opsconsole.drills.loader import load_drills
good = Path(sys.argv[2])
base = load_config(good)
cases = json.loads(Path(sys.argv[3]).read_text())
out = []
for kind, path in cases:
    p = Path(path)
    try:
        if kind == "runbook":
            load_runbook(p)
        elif kind == "playbook":
            load_playbook(p)
        elif kind in ("inventory", "settings"):
            load_config(p.parent)
        elif kind == "drills":
            load_drills(base, p)
        out.append([path, "ok", ""])
    except OpsError as exc:
        out.append([path, "user-error", str(exc).splitlines()[0][:200]])
    except BaseException as exc:
        out.append([path, "traceback", "".join(traceback.format_exception(exc))[-800:]])
print(json.dumps(out))
peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
print(json.dumps({"peak_kb": peak}))
"""


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--cases", type=int, default=400)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--mb", type=int, default=200)
    args = ap.parse_args()
    rng = random.Random(args.seed)
    tmp = Path(tempfile.mkdtemp(prefix="fuzz-yaml-"))
    good = tmp / "good"
    good.mkdir()
    for name in ("inventory.yaml", "settings.yaml"):
        (good / name).write_bytes((ROOT / "config" / name).read_bytes())
    kinds = seeds()
    cases: list[list[str]] = []
    for n in range(args.cases):
        kind = list(kinds)[n % len(kinds)]
        seed = rng.choice(kinds[kind])
        data = mutate(seed.read_text(encoding="utf-8"), rng)
        d = tmp / f"c{n}"
        d.mkdir()
        if kind in ("inventory", "settings"):
            for name in ("inventory.yaml", "settings.yaml"):
                (d / name).write_bytes((ROOT / "config" / name).read_bytes())
        target = d / (f"{kind}.yaml" if kind in ("inventory", "settings") else seed.name)
        target.write_bytes(data)
        cases.append([kind, str(target)])
    (tmp / "cases.json").write_text(json.dumps(cases))
    env = dict(os.environ, PYTHONPATH=str(ROOT / "src"))
    proc = subprocess.run(
        [sys.executable, "-c", WORKER, str(args.mb), str(good), str(tmp / "cases.json")],
        capture_output=True,
        text=True,
        env=env,
        timeout=1800,
    )
    if proc.returncode != 0:
        print("worker died:", proc.returncode, proc.stderr[-2000:])
        return 1
    lines = proc.stdout.strip().splitlines()
    results = json.loads(lines[0])
    peak_mb = json.loads(lines[1])["peak_kb"] / 1024
    counts: dict[str, int] = {}
    for _, status, _ in results:
        counts[status] = counts.get(status, 0) + 1
    print(f"cases {len(results)}: {counts}; peak RSS {peak_mb:.0f} MB (cap {args.mb} MB data)")
    bad = [r for r in results if r[1] == "traceback"]
    for path, _, tb in bad[:5]:
        print("TRACEBACK", path, tb)
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
