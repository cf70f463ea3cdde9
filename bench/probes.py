"""Benchmark: the monitor's HTTP sweep against the right baselines, in one run.

Target: HTTP endpoints on 127.0.0.1 (``/e/N`` answering after ``--delay-ms``), served by
``--servers`` aiohttp processes, each listening on a few ports. Every client runs in a
fresh subprocess (so max RSS is its own), warms up with one untimed sweep, then times one
sweep; clients are interleaved round by round (``--rounds``, at least 3) so drifting load
hits all alike. Reported per client: min and median sweep time, client CPU per probe, max
RSS, failed probes, and the largest recorded latency (monitor: the latency it reports).

Clients:

* ``monitor``: ``opsconsole.health.Monitor.sweep()`` (no database: the probe path);
* ``aiohttp``: ``asyncio.gather`` over one ``aiohttp.ClientSession``
  (``TCPConnector(limit=concurrency)``) — the floor of a Python client;
* ``httpx``: the same over one ``httpx.AsyncClient`` (only up to ``--httpx-max`` endpoints:
  it needs ~6 ms CPU per request at this concurrency);
* ``blackbox``: Debian's ``prometheus-blackbox-exporter`` on loopback (temporary config,
  ``http_2xx`` module), driven at the same concurrency by an aiohttp gather over
  ``/probe?target=...``; its CPU is the exporter's own (psutil), not the driver's;
* the physical floor: ``ceil(n / concurrency) x delay``, or the target server's own
  ceiling ``n / (requests per second)`` if larger — measured with ``wrk`` (one per server
  process, 1,000 connections in all).

Then TCP connect probes (monitor vs a bare ``loop.create_connection`` gather) and the
event-loop lag while the monitor sweeps ``--lag-endpoints`` endpoints, on the same loop and
in its own thread (as the console's MonitorFeed runs it), and the console's
key-press-to-screen latency while its monitor sweeps that many endpoints (bench/tui.py's
pseudo-terminal harness) against the same console probing nothing.

Run: ``python bench/probes.py [--sizes 100,1000,5000,10000] [--rounds 3]
[--concurrency 200] [--delay-ms 50] [--servers 2]``. Not part of pytest.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import multiprocessing as mp
import os
import re
import resource
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
PORTS_PER_SERVER = 4


# --- the target server ------------------------------------------------------------------


def serve(socks: list[socket.socket], delay: float, ready: Any) -> None:
    from aiohttp import web

    body = b'{"status": "ok"}'

    async def handler(request: web.Request) -> web.Response:
        await asyncio.sleep(delay)
        return web.Response(body=body, content_type="application/json")

    async def main() -> None:
        app = web.Application()
        app.router.add_get("/e/{n}", handler)
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        for s in socks:
            await web.SockSite(runner, s, backlog=4096).start()
        ready.set()
        await asyncio.Event().wait()

    try:
        import uvloop  # type: ignore[import-not-found]

        uvloop.install()
    except ImportError:
        pass
    asyncio.run(main())


def _bind() -> socket.socket:
    s = socket.socket()
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind(("127.0.0.1", 0))
    s.listen(4096)
    return s


def start_servers(count: int, delay: float) -> tuple[list[Any], list[list[int]]]:
    ctx = mp.get_context("fork")
    procs, ports = [], []
    for _ in range(count):
        socks = [_bind() for _ in range(PORTS_PER_SERVER)]
        ready = ctx.Event()
        p = ctx.Process(target=serve, args=(socks, delay, ready), daemon=True)
        p.start()
        ready.wait(30)
        procs.append(p)
        ports.append([s.getsockname()[1] for s in socks])
        for s in socks:
            s.close()
    return procs, ports


def wrk_ceiling(ports: list[list[int]], connections: int = 1000, seconds: int = 3) -> float | None:
    """Requests/s the target servers sustain (one wrk per server process, at once)."""
    exe = shutil.which("wrk")
    if exe is None:
        return None
    per = max(connections // len(ports), 1)
    procs = [
        subprocess.Popen(
            [exe, "-t1", f"-c{per}", f"-d{seconds}s", f"http://127.0.0.1:{p[0]}/e/0"],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        for p in ports
    ]
    total = 0.0
    for p in procs:
        out, _ = p.communicate(seconds + 30)
        m = re.search(r"Requests/sec:\s*([\d.]+)", out)
        if m is None:
            return None
        total += float(m.group(1))
    return total


# --- blackbox_exporter --------------------------------------------------------------------


class Blackbox:
    def __init__(self, directory: Path) -> None:
        exe = shutil.which("prometheus-blackbox-exporter")
        self.proc: subprocess.Popen[bytes] | None = None
        self.url = ""
        if exe is None:
            return
        s = _bind()
        port = s.getsockname()[1]
        s.close()
        cfg = directory / "blackbox.yml"
        cfg.write_text(
            "modules:\n  http_2xx:\n    prober: http\n    timeout: 30s\n"
            "    http:\n      preferred_ip_protocol: ip4\n"
        )
        self.proc = subprocess.Popen(
            [exe, f"--config.file={cfg}", f"--web.listen-address=127.0.0.1:{port}"],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        self.url = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            try:
                socket.create_connection(("127.0.0.1", port), 1).close()
                return
            except OSError:
                time.sleep(0.1)
        self.close()

    def cpu(self) -> float:
        import psutil

        assert self.proc is not None
        t = psutil.Process(self.proc.pid).cpu_times()
        return t.user + t.system

    def close(self) -> None:
        if self.proc is not None:
            self.proc.terminate()
            self.proc.wait(10)
            self.proc = None


# --- clients (each run in its own subprocess: python bench/probes.py --worker KIND) -----


async def _aiohttp_gather(urls: list[str], c: int) -> tuple[int, float]:
    import aiohttp

    conn = aiohttp.TCPConnector(limit=c)
    worst = 0.0
    async with aiohttp.ClientSession(connector=conn, trust_env=False) as session:

        async def one(u: str) -> bool:
            nonlocal worst
            try:
                t0 = time.perf_counter()
                async with session.get(u) as r:
                    await r.read()
                    worst = max(worst, time.perf_counter() - t0)
                    return r.status == 200
            except (aiohttp.ClientError, TimeoutError):
                return False

        await asyncio.gather(*(one(u) for u in urls))  # warm-up
        worst = 0.0
        return await _timed(lambda: asyncio.gather(*(one(u) for u in urls)), lambda: worst)


async def _timed(run: Any, worst: Any) -> Any:
    c0, t0 = time.process_time(), time.perf_counter()
    oks = await run()
    wall, cpu = time.perf_counter() - t0, time.process_time() - c0
    return {
        "wall": wall,
        "cpu": cpu,
        "failures": list(oks).count(False),
        "worst_ms": worst() * 1000,
    }


async def _httpx_gather(urls: list[str], c: int) -> Any:
    import httpx

    limits = httpx.Limits(max_connections=c, max_keepalive_connections=c)
    async with httpx.AsyncClient(limits=limits, trust_env=False, timeout=60) as client:
        sem = asyncio.Semaphore(c)

        async def one(u: str) -> bool:
            async with sem:
                try:
                    r = await client.get(u)
                    return r.status_code == 200
                except httpx.HTTPError:
                    return False

        await asyncio.gather(*(one(u) for u in urls))
        return await _timed(lambda: asyncio.gather(*(one(u) for u in urls)), lambda: 0.0)


def _config(directory: Path, endpoints: list[dict[str, Any]], c: int) -> Any:
    import yaml

    from opsconsole.config import load_config

    services = {
        f"s{i}": {"critical": False, "objectives": {"latency_ms": 10000}, "endpoints": [ep]}
        for i, ep in enumerate(endpoints)
    }
    inv = {"regions": {"bench": {"name": "Bench", "environment": "test", "services": services}}}
    settings = {
        "probe": {
            "concurrency": c,
            "per_host_concurrency": c,
            "timeout_seconds": 30,
            "window": 10,
        }
    }
    (directory / "inventory.yaml").write_text(yaml.safe_dump(inv))
    (directory / "settings.yaml").write_text(yaml.safe_dump(settings))
    return load_config(directory)


async def _monitor(endpoints: list[dict[str, Any]], c: int) -> Any:
    from opsconsole.health.monitor import Monitor

    with tempfile.TemporaryDirectory() as d:
        cfg = _config(Path(d), endpoints, c)
    async with Monitor(cfg, notify=False) as mon:
        await mon.sweep()  # warm-up (connections)
        out: dict[str, Any] = {}

        async def run() -> list[bool]:
            snap = await mon.sweep()
            targets = snap.targets()
            out["worst"] = max((t.last_latency_ms or 0.0) for t in targets) / 1000
            return [t.history[-1] is not None for t in targets]

        return await _timed(run, lambda: out["worst"])


async def _blackbox(urls: list[str], c: int, bb_url: str, bb_pid: int) -> Any:
    import aiohttp
    import psutil

    proc = psutil.Process(bb_pid)
    conn = aiohttp.TCPConnector(limit=c)
    async with aiohttp.ClientSession(connector=conn, trust_env=False) as session:

        async def one(u: str) -> bool:
            params = {"target": u, "module": "http_2xx"}
            try:
                async with session.get(bb_url + "/probe", params=params) as r:
                    text = await r.text()
                    return "\nprobe_success 1" in text
            except aiohttp.ClientError:
                return False

        await asyncio.gather(*(one(u) for u in urls))
        t = proc.cpu_times()
        b0 = t.user + t.system
        res = await _timed(lambda: asyncio.gather(*(one(u) for u in urls)), lambda: 0.0)
        t = proc.cpu_times()
        res["driver_cpu"] = res["cpu"]
        res["cpu"] = t.user + t.system - b0
        return res


async def _tcp_gather(addrs: list[tuple[str, int]], c: int) -> Any:
    loop = asyncio.get_running_loop()
    sem = asyncio.Semaphore(c)

    async def one(a: tuple[str, int]) -> bool:
        async with sem:
            try:
                tr, _ = await loop.create_connection(asyncio.Protocol, *a)
                tr.close()
                return True
            except OSError:
                return False

    await asyncio.gather(*(one(a) for a in addrs))
    return await _timed(lambda: asyncio.gather(*(one(a) for a in addrs)), lambda: 0.0)


def _lag(endpoints: list[dict[str, Any]] | None, c: int, threaded: bool) -> Any:
    """Lateness of a 10 ms ticker on this loop during two warm monitor sweeps (the
    monitor on this loop, or in its own thread and loop as the console runs it)."""
    from opsconsole.health.monitor import Monitor

    with tempfile.TemporaryDirectory() as d:
        cfg = _config(Path(d), endpoints or [], c)
    warm = threading.Event()

    async def sweeps() -> None:
        async with Monitor(cfg, notify=False) as mon:
            await mon.sweep()  # start-up: imports, SSL context, connections
            warm.set()
            for _ in range(2):
                await mon.sweep()

    async def main() -> Any:
        lags: list[float] = []

        async def ticker() -> None:
            while True:
                t0 = time.perf_counter()
                await asyncio.sleep(0.01)
                lags.append((time.perf_counter() - t0 - 0.01) * 1000)

        if endpoints is None:  # the machine's own noise: the ticker alone
            tick = asyncio.create_task(ticker())
            t0 = time.perf_counter()
            await asyncio.sleep(5)
        elif threaded:
            th = threading.Thread(target=lambda: asyncio.run(sweeps()))
            th.start()
            while not warm.is_set():
                await asyncio.sleep(0.01)
            tick = asyncio.create_task(ticker())
            t0 = time.perf_counter()
            while th.is_alive():
                await asyncio.sleep(0.05)
        else:
            job = asyncio.create_task(sweeps())
            while not warm.is_set():
                await asyncio.sleep(0)
            tick = asyncio.create_task(ticker())
            t0 = time.perf_counter()
            await job
        wall = time.perf_counter() - t0
        tick.cancel()
        lags.sort()
        return {
            "wall": wall,
            "cpu": 0.0,
            "failures": 0,
            "worst_ms": lags[-1],
            "lag_p50": lags[len(lags) // 2],
            "lag_p99": lags[int(len(lags) * 0.99)],
        }

    return asyncio.run(main())


def _console(urls: list[str], c: int) -> None:
    """The console (Textual) with its health feed on a real monitor of these endpoints
    (sweeping back to back: interval 1 s), or with no endpoints at all."""
    import yaml

    from opsconsole.config import load_config
    from opsconsole.store import open_db
    from opsconsole.tui.app import create_app
    from opsconsole.tui.monitor_feed import MonitorFeed

    d = Path(tempfile.mkdtemp(prefix="bench-console-"))
    services = {
        f"s{i}": {
            "critical": False,
            "objectives": {"latency_ms": 10000},
            "endpoints": [{"url": u, "timeout_seconds": 30}],
        }
        for i, u in enumerate(urls)
    }
    region = {"name": "Bench", "environment": "test", "services": services}
    (d / "inventory.yaml").write_text(yaml.safe_dump({"regions": {"bench": region}}))
    probe = {"concurrency": c, "per_host_concurrency": c, "interval_seconds": 1, "window": 10}
    (d / "settings.yaml").write_text(yaml.safe_dump({"probe": probe}))
    cfg = load_config(d)
    db_path = d / "bench.db"
    db = open_db(db_path)
    feed = MonitorFeed(cfg, db_path, actor="bench")
    create_app(config=cfg, db=db, actor="bench", health_feed=feed).run()


def keys(tmp: Path, ports: list[int], c: int, n: int, presses: int, seconds: float) -> None:
    """Key-press-to-screen latency of the console (bench/tui.py's pty harness) while its
    monitor sweeps n endpoints back to back, against the same console probing nothing."""
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    try:
        import tui  # bench/tui.py
    except Exception as exc:  # bench/tui.py belongs to the console; say so, don't fail
        print(f"key-to-screen: skipped ({exc})")
        return
    urls = [f"http://127.0.0.1:{ports[i % len(ports)]}/e/{i}" for i in range(n)]
    spec = tmp / "spec-console.json"
    spec.write_text(json.dumps({"urls": urls, "concurrency": c}))
    me = [sys.executable, __file__, "--spec", str(spec), "--worker"]
    print(f"\n== key-press-to-screen (`?` -> help screen), {presses} presses over {seconds:g} s ==")
    for kind, label in (
        ("console-idle", "console, no endpoints"),
        ("console-monitor", f"console, monitor sweeping {n:,}"),
    ):
        try:
            r = tui.measure(kind, [*me, kind], b"Fail over", presses, seconds)
        except Exception as exc:
            print(f"{label:34} failed: {exc}")
            continue
        print(
            f"{label:34} median {r['median_ms']:.0f} ms, p95 {r['p95_ms']:.0f} ms, "
            f"max {r['max_ms']:.0f} ms, CPU {100 * r['cpu_share']:.0f} % of a core"
        )


def worker(args: argparse.Namespace) -> None:
    sys.path.insert(0, str(ROOT / "src"))
    spec = json.loads(Path(args.spec).read_text())
    urls: list[str] = spec["urls"]
    c = spec["concurrency"]
    kind = args.worker
    if kind == "monitor":
        res = asyncio.run(_monitor([{"url": u, "timeout_seconds": 30} for u in urls], c))
    elif kind == "aiohttp":
        res = asyncio.run(_aiohttp_gather(urls, c))
    elif kind == "httpx":
        res = asyncio.run(_httpx_gather(urls, c))
    elif kind == "blackbox":
        res = asyncio.run(_blackbox(urls, c, spec["bb_url"], spec["bb_pid"]))
    elif kind == "tcp-monitor":
        eps = [{"tcp": u.split("/")[2], "timeout_seconds": 30} for u in urls]
        res = asyncio.run(_monitor(eps, c))
    elif kind == "tcp-gather":
        addrs = [(u.split("/")[2].split(":")[0], int(u.split("/")[2].split(":")[1])) for u in urls]
        res = asyncio.run(_tcp_gather(addrs, c))
    elif kind in ("console-monitor", "console-idle"):
        _console(urls if kind == "console-monitor" else [], c)
        return
    elif kind in ("lag-same-loop", "lag-thread", "lag-idle"):
        eps = [{"url": u, "timeout_seconds": 30} for u in urls]
        res = _lag(None if kind == "lag-idle" else eps, c, threaded=kind == "lag-thread")
    else:
        raise SystemExit(f"unknown worker {kind}")
    res["rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(json.dumps(res))


# --- the driver ---------------------------------------------------------------------------


def run_worker(kind: str, spec_path: Path) -> dict[str, Any]:
    env = dict(os.environ, PYTHONPATH=str(ROOT / "src"))
    out = subprocess.run(
        [sys.executable, __file__, "--worker", kind, "--spec", str(spec_path)],
        capture_output=True,
        text=True,
        env=env,
        timeout=1800,
    )
    if out.returncode != 0:
        raise SystemExit(f"worker {kind} failed:\n{out.stderr[-3000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])  # type: ignore[no-any-return]


def summary(runs: list[dict[str, Any]], n: int) -> dict[str, float]:
    walls = [r["wall"] for r in runs]
    return {
        "min": min(walls),
        "median": statistics.median(walls),
        "cpu_ms": statistics.median(r["cpu"] for r in runs) / n * 1000,
        "rss": max(r["rss_mb"] for r in runs),
        "failures": sum(r["failures"] for r in runs),
        "worst_ms": max(r["worst_ms"] for r in runs),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", default="100,1000,5000,10000")
    ap.add_argument("--delay-ms", type=float, default=50)
    ap.add_argument("--concurrency", type=int, default=200)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--servers", type=int, default=2)
    ap.add_argument("--httpx-max", type=int, default=1000)
    ap.add_argument("--lag-endpoints", type=int, default=5000)
    ap.add_argument("--key-presses", type=int, default=10)
    ap.add_argument("--key-seconds", type=float, default=30, help="0 skips key-to-screen")
    ap.add_argument("--worker", help=argparse.SUPPRESS)
    ap.add_argument("--spec", help=argparse.SUPPRESS)
    args = ap.parse_args()
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))  # children inherit it
    if args.worker:
        worker(args)
        return
    rounds = max(args.rounds, 3)
    sizes = [int(x) for x in args.sizes.split(",")]
    c, delay = args.concurrency, args.delay_ms / 1000
    servers, ports = start_servers(args.servers, delay)
    flat = [p for ps in ports for p in ps]
    tmp = Path(tempfile.mkdtemp(prefix="bench-probes-"))
    bb = Blackbox(tmp)
    try:
        ceiling = wrk_ceiling(ports)
        print(
            f"{args.servers} aiohttp target processes x {PORTS_PER_SERVER} ports on 127.0.0.1, "
            f"{args.delay_ms:g} ms per request; concurrency {c}; {rounds} rounds interleaved; "
            f"{os.cpu_count()} CPUs, load {os.getloadavg()[0]:.1f}; RLIMIT_NOFILE {hard} "
            f"(was {soft})"
        )
        print(
            "target server ceiling (wrk, 1,000 connections): "
            + (f"{ceiling:,.0f} req/s" if ceiling else "wrk not installed")
        )
        if bb.proc is None:
            print("prometheus-blackbox-exporter: not installed (skipped)")
        results: dict[int, dict[str, dict[str, float]]] = {}
        for n in sizes:
            urls = [f"http://127.0.0.1:{flat[i % len(flat)]}/e/{i}" for i in range(n)]
            spec = tmp / f"spec-{n}.json"
            bb_pid = bb.proc.pid if bb.proc else 0
            spec.write_text(
                json.dumps({"urls": urls, "concurrency": c, "bb_url": bb.url, "bb_pid": bb_pid})
            )
            kinds = ["monitor", "aiohttp"]
            if n <= args.httpx_max:
                kinds.append("httpx")
            if bb.proc is not None:
                kinds.append("blackbox")
            runs: dict[str, list[dict[str, Any]]] = {k: [] for k in kinds}
            for _ in range(rounds):
                for k in kinds:
                    runs[k].append(run_worker(k, spec))
            results[n] = {k: summary(v, n) for k, v in runs.items()}
            floor = math.ceil(n / c) * delay
            if ceiling:
                floor = max(floor, n / ceiling)
            results[n]["floor"] = {"min": floor, "median": floor}
            report(n, results[n])
        scale(results)
        extras(tmp, flat, c, rounds, args.lag_endpoints)
        if args.key_seconds > 0:
            keys(tmp, flat, c, args.lag_endpoints, args.key_presses, args.key_seconds)
    finally:
        bb.close()
        for p in servers:
            p.terminate()
        shutil.rmtree(tmp, ignore_errors=True)


NAMES = {
    "monitor": "opsconsole Monitor.sweep()",
    "aiohttp": "gather, one aiohttp.ClientSession",
    "httpx": "gather, one httpx.AsyncClient",
    "blackbox": "blackbox_exporter (CPU: exporter)",
    "floor": "physical floor",
}


def report(n: int, res: dict[str, dict[str, float]]) -> None:
    print(f"\n== {n:,} HTTP endpoints ==")
    print(
        f"{'client':36} {'min s':>8} {'median s':>9} {'CPU ms/probe':>13} "
        f"{'max RSS MB':>11} {'failed':>7} {'max latency ms':>15}"
    )
    for k, r in res.items():
        if k == "floor":
            print(f"{NAMES[k]:36} {r['min']:8.3f} {r['median']:9.3f}")
            continue
        print(
            f"{NAMES[k]:36} {r['min']:8.3f} {r['median']:9.3f} {r['cpu_ms']:13.3f} "
            f"{r['rss']:11.0f} {r['failures']:7d} {r['worst_ms']:15.0f}"
        )
    m = res["monitor"]["median"]
    parts = [f"monitor/aiohttp {m / res['aiohttp']['median']:.2f} (target <= 1.5)"]
    if "blackbox" in res:
        parts.append(f"monitor/blackbox {m / res['blackbox']['median']:.2f} (target < 1)")
    parts.append(f"monitor/floor {m / res['floor']['median']:.2f}")
    if "httpx" in res:
        parts.append(f"monitor/httpx {m / res['httpx']['median']:.3f}")
    cpu = res["monitor"]["cpu_ms"]
    parts.append(f"monitor CPU/probe {cpu:.3f} ms (target <= 0.3)")
    print("ratios (medians): " + ", ".join(parts))


def scale(results: dict[int, dict[str, dict[str, float]]]) -> None:
    print("\n== scale curve (medians) ==")
    print(
        f"{'endpoints':>9} {'monitor s':>10} {'aiohttp s':>10} {'blackbox s':>11} "
        f"{'floor s':>8} {'mon/aio':>8} {'mon/bb':>7} {'mon/floor':>10} "
        f"{'mon CPU ms/probe':>17} {'mon RSS MB':>11} {'s per 1k':>9}"
    )
    for n, res in results.items():
        m = res["monitor"]
        bb = res.get("blackbox", {}).get("median")
        print(
            f"{n:9,} {m['median']:10.3f} {res['aiohttp']['median']:10.3f} "
            f"{bb if bb is not None else float('nan'):11.3f} {res['floor']['median']:8.3f} "
            f"{m['median'] / res['aiohttp']['median']:8.2f} "
            f"{m['median'] / bb if bb else float('nan'):7.2f} "
            f"{m['median'] / res['floor']['median']:10.2f} {m['cpu_ms']:17.3f} "
            f"{m['rss']:11.0f} {m['median'] / n * 1000:9.3f}"
        )


def extras(tmp: Path, ports: list[int], c: int, rounds: int, lag_n: int) -> None:
    n = 1000
    urls = [f"http://127.0.0.1:{ports[i % len(ports)]}/e/{i}" for i in range(n)]
    spec = tmp / "spec-tcp.json"
    spec.write_text(json.dumps({"urls": urls, "concurrency": c}))
    runs: dict[str, list[dict[str, Any]]] = {"tcp-monitor": [], "tcp-gather": []}
    for _ in range(rounds):
        for k in runs:
            runs[k].append(run_worker(k, spec))
    mon, gat = summary(runs["tcp-monitor"], n), summary(runs["tcp-gather"], n)
    print(f"\n== {n:,} TCP connect probes ==")
    print(
        f"monitor {mon['median']:.3f} s (min {mon['min']:.3f}), {mon['cpu_ms']:.3f} ms CPU/probe, "
        f"{mon['failures']} failed; bare create_connection gather {gat['median']:.3f} s, "
        f"{gat['cpu_ms']:.3f} ms CPU/probe; ratio {mon['median'] / gat['median']:.2f}"
    )
    urls = [f"http://127.0.0.1:{ports[i % len(ports)]}/e/{i}" for i in range(lag_n)]
    spec = tmp / "spec-lag.json"
    spec.write_text(json.dumps({"urls": urls, "concurrency": c}))
    print(f"\n== event-loop lag of a 10 ms ticker during two {lag_n:,}-endpoint sweeps ==")
    for k, label in (
        ("lag-idle", "no monitor (machine noise)"),
        ("lag-same-loop", "monitor on the same loop"),
        ("lag-thread", "monitor in its own thread"),
    ):
        r = run_worker(k, spec)
        print(
            f"{label:28} lag p50 {r['lag_p50']:.1f} ms, p99 {r['lag_p99']:.1f} ms, "
            f"max {r['worst_ms']:.1f} ms (sweeps {r['wall']:.2f} s)"
        )


if __name__ == "__main__":
    main()
