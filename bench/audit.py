"""Audit log throughput and verification speed, against raw SQLite and bare SHA-256.

Run: python bench/audit.py [--appends N] [--verify-events N]

1. N appends, each committed on its own (the real use: one action, one commit), through
   AuditLog.record, against a plain sqlite3 INSERT loop with the same pragmas
   (WAL, synchronous=FULL, busy_timeout), each INSERT its own transaction.
   Target: ours >= 0.5 of raw throughput.
2. `verify` over M events against a bare loop that reads the same rows and SHA-256s them.
   Target: ours <= 1.5x the bare loop.
"""

from __future__ import annotations

import argparse
import hashlib
import sqlite3
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _util import timed, verdict

from opsconsole.audit import AuditLog, verify
from opsconsole.store import BUSY_TIMEOUT_MS, immediate, open_db


def raw_inserts(path: Path, n: int) -> float:
    conn = sqlite3.connect(str(path), isolation_level=None)
    conn.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
    conn.execute("PRAGMA journal_mode = WAL")
    conn.execute("PRAGMA synchronous = FULL")
    conn.execute(
        "CREATE TABLE ev (seq INTEGER PRIMARY KEY, ts TEXT, actor TEXT, interface TEXT, "
        "action TEXT, target TEXT, details TEXT, outcome TEXT, alg TEXT, prev_hash TEXT, hash TEXT)"
    )

    def run() -> None:
        for i in range(n):
            conn.execute("BEGIN IMMEDIATE")
            conn.execute(
                "INSERT INTO ev (ts, actor, interface, action, target, details, outcome, alg, "
                "prev_hash, hash) VALUES (?,?,?,?,?,?,?,?,?,?)",
                (
                    "2026-11-28T00:00:00.000000+00:00",
                    "bench",
                    "cli",
                    "bench.append",
                    str(i),
                    f'{{"i": {i}}}',
                    "ok",
                    "sha256",
                    "0" * 64,
                    "0" * 64,
                ),
            )
            conn.execute("COMMIT")

    return timed(run)


def ours_appends(path: Path, n: int) -> float:
    log = AuditLog(open_db(path), actor="bench", interface="cli")

    def run() -> None:
        for i in range(n):
            log.record("bench.append", str(i), {"i": i})

    return timed(run)


def bare_sha_loop(path: Path) -> float:
    conn = sqlite3.connect(str(path))

    def run() -> None:
        cur = conn.execute(
            "SELECT seq, ts, actor, interface, action, target, details, outcome, alg, prev_hash, "
            "hash FROM audit_events ORDER BY seq"
        )
        for row in cur:
            hashlib.sha256("|".join(map(str, row[:10])).encode()).hexdigest()

    return timed(run)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--appends", type=int, default=10_000)
    parser.add_argument("--verify-events", type=int, default=100_000)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        t_raw = raw_inserts(Path(tmp) / "raw.db", args.appends)
        t_ours = ours_appends(Path(tmp) / "ours.db", args.appends)
        raw_rate, our_rate = args.appends / t_raw, args.appends / t_ours
        share = our_rate / raw_rate
        print(f"appends, one commit each (n={args.appends})")
        print(f"  raw sqlite3 INSERT : {raw_rate:9.0f} /s")
        print(f"  AuditLog.record    : {our_rate:9.0f} /s")
        print(f"  share of raw       : {share:9.2f}  {verdict(share, 0.5, lower_is_better=False)}")

        vpath = Path(tmp) / "verify.db"
        db = open_db(vpath)
        log = AuditLog(db, actor="bench", interface="cli")
        with immediate(db):  # bulk-load the events in one transaction
            for i in range(args.verify_events):
                log.record("bench.append", f"target-{i}", {"i": i, "note": "x" * 40})
        t_bare = bare_sha_loop(vpath)
        result = None

        def run_verify() -> None:
            nonlocal result
            result = verify(open_db(vpath))

        t_verify = timed(run_verify)
        assert result is not None and result.ok
        ratio = t_verify / t_bare
        print(f"verify over {args.verify_events} events")
        print(f"  bare SELECT + SHA-256 loop : {t_bare:7.3f} s")
        print(f"  audit verify               : {t_verify:7.3f} s")
        print(f"  ratio                      : {ratio:7.2f}  {verdict(ratio, 1.5)}")


if __name__ == "__main__":
    main()
