"""The store on both engines: durable audited appends and ``audit verify``, against raw loops.

Run (as root: the PostgreSQL cluster runs as the ``postgres`` account):

    python bench/store.py [--appends N] [--history N] [--rounds N] [--procs N] [--per-proc N]

Starts its own throw-away PostgreSQL cluster with the default durability (fsync on,
``synchronous_commit`` on; ``tests/pg.py`` ``start_cluster(durable=True)``) and a SQLite
file in WAL mode with ``synchronous=FULL``, both in a temp directory on the same disk.
Every figure is a ratio against a baseline measured in the same run, rounds interleaved
(median of ``--rounds``):

a. PostgreSQL: appends per second through opsconsole's real path (``AuditLog.record`` on an
   ``open_db(url)`` database: write lock, chain head, hash, insert, append hooks, commit;
   each append its own committed transaction) against a raw psycopg loop of autocommit
   INSERTs of the same rows into an equivalent table (same columns and indexes) on the same
   server. Both logs start with ``--history`` events, so a cost that grows with the log
   shows. Target >= 0.5x.
b. The same on SQLite: ``AuditLog.record`` against a raw sqlite3 loop of
   ``BEGIN IMMEDIATE; INSERT; COMMIT`` with the same pragmas. Target >= 0.5x.
c. ``audit verify`` (``opsconsole.audit.verify``) over the whole log, in events per second,
   on each engine, against the fastest reasonable loop doing the same work: read the rows
   in order, rebuild each event's canonical JSON, SHA-256 it, check hash and link.
   Target >= 0.67x (verify takes at most 1.5x the loop's time, as in bench/audit.py).
d. PostgreSQL, ``--procs`` processes appending at once (``--per-proc`` each, every process
   its own connection): total appends per second, nothing lost, and the chain still
   verifies. Writers are serialized by one advisory lock (the chain's total order), so the
   total cannot beat one writer by much; printed beside it: one process of ours, and the
   same number of raw INSERT processes (which PostgreSQL may group-commit).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import multiprocessing as mp
import os
import sqlite3
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "src"))
sys.path.insert(0, str(ROOT))

TS = "2026-11-28T00:00:00.000000+00:00"
_COLUMNS = (
    "seq INTEGER PRIMARY KEY, ts TEXT NOT NULL, actor TEXT NOT NULL, interface TEXT NOT NULL, "
    "action TEXT NOT NULL, target TEXT NOT NULL, details TEXT NOT NULL, outcome TEXT NOT NULL, "
    "alg TEXT NOT NULL, prev_hash TEXT NOT NULL, hash TEXT NOT NULL"
)
_SELECT = (
    "SELECT seq, ts, actor, interface, action, target, details, outcome, alg, prev_hash, hash "
    "FROM audit_events ORDER BY seq"
)


def _raw_row(i: int) -> tuple[Any, ...]:
    """A row shaped like an audit event (same columns, similar sizes)."""
    return (
        i,
        TS,
        "bench",
        "cli",
        "bench.append",
        str(i),
        json.dumps({"i": i}),
        "ok",
        "sha256",
        "0" * 64,
        "0" * 64,
    )


_INSERT = "INSERT INTO audit_events VALUES ({})".format


# --- the raw baselines ------------------------------------------------------------------


class RawPg:
    """An equivalent table on the same server, one autocommit INSERT per row."""

    def __init__(self, url: str, history: int) -> None:
        import psycopg

        self.conn = psycopg.connect(url, autocommit=True)
        self.conn.execute(f"CREATE TABLE audit_events ({_COLUMNS.replace('INTEGER', 'BIGINT')})")
        self.conn.execute("CREATE INDEX audit_events_ts ON audit_events(ts)")
        self.conn.execute("CREATE INDEX audit_events_action_seq ON audit_events(action, seq)")
        with self.conn.transaction():
            self.conn.cursor().executemany(
                _INSERT(",".join(["%s"] * 11)), [_raw_row(i) for i in range(1, history + 1)]
            )
        self.next = history + 1

    def append(self, n: int) -> None:
        sql, conn = _INSERT(",".join(["%s"] * 11)), self.conn
        for i in range(self.next, self.next + n):
            conn.execute(sql, _raw_row(i))
        self.next += n


class RawSqlite:
    """An equivalent table in another file with the store's pragmas, one transaction per row."""

    def __init__(self, path: Path, history: int) -> None:
        from opsconsole.store import BUSY_TIMEOUT_MS

        self.conn = sqlite3.connect(str(path), isolation_level=None)
        for pragma in (
            f"busy_timeout = {BUSY_TIMEOUT_MS}",
            "journal_mode = WAL",
            "synchronous = FULL",
            "foreign_keys = ON",
        ):
            self.conn.execute(f"PRAGMA {pragma}")
        self.conn.execute(f"CREATE TABLE audit_events ({_COLUMNS})")
        self.conn.execute("CREATE INDEX audit_events_ts ON audit_events(ts)")
        self.conn.execute("CREATE INDEX audit_events_action_seq ON audit_events(action, seq)")
        self.conn.execute("BEGIN")
        self.conn.executemany(
            _INSERT(",".join("?" * 11)), [_raw_row(i) for i in range(1, history + 1)]
        )
        self.conn.execute("COMMIT")
        self.next = history + 1

    def append(self, n: int) -> None:
        sql, execute = _INSERT(",".join("?" * 11)), self.conn.execute
        for i in range(self.next, self.next + n):
            execute("BEGIN IMMEDIATE")
            execute(sql, _raw_row(i))
            execute("COMMIT")
        self.next += n


