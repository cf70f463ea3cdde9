"""Benchmark: the console under load against an idle Textual app, in the same run.

Each app runs as a child process in a real pseudo-terminal (160x48). The console gets a
synthetic health feed of 500 targets (50 regions x 10 services) that all change every
second - the dashboard work, without probe traffic muddying the CPU figure. The baseline
is a minimal Textual app with a header, a footer and a static body, doing nothing.

For both it prints:

* key-press-to-screen latency: time from writing a key to the pty until the new screen's
  text arrives on the pty's output (min, median, p95, max over ``--presses`` rounds), the
  full round trip a person sees, including Textual's own input parsing and rendering. The
  idle app opens and closes its help; the console opens and closes help (``?``), and
  switches to the audit screen (``5``) and back to the dashboard (``1``) - the keys that
  used to build new screens every time;
* CPU share of one core of the child process over ``--seconds`` (default 60).

The console's store is not empty: ``--audit-events`` (default 5,000) events are in the
audit log before it starts, and another connection appends ``--writes`` (default 1) a
second while it runs (the monitor's health changes, every tenth an operator's incident
note) - a shared store with other people and the monitor at work, so the audit and events
screens have a log to show and changes to follow on every key.

Targets (issues 7 and 16): key-to-screen p95 under 100 ms with 500 targets at 1 Hz,
under 30 % of one core.

Run: ``python bench/tui.py [--seconds 60] [--presses 20] [--targets 500]``.
Not part of pytest.
"""

from __future__ import annotations

import argparse
import fcntl
import os
import random
import select
import statistics
import struct
import subprocess
import sys
import tempfile
import termios
import threading
import time
from pathlib import Path

HELP_MARKER = b"command mode"  # text on the console's help screen (and the idle app's)
SIZE = (160, 48)


# --- children -------------------------------------------------------------------------


