"""Start and stop the whole demo deployment, and write the files that describe it.

``Demo(state_dir).start()`` (async) binds every port on 127.0.0.1 first (port 0, so
parallel demos and tests never collide), writes the config directory, ``demo.json`` and
``api-key``, and then serves. :class:`DemoThread` runs the same thing on its own event
loop in a background thread, for tests and for the live view.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import socket
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from aiohttp import web

from opsconsole.demo.ledger import LedgerWriter
from opsconsole.demo.server import AccessLogs, router_app, service_app
from opsconsole.demo.sim import REGIONS, SERVICES, Simulation

__all__ = ["Demo", "DemoInfo", "DemoThread", "default_state_dir"]


def default_state_dir() -> Path:
    from opsconsole.paths import state_dir

    return state_dir() / "demo"


@dataclass(frozen=True)
class DemoInfo:
    """Where a running demo lives. ``service_ports`` keys are ``region/service``."""

    state_dir: Path
    config_dir: Path
    db_path: Path
    router_url: str
    router_port: int
    service_ports: dict[str, int] = field(default_factory=dict)

    @property
    def api_key_file(self) -> Path:
        return self.state_dir / "api-key"

    @property
    def api_key(self) -> str:
        """The current key (re-read: the router's API can rotate it)."""
        return self.api_key_file.read_text().strip()

    def service_url(self, region: str, service: str) -> str:
        return f"http://127.0.0.1:{self.service_ports[f'{region}/{service}']}/healthz"


def _bind() -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    sock.listen(512)
    sock.setblocking(False)
    return sock


def _write_private(path: Path, text: str) -> None:
    tmp = path.with_name(path.name + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as fh:
        fh.write(text)
    tmp.replace(path)


def inventory_data(info: DemoInfo) -> dict[str, Any]:
    d = info.state_dir
    regions: dict[str, Any] = {}
    for rid, spec in REGIONS.items():
        services: dict[str, Any] = {}
        for sid, sspec in SERVICES.items():
            endpoint: dict[str, Any] = {
                "name": "health",
                "url": info.service_url(rid, sid),
                "expect": {"status": 200, "json_equals": {"status": "ok"}},
                "timeout_seconds": 2,
            }
            if sid == "gateway":
                endpoint["phases"] = True
            services[sid] = {
                "critical": sspec.critical,
                "description": f"{sid} in {spec.name} (simulated)",
                "objectives": {"latency_ms": sspec.objective_latency_ms, "availability": 99.5},
                "endpoints": [endpoint],
            }
        regions[rid] = {
            "name": spec.name,
            "timezone": spec.timezone,
            "standby": spec.standby,
            "environment": "demo",
            "services": services,
        }
    return {
        "regions": regions,
        "vars": {
            "router_url": info.router_url,
            "state_dir": str(d),
            "ledger_dir": str(d / "ledger"),
            "ledger_standby_dir": str(d / "ledger" / "standby"),
            "log_dir": str(d / "logs"),
            "evidence_dir": str(d / "evidence"),
            "backup_dir": str(d / "backups"),
            "api_key_file": str(info.api_key_file),
            "webhook_url": f"{info.router_url}/webhook",
        },
    }


def settings_data(info: DemoInfo) -> dict[str, Any]:
    return {
        "database": str(info.db_path),
        "webhooks": [
            {"name": "demo-sink", "url": f"{info.router_url}/webhook", "format": "generic"}
        ],
        "probe": {
            "interval_seconds": 2,
            "timeout_seconds": 2,
            "concurrency": 50,
            "per_host_concurrency": 20,
            "window": 30,
            "hysteresis": {"down_after": 2, "recover_after": 2},
        },
    }


class Demo:
    """The simulated deployment. ``await start()`` then ``await stop()`` on one loop."""

    def __init__(self, state_dir: Path, *, writes_per_second: float = 4.0) -> None:
        self.state_dir = state_dir.resolve()
        self.sim = Simulation()
        self.writes_per_second = writes_per_second
        self.info: DemoInfo | None = None
        self._runners: list[web.AppRunner] = []
        self._ledger: LedgerWriter | None = None
        self._logs: AccessLogs | None = None

    async def start(self) -> DemoInfo:
        d = self.state_dir
        self._refuse_if_running(d)
        for sub in ("config", "ledger", "logs", "evidence", "backups"):
            (d / sub).mkdir(parents=True, exist_ok=True)
        router_sock = _bind()
        svc_socks = {(r, s): _bind() for r in REGIONS for s in SERVICES}
        router_port = router_sock.getsockname()[1]
        info = DemoInfo(
            state_dir=d,
            config_dir=d / "config",
            db_path=d / "opsconsole.db",
            router_url=f"http://127.0.0.1:{router_port}",
            router_port=router_port,
            service_ports={f"{r}/{s}": sock.getsockname()[1] for (r, s), sock in svc_socks.items()},
        )
        self.info = info
        self._write_files(info)

        self._logs = AccessLogs(d / "logs")
        self._ledger = LedgerWriter(
            d / "ledger",
            list(REGIONS),
            self.sim.ledger_primary.__getitem__,
            writes_per_second=self.writes_per_second,
        )
        by_port = {sock.getsockname()[1]: key for key, sock in svc_socks.items()}
        svc_runner = web.AppRunner(
            service_app(self.sim, by_port, self._logs), access_log=None, shutdown_timeout=1
        )
        rt_runner = web.AppRunner(
            router_app(
                self.sim,
                self._ledger,
                self._logs,
                on_key_rotated=lambda k: _write_private(info.api_key_file, k + "\n"),
            ),
            access_log=None,
            shutdown_timeout=1,
        )
        for runner in (svc_runner, rt_runner):
            await runner.setup()
            self._runners.append(runner)
        for sock in svc_socks.values():
            await web.SockSite(svc_runner, sock).start()
        await web.SockSite(rt_runner, router_sock).start()
        self._ledger.start()
        await asyncio.to_thread(self._ensure_db, info)
        self._write_meta(info)
        return info

    @staticmethod
    def _refuse_if_running(d: Path) -> None:
        """Two demos in one state directory would write the same ledgers and files."""
        from opsconsole.errors import ExitCode, OpsError

        try:
            pid = int(json.loads((d / "demo.json").read_text())["pid"])
        except (OSError, ValueError, KeyError, TypeError):
            return
        if pid == os.getpid():
            return
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return  # left behind by a demo that did not stop cleanly
        except PermissionError:
            pass
        raise OpsError(
            f"a demo is already running in {d} (pid {pid}); stop it or use another --state-dir",
            exit_code=ExitCode.CONFLICT,
        )

    def _write_files(self, info: DemoInfo) -> None:
        _write_private(info.api_key_file, self.sim.api_key + "\n")
        header = "# Written by `opsconsole demo`; rewritten on every start.\n"
        (info.config_dir / "inventory.yaml").write_text(
            header + yaml.safe_dump(inventory_data(info), sort_keys=False), encoding="utf-8"
        )
        (info.config_dir / "settings.yaml").write_text(
            header + yaml.safe_dump(settings_data(info), sort_keys=False), encoding="utf-8"
        )

    @staticmethod
    def _write_meta(info: DemoInfo) -> None:
        """``demo.json`` last: its presence means the demo is serving."""
        tmp = info.state_dir / "demo.json.tmp"
        tmp.write_text(
            json.dumps(
                {
                    "pid": os.getpid(),
                    "router_url": info.router_url,
                    "state_dir": str(info.state_dir),
                    "config_dir": str(info.config_dir),
                    "database": str(info.db_path),
                    "ports": {"router": info.router_port, "services": info.service_ports},
                },
                indent=2,
            )
            + "\n",
            encoding="utf-8",
        )
        tmp.replace(info.state_dir / "demo.json")
        from opsconsole.demo.locate import remember

        remember(info.state_dir)  # so `opsconsole demo env` finds a --state-dir demo

    @staticmethod
    def _ensure_db(info: DemoInfo) -> None:
        """Create the demo's database with every capability's migrations applied."""
        from opsconsole.capabilities import register_all
        from opsconsole.store import open_db

        register_all()
        open_db(info.db_path).conn.close()

    async def stop(self) -> None:
        for runner in reversed(self._runners):
            with contextlib.suppress(Exception):
                await runner.cleanup()
        self._runners.clear()
        if self._ledger is not None:
            await asyncio.to_thread(self._ledger.stop)
        if self._logs is not None:
            self._logs.close()
        if self.info is not None:
            (self.info.state_dir / "demo.json").unlink(missing_ok=True)
            from opsconsole.demo.locate import forget

            forget(self.info.state_dir)


class DemoThread:
    """Run a :class:`Demo` on its own event loop in a daemon thread.

    >>> with DemoThread(tmp_path / "demo") as info:
    ...     httpx.get(info.router_url + "/routes")
    """

    def __init__(self, state_dir: Path, **kwargs: Any) -> None:
        self.demo = Demo(state_dir, **kwargs)
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="demo", daemon=True)

    def start(self, timeout: float = 30) -> DemoInfo:
        self._thread.start()
        fut = asyncio.run_coroutine_threadsafe(self.demo.start(), self._loop)
        return fut.result(timeout)

    def call(self, fn: Any, *args: Any) -> Any:
        """Run ``fn(*args)`` on the demo's loop (to touch the simulation safely)."""

        async def run() -> Any:
            return fn(*args)

        return asyncio.run_coroutine_threadsafe(run(), self._loop).result(10)

    def stop(self, timeout: float = 30) -> None:
        if not self._thread.is_alive():
            return
        with contextlib.suppress(Exception):
            asyncio.run_coroutine_threadsafe(self.demo.stop(), self._loop).result(timeout)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout)
        self._loop.close()

    def __enter__(self) -> DemoInfo:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