def raw_verify(rows: Any) -> int:
    """The chain check without opsconsole: canonical JSON of the ten fields (the same
    bytes ``AuditLog`` hashes), SHA-256, compare hash and link. Returns the events read;
    raises if one does not verify (then it did not do the same work)."""
    encode = json.JSONEncoder(ensure_ascii=False, separators=(",", ":")).encode
    sha256 = hashlib.sha256
    prev, n = "0" * 64, 0
    for row in rows:
        digest = sha256(encode(list(row[:10])).encode()).hexdigest()
        if row[9] != prev or digest != row[10]:
            raise SystemExit(f"raw verify: event {row[0]} does not verify")
        prev, n = row[10], n + 1
    return n


# --- opsconsole's path ------------------------------------------------------------------


def _ours(location: Path | str, history: int) -> Any:
    """An audit log on ``location`` holding ``history`` events (loaded in one transaction)."""
    from opsconsole.audit import AuditLog
    from opsconsole.capabilities import register_all
    from opsconsole.store import immediate, open_db

    register_all()  # every capability's tables and the append hooks, as the CLI has them
    log = AuditLog(open_db(location), actor="bench", interface="cli")
    with immediate(log.db):
        for i in range(1, history + 1):
            log.record("bench.append", str(i), {"i": i})
    return log


def _append_ours(log: Any, n: int) -> None:
    record = log.record
    for i in range(n):
        record("bench.append", str(i), {"i": i})


def _rate(n: int, fn: Callable[[], object]) -> tuple[float, float]:
    """(operations per second, this process's CPU microseconds per operation)."""
    t0, c0 = time.perf_counter(), time.process_time()
    fn()
    return n / (time.perf_counter() - t0), (time.process_time() - c0) / n * 1e6


def appends(raw: Any, log: Any, n: int, rounds: int) -> tuple[float, float, float, float]:
    """Median appends/s of (raw, ours) and client CPU us per append of (raw, ours), the
    rounds interleaved so that the machine's load hits both alike."""
    raws, ours = [], []
    for _ in range(rounds):
        raws.append(_rate(n, lambda: raw.append(n)))
        ours.append(_rate(n, lambda: _append_ours(log, n)))
    med = statistics.median
    return (
        med(r for r, _ in raws),
        med(r for r, _ in ours),
        med(c for _, c in raws),
        med(c for _, c in ours),
    )