def synthetic_feed(targets: int) -> object:
    from opsconsole.tui.feed import HealthSnapshot, RegionView, TargetView

    class SyntheticFeed:
        """A new snapshot every second: every target's latency and history change."""

        interval = 1.0

        def __init__(self) -> None:
            self.services = [f"svc{i:02d}" for i in range(10)]
            self.regions = [f"region-{i:02d}" for i in range(max(1, targets // 10))]
            self.history: dict[tuple[str, str], list[float | None]] = {}
            self.tick = 0

        def poll(self, stop: threading.Event) -> HealthSnapshot:
            self.tick += 1
            rng = random.Random(self.tick)
            views = []
            for rid in self.regions:
                for sid in self.services:
                    hist = self.history.setdefault((rid, sid), [])
                    hist.append(None if rng.random() < 0.02 else rng.uniform(10, 200))
                    del hist[:-60]
                    good = sorted(v for v in hist if v is not None) or [0.0]
                    views.append(
                        TargetView(
                            region=rid,
                            service=sid,
                            state=rng.choice(["ok"] * 18 + ["degraded", "down"]),
                            p50_ms=good[len(good) // 2],
                            p95_ms=good[int(len(good) * 0.95) - 1 or 0],
                            availability=100.0 * sum(v is not None for v in hist) / len(hist),
                            history=tuple(hist),
                            last_error=None,
                            samples=len(hist),
                        )
                    )
            regions = tuple(RegionView(id=r, name=r.title(), state="ok") for r in self.regions)
            return HealthSnapshot(regions=regions, targets=tuple(views), seq=self.tick)

        def close(self) -> None:
            return None

    return SyntheticFeed()


ACTIONS = (
    "health.state_changed",
    "runbook.run.started",
    "runbook.step.finished",
    "runbook.run.finished",
    "incident.note",
    "drill.run.finished",
)


def seed_audit(db_path: Path, events: int) -> None:
    """``events`` audit events, as other operators and the monitor would have left them."""
    from opsconsole.audit import AuditLog
    from opsconsole.store import immediate, open_db

    db = open_db(db_path)
    log = AuditLog(db, actor="seed", interface="cli")
    rng = random.Random(7)
    with immediate(db):  # one transaction: seeding is set-up, not what is measured
        for i in range(events):
            log.record(  # joins the open transaction: no commit per event
                rng.choice(ACTIONS),
                f"region-{i % 50:02d}/svc{i % 10:02d}",
                {"n": i},
                rng.choice(["ok", "ok", "succeeded", "failed"]),
                actor=rng.choice(["ana", "bob", "monitor", "scheduler"]),
                interface=rng.choice(["cli", "tui", "scheduler"]),
            )
    db.conn.close()


def writer(db_path: Path, per_second: float, stop: threading.Event) -> None:
    """Other processes' changes arriving while the console runs (their own connection):
    mostly the monitor's health changes, every tenth an operator's incident note."""
    from opsconsole.audit import AuditLog
    from opsconsole.store import open_db

    db = open_db(db_path, migrate=False)
    monitor = AuditLog(db, actor="monitor", interface="scheduler")
    bob = AuditLog(db, actor="bob", interface="cli")
    n = 0
    while not stop.wait(1.0 / per_second):
        n += 1
        if n % 10 == 0:
            bob.record("incident.note", "INC-2026-0001", {"text": f"update {n}"})
        else:
            state = "degraded" if n % 2 else "ok"
            monitor.record(
                "health.state_changed", f"region-{n % 50:02d}/svc{n % 10:02d}", {"state": state}
            )


def child_console(targets: int, audit_events: int = 0, writes: float = 0.0) -> None:
    from opsconsole.capabilities import register_all
    from opsconsole.store import open_db
    from opsconsole.tui.app import create_app

    register_all()  # every capability's tables, as `opsconsole tui` has them
    path = Path(tempfile.mkdtemp(prefix="bench-tui-")) / "bench.db"
    db = open_db(path)
    if audit_events:
        seed_audit(path, audit_events)
    stop = threading.Event()
    if writes > 0:
        threading.Thread(target=writer, args=(path, writes, stop), daemon=True).start()
    app = create_app(config=None, db=db, actor="bench", health_feed=synthetic_feed(targets))  # type: ignore[arg-type]
    try:
        app.run()
    finally:
        stop.set()


def child_idle() -> None:
    from textual.app import App, ComposeResult
    from textual.binding import Binding
    from textual.screen import ModalScreen
    from textual.widgets import Footer, Header, Static

    class Help(ModalScreen[None]):
        BINDINGS = [Binding("q,escape", "app.pop_screen", "Close")]  # noqa: RUF012

        def compose(self) -> ComposeResult:
            yield Static("keys: command mode, help, quit")

    class Idle(App[None]):
        BINDINGS = [Binding("question_mark", "push_screen('help')", "Help")]  # noqa: RUF012
        SCREENS = {"help": Help}  # noqa: RUF012

        def compose(self) -> ComposeResult:
            yield Header()
            yield Static("idle")
            yield Footer()

    Idle().run()


# --- parent: drive a child in a pty ------------------------------------------------------


class PtyChild:
    def __init__(self, argv: list[str]) -> None:
        master, slave = os.openpty()
        fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", SIZE[1], SIZE[0], 0, 0))
        env = dict(os.environ, TERM="xterm-256color", COLUMNS=str(SIZE[0]), LINES=str(SIZE[1]))
        env.pop("TEXTUAL", None)
        self.proc = subprocess.Popen(
            argv,
            stdin=slave,
            stdout=slave,
            stderr=slave,
            env=env,
            start_new_session=True,
            close_fds=True,
        )
        os.close(slave)
        self.master = master
        self.buf = bytearray()
        self.lock = threading.Condition()
        self.alive = True
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        while self.alive:
            ready, _, _ = select.select([self.master], [], [], 0.2)
            if not ready:
                continue
            try:
                data = os.read(self.master, 65536)
            except OSError:
                break
            if not data:
                break
            with self.lock:
                self.buf += data
                self.lock.notify_all()

    def wait_for(self, marker: bytes, start: int, timeout: float = 60) -> float:
        deadline = time.monotonic() + timeout
        with self.lock:
            while self.buf.find(marker, start) < 0:
                left = deadline - time.monotonic()
                if left <= 0:
                    raise TimeoutError(f"{marker!r} did not appear within {timeout}s")
                self.lock.wait(left)
        return time.perf_counter()

    def mark(self) -> int:
        with self.lock:
            return len(self.buf)

    def send(self, data: bytes) -> None:
        os.write(self.master, data)

    def cpu_seconds(self) -> float:
        import psutil

        times = psutil.Process(self.proc.pid).cpu_times()
        return times.user + times.system

    def stop(self) -> None:
        self.alive = False
        self.proc.terminate()
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
        os.close(self.master)


# (key, marker of the screen it opens); each round goes through all of them in order.
# Markers are text only the opened screen draws (the help lists every key's name).
IDLE_KEYS = [(b"?", HELP_MARKER), (b"q", b"idle")]
CONSOLE_KEYS = [
    (b"?", HELP_MARKER),
    (b"q", b"REGION/SERVICE"),
    (b"5", b"outcome"),
    (b"1", b"REGION/SERVICE"),
]


def measure(
    name: str,
    argv: list[str],
    ready: bytes,
    presses: int,
    seconds: float,
    keys: list[tuple[bytes, bytes]],
) -> dict[str, float]:
    child = PtyChild(argv)
    try:
        child.wait_for(ready, 0, timeout=120)
        time.sleep(3)  # let start-up work settle before measuring CPU (not a correctness wait)
        cpu0, wall0 = child.cpu_seconds(), time.perf_counter()
        latencies: list[float] = []
        per_key: dict[bytes, list[float]] = {}
        gap = seconds / (presses + 1)
        for _ in range(presses):
            time.sleep(gap)  # spread the presses over the measured minute
            for key, marker in keys:
                start = child.mark()
                t0 = time.perf_counter()
                child.send(key)
                took = child.wait_for(marker, start) - t0
                latencies.append(took)
                per_key.setdefault(key, []).append(took)
        remaining = seconds - (time.perf_counter() - wall0)
        if remaining > 0:
            time.sleep(remaining)
        cpu = child.cpu_seconds() - cpu0
        wall = time.perf_counter() - wall0
    finally:
        child.stop()
    latencies.sort()
    for key, values in per_key.items():
        values.sort()
        print(
            f"  {name} {key.decode()!r}: median {statistics.median(values) * 1000:.1f} ms, "
            f"max {values[-1] * 1000:.1f} ms"
        )
    return {
        "min_ms": latencies[0] * 1000,
        "median_ms": statistics.median(latencies) * 1000,
        "p95_ms": latencies[max(0, int(len(latencies) * 0.95) - 1)] * 1000,
        "max_ms": latencies[-1] * 1000,
        "cpu_share": cpu / wall,
        "wall": wall,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument("--presses", type=int, default=20)
    parser.add_argument("--targets", type=int, default=500)
    parser.add_argument("--audit-events", type=int, default=5000)
    parser.add_argument("--writes", type=float, default=1.0, help="audit events a second")
    parser.add_argument("--child", choices=["console", "idle"])
    args = parser.parse_args()
    if args.child == "console":
        child_console(args.targets, args.audit_events, args.writes)
        return
    if args.child == "idle":
        child_idle()
        return
    me = [sys.executable, str(Path(__file__).resolve())]
    print(
        f"tui bench: {args.targets} targets updating every second, {SIZE[0]}x{SIZE[1]} pty, "
        f"{args.presses} key presses over {args.seconds:.0f}s per app; "
        f"{args.audit_events} audit events, {args.writes:g} more a second; "
        f"{os.cpu_count()} CPUs, load {os.getloadavg()[0]:.1f}"
    )
    results = {
        "idle Textual app": measure(
            "idle", [*me, "--child", "idle"], b"idle", args.presses, args.seconds, IDLE_KEYS
        ),
        "opsconsole tui": measure(
            "console",
            [
                *me,
                *("--child", "console", "--targets", str(args.targets)),
                *("--audit-events", str(args.audit_events), "--writes", str(args.writes)),
            ],
            b"REGION/SERVICE",
            args.presses,
            args.seconds,
            CONSOLE_KEYS,
        ),
    }
    print(f"{'app':<18} {'key min':>9} {'median':>9} {'p95':>9} {'max':>9} {'CPU % of a core':>16}")
    for name, r in results.items():
        print(
            f"{name:<18} {r['min_ms']:>7.1f}ms {r['median_ms']:>7.1f}ms {r['p95_ms']:>7.1f}ms "
            f"{r['max_ms']:>7.1f}ms {r['cpu_share'] * 100:>15.1f}%"
        )
    busy, idle = results["opsconsole tui"], results["idle Textual app"]
    print(
        f"console vs idle: key median x{busy['median_ms'] / idle['median_ms']:.2f}, "
        f"CPU +{(busy['cpu_share'] - idle['cpu_share']) * 100:.1f} points"
    )
    print(
        f"targets: key < 100 ms: {'met' if busy['p95_ms'] < 100 else 'NOT met'} (p95); "
        f"CPU < 30 %: {'met' if busy['cpu_share'] < 0.30 else 'NOT met'}"
    )


if __name__ == "__main__":
    main()
