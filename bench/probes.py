"""Benchmark: the monitor's full sweep against a minimal asyncio.gather over one httpx client.

1,000 HTTP endpoints on 127.0.0.1 (aiohttp, in a separate process, each answering after
50 ms), concurrency 200. Prints the wall time of a full sweep for both, their ratio
(target <= 1.15), and client CPU seconds per probe. If Debian's
``prometheus-blackbox-exporter`` is installed, also times it probing the same targets
(1,000 ``/probe`` requests at concurrency 200).

Run: ``python bench/probes.py [--endpoints 1000] [--delay-ms 50] [--concurrency 200]
[--rounds 5]``. Not part of pytest.
"""

from __future__ import annotations

import argparse
import asyncio
import multiprocessing as mp
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

PORTS = 4  # the endpoints are spread over a few listening ports (a few "hosts")


def serve(socks: list[socket.socket], delay: float, ready: mp.synchronize.Event) -> None:
    from aiohttp import web

    async def handler(request: web.Request) -> web.Response:
        await asyncio.sleep(delay)
        return web.json_response({"status": "ok"})

    async def main() -> None:
        app = web.Application()
        app.router.add_get("/e/{n}", handler)
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        for s in socks:
            await web.SockSite(runner, s, backlog=2048).start()
        ready.set()
        await asyncio.Event().wait()

    asyncio.run(main())


def _bind() -> socket.socket:
    s = socket.socket()
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind(("127.0.0.1", 0))
    s.listen(2048)
    return s


def urls_for(ports: list[int], n: int) -> list[str]:
    return [f"http://127.0.0.1:{ports[i % len(ports)]}/e/{i}" for i in range(n)]


def write_config(directory: Path, urls: list[str], concurrency: int) -> Path:
    import yaml

    services = {
        f"s{i}": {"critical": False, "endpoints": [{"url": u, "timeout_seconds": 60}]}
        for i, u in enumerate(urls)
    }
    inv = {"regions": {"bench": {"name": "Bench", "environment": "test", "services": services}}}
    settings = {
        "probe": {
            "concurrency": concurrency,
            "per_host_concurrency": concurrency,
            "timeout_seconds": 60,
            "window": 10,
        }
    }
    (directory / "inventory.yaml").write_text(yaml.safe_dump(inv))
    (directory / "settings.yaml").write_text(yaml.safe_dump(settings))
    return directory


async def baseline(
    urls: list[str], concurrency: int, rounds: int
) -> tuple[list[float], float, int]:
    """The minimal hand-written version: one client, a semaphore, gather."""
    import httpx

    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    walls: list[float] = []
    cpu = 0.0
    failures = 0
    async with httpx.AsyncClient(limits=limits, trust_env=False) as client:
        sem = asyncio.Semaphore(concurrency)

        async def one(u: str) -> bool:
            async with sem:
                try:
                    r = await client.get(u, timeout=60)
                    return r.status_code == 200
                except httpx.HTTPError:
                    return False

        await asyncio.gather(*(one(u) for u in urls))  # warm-up (connections)
        for _ in range(rounds):
            c0, t0 = time.process_time(), time.perf_counter()
            ok = await asyncio.gather(*(one(u) for u in urls))
            walls.append(time.perf_counter() - t0)
            cpu += time.process_time() - c0
            failures += ok.count(False)
    return walls, cpu, failures


async def monitor(config_dir: Path, rounds: int) -> tuple[list[float], float, int]:
    from opsconsole.config import load_config
    from opsconsole.health.monitor import Monitor

    cfg = load_config(config_dir)
    walls: list[float] = []
    cpu = 0.0
    failures = 0
    async with Monitor(cfg, notify=False) as mon:
        await mon.sweep()  # warm-up
        for _ in range(rounds):
            c0, t0 = time.process_time(), time.perf_counter()
            snap = await mon.sweep()
            walls.append(time.perf_counter() - t0)
            cpu += time.process_time() - c0
            failures += sum(1 for t in snap.targets() if t.history and t.history[-1] is None)
    return walls, cpu, failures