def verifies(log: Any, fetch_rows: Callable[[], Any], rounds: int) -> tuple[float, float, int]:
    """Median events/s of (raw loop, ``audit verify``) over the whole log, and its size."""
    from opsconsole.audit import verify

    raw_rates, our_rates, events = [], [], 0
    for _ in range(rounds):
        t0 = time.perf_counter()
        events = raw_verify(fetch_rows())
        raw_rates.append(events / (time.perf_counter() - t0))
        t0 = time.perf_counter()
        result = verify(log.db)
        our_rates.append(result.events / (time.perf_counter() - t0))
        if not result.ok or result.events != events:
            raise SystemExit(f"audit verify: {result.outcome} after {result.events} events")
    return statistics.median(raw_rates), statistics.median(our_rates), events


# --- several processes at once ----------------------------------------------------------


def _worker(kind: str, url: str, n: int, first: int, barrier: Any, out: Any) -> None:
    """One appending process: connect, wait for the others, append ``n``, report times."""
    if kind == "ours":
        from opsconsole.audit import AuditLog
        from opsconsole.capabilities import register_all
        from opsconsole.store import open_db

        register_all()
        log = AuditLog(open_db(url), actor="bench", interface="cli")
        barrier.wait()
        t0 = time.monotonic()
        _append_ours(log, n)
    else:
        import psycopg

        conn = psycopg.connect(url, autocommit=True)
        sql = _INSERT(",".join(["%s"] * 11))
        barrier.wait()
        t0 = time.monotonic()
        for i in range(first, first + n):
            conn.execute(sql, _raw_row(i))
    out.put((t0, time.monotonic()))


def concurrent(kind: str, url: str, procs: int, n: int, first: int) -> float:
    """Total appends/s of ``procs`` processes appending ``n`` each at the same time."""
    ctx = mp.get_context("spawn")  # fresh interpreters: no connection crosses a fork
    barrier, out = ctx.Barrier(procs), ctx.Queue()
    workers = [
        ctx.Process(target=_worker, args=(kind, url, n, first + k * n, barrier, out))
        for k in range(procs)
    ]
    for w in workers:
        w.start()
    spans = [out.get(timeout=600) for _ in workers]
    for w in workers:
        w.join()
        if w.exitcode:
            raise SystemExit(f"a {kind} worker failed (exit {w.exitcode})")
    return procs * n / (max(e for _, e in spans) - min(s for s, _ in spans))


# --- the report -------------------------------------------------------------------------


def _row(what: str, ours: float, base_name: str, base: float, target: float | None) -> str:
    ratio = ours / base
    verdict = ""
    if target is not None:
        verdict = f">= {target:<4}  {'met' if ratio >= target else 'NOT met'}"
    return f"{what:<34} {ours:>9.0f}  {base_name:<22} {base:>9.0f}  {ratio:>5.2f}x  {verdict}"


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--appends", type=int, default=500, help="appends per round and side")
    parser.add_argument("--history", type=int, default=20_000, help="events in each log first")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--procs", type=int, default=3)
    parser.add_argument("--per-proc", type=int, default=1000)
    args = parser.parse_args()
    if os.geteuid() != 0:
        sys.exit("bench/store.py starts a PostgreSQL cluster as the postgres account: run as root")
    from tests.pg import pg_bin, start_cluster

    if pg_bin() is None:
        sys.exit("PostgreSQL is not installed (./scripts/install installs Debian's postgresql)")

    load0 = os.getloadavg()
    cluster = start_cluster(durable=True)
    try:
        print(
            f"machine: {os.cpu_count()} cores, load {load0[0]:.1f} at start; "
            f"PostgreSQL fsync={cluster.sql('SHOW fsync')} "
            f"synchronous_commit={cluster.sql('SHOW synchronous_commit')} "
            f"wal_sync_method={cluster.sql('SHOW wal_sync_method')}; "
            "SQLite WAL, synchronous=FULL"
        )
        print(
            f"{args.history} events in each log first; {args.rounds} rounds of "
            f"{args.appends} appends per side, median\n"
        )
        for name in ("raw", "ours"):
            cluster.sql(f"CREATE DATABASE {name}")
        pg_raw = RawPg(cluster.url("raw"), args.history)
        pg_log = _ours(cluster.url("ours"), args.history)
        with tempfile.TemporaryDirectory(prefix="opsconsole-bench-") as tmp:
            lite_raw = RawSqlite(Path(tmp) / "raw.db", args.history)
            lite_log = _ours(Path(tmp) / "ours.db", args.history)

            pg_a = appends(pg_raw, pg_log, args.appends, args.rounds)
            lite_a = appends(lite_raw, lite_log, args.appends, args.rounds)
            # The raw loops read opsconsole's own log (a real chain), each on a plain
            # connection of its own.
            import psycopg

            pg_reader = psycopg.connect(cluster.url("ours"), autocommit=True)
            pg_v = verifies(pg_log, lambda: pg_reader.execute(_SELECT), args.rounds)
            lite_reader = sqlite3.connect(str(Path(tmp) / "ours.db"))
            lite_v = verifies(lite_log, lambda: lite_reader.execute(_SELECT), args.rounds)

            before = pg_log.db.execute("SELECT count(*) FROM audit_events").fetchone()[0]
            ours_c = concurrent("ours", cluster.url("ours"), args.procs, args.per_proc, 0)
            after = pg_log.db.execute("SELECT count(*) FROM audit_events").fetchone()[0]
            from opsconsole.audit import verify

            check = verify(pg_log.db)
            raw_c = concurrent("raw", cluster.url("raw"), args.procs, args.per_proc, pg_raw.next)
    finally:
        cluster.stop()
    load1 = os.getloadavg()

    head = f"{'':<34} {'ours':>9}  {'baseline':<22} {'':>9}  {'ratio':>6}  target"
    print(head)
    print("-" * len(head))
    print(_row("PostgreSQL appends/s (durable)", pg_a[1], "raw psycopg INSERT", pg_a[0], 0.5))
    print(_row("SQLite appends/s (durable)", lite_a[1], "raw sqlite3 INSERT", lite_a[0], 0.5))
    print(_row("PostgreSQL appends/s vs SQLite", pg_a[1], "ours on SQLite", lite_a[1], None))
    print(_row("PostgreSQL verify events/s", pg_v[1], "read + SHA-256 loop", pg_v[0], 0.67))
    print(_row("SQLite verify events/s", lite_v[1], "read + SHA-256 loop", lite_v[0], 0.67))
    label = f"PostgreSQL {args.procs} procs appends/s"
    print(_row(label, ours_c, "ours, 1 process", pg_a[1], None))
    print(_row(label, ours_c, f"raw INSERT, {args.procs} procs", raw_c, None))
    lost = args.procs * args.per_proc - (after - before)
    print(
        f"\n{args.procs} processes x {args.per_proc} appends: {after - before} written "
        f"({lost} lost); audit verify after: {check.outcome} over {check.events} events"
    )
    print(
        f"client CPU per append: PostgreSQL ours {pg_a[3]:.0f} us, raw {pg_a[2]:.0f} us; "
        f"SQLite ours {lite_a[3]:.0f} us, raw {lite_a[2]:.0f} us"
    )
    print(f"verify walked {pg_v[2]} events on PostgreSQL, {lite_v[2]} on SQLite")
    print(f"load average at start {load0[0]:.1f}, at end {load1[0]:.1f}")


if __name__ == "__main__":
    main()