def blackbox(urls: list[str], concurrency: int) -> tuple[float, float] | None:
    """Time blackbox_exporter probing the same targets, if it is installed."""
    exe = shutil.which("prometheus-blackbox-exporter")
    if exe is None:
        return None
    import httpx
    import psutil

    port_sock = _bind()
    port = port_sock.getsockname()[1]
    port_sock.close()
    with tempfile.TemporaryDirectory() as d:
        cfg = Path(d) / "blackbox.yml"
        cfg.write_text("modules:\n  http_2xx:\n    prober: http\n    timeout: 10s\n")
        proc = subprocess.Popen(
            [exe, f"--config.file={cfg}", f"--web.listen-address=127.0.0.1:{port}"],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        try:
            base = f"http://127.0.0.1:{port}"
            deadline = time.monotonic() + 20
            while True:
                try:
                    httpx.get(base + "/metrics", timeout=1)
                    break
                except httpx.HTTPError:
                    if time.monotonic() > deadline:
                        return None
                    time.sleep(0.1)

            async def run() -> float:
                limits = httpx.Limits(max_connections=concurrency)
                async with httpx.AsyncClient(limits=limits, trust_env=False) as client:
                    sem = asyncio.Semaphore(concurrency)

                    async def one(u: str) -> None:
                        async with sem:
                            await client.get(
                                base + "/probe",
                                params={"target": u, "module": "http_2xx"},
                                timeout=20,
                            )

                    await asyncio.gather(*(one(u) for u in urls))  # warm-up
                    p = psutil.Process(proc.pid)
                    c0 = sum(p.cpu_times()[:2])
                    t0 = time.perf_counter()
                    await asyncio.gather(*(one(u) for u in urls))
                    wall = time.perf_counter() - t0
                    run.cpu = sum(p.cpu_times()[:2]) - c0  # type: ignore[attr-defined]
                    return wall

            wall = asyncio.run(run())
            return wall, run.cpu  # type: ignore[attr-defined]
        finally:
            proc.terminate()
            proc.wait(10)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--endpoints", type=int, default=1000)
    ap.add_argument("--delay-ms", type=float, default=50)
    ap.add_argument("--concurrency", type=int, default=200)
    ap.add_argument("--rounds", type=int, default=5)
    args = ap.parse_args()
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "src"))

    socks = [_bind() for _ in range(PORTS)]
    ports = [s.getsockname()[1] for s in socks]
    ready = mp.get_context("fork").Event()
    server = mp.get_context("fork").Process(
        target=serve, args=(socks, args.delay_ms / 1000, ready), daemon=True
    )
    server.start()
    ready.wait(30)
    urls = urls_for(ports, args.endpoints)
    n, r = args.endpoints, args.rounds
    print(
        f"{n} endpoints on {PORTS} loopback ports, {args.delay_ms:g} ms each, "
        f"concurrency {args.concurrency}, {r} rounds (median), {os.cpu_count()} CPUs, "
        f"load {os.getloadavg()[0]:.1f}"
    )
    try:
        with tempfile.TemporaryDirectory() as d:
            write_config(Path(d), urls, args.concurrency)
            # Alternate the two so drifting machine load hits both alike.
            b_walls: list[float] = []
            m_walls: list[float] = []
            b_cpu = m_cpu = 0.0
            b_fail = m_fail = 0
            for _ in range(r):
                w, c, f = asyncio.run(baseline(urls, args.concurrency, 1))
                b_walls += w
                b_cpu += c
                b_fail += f
                w, c, f = asyncio.run(monitor(Path(d), 1))
                m_walls += w
                m_cpu += c
                m_fail += f
        ideal = n / args.concurrency * args.delay_ms / 1000
        bw, mw = statistics.median(b_walls), statistics.median(m_walls)
        print(f"ideal (n/concurrency x delay):        {ideal:.3f} s")
        print(
            f"asyncio.gather + one httpx client:   {bw:.3f} s/sweep  "
            f"{b_cpu / (n * r) * 1e6:.0f} us CPU/probe  failures {b_fail}"
        )
        print(
            f"opsconsole Monitor.sweep():          {mw:.3f} s/sweep  "
            f"{m_cpu / (n * r) * 1e6:.0f} us CPU/probe  failures {m_fail}"
        )
        print(f"ratio monitor/gather (wall):          {mw / bw:.3f}  (target <= 1.15)")
        print(f"ratio monitor/gather (CPU per probe): {m_cpu / max(b_cpu, 1e-9):.3f}")
        bb = blackbox(urls, args.concurrency)
        if bb is None:
            print("prometheus-blackbox-exporter: not installed (skipped)")
        else:
            wall, cpu = bb
            print(
                f"blackbox_exporter /probe x {n}:       {wall:.3f} s  "
                f"{cpu / n * 1e6:.0f} us exporter CPU/probe  ratio to monitor {wall / mw:.3f}"
            )
    finally:
        server.terminate()


if __name__ == "__main__":
    main()
