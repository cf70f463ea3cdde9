"""Real loopback components for the serve tests: webhook receivers that fail on purpose,
an ``opsconsole serve`` subprocess, and config writers."""

from __future__ import annotations

import json
import os
import queue
import shutil
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import httpx
import yaml
from aiohttp import web

from tests.health.servers import LoopThread
from tests.helpers import SRC

REPO = Path(__file__).resolve().parents[2]
TOKEN = "test-token-0123456789abcdef"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Receiver:
    """A webhook receiver on 127.0.0.1 that answers 500 to its first ``fail_first`` posts
    (or to every post while ``down``) and keeps every body it accepted."""

    def __init__(self, lt: LoopThread, *, fail_first: int = 0) -> None:
        self.lt = lt
        self.fail_first = fail_first
        self.down = False
        self.posts = 0
        self.accepted: list[dict[str, Any]] = []
        self.runner: web.AppRunner | None = None
        lt.run(self._start())

    async def _start(self) -> None:
        app = web.Application()
        app.router.add_post("/{tail:.*}", self._post)
        self.runner = web.AppRunner(app, access_log=None)
        await self.runner.setup()
        site = web.TCPSite(self.runner, "127.0.0.1", 0)
        await site.start()
        self.port = self.runner.addresses[0][1]
        self.url = f"http://127.0.0.1:{self.port}"

    async def _post(self, request: web.Request) -> web.Response:
        body = await request.json()
        self.posts += 1
        if self.down or self.posts <= self.fail_first:
            return web.Response(status=500, text="failing on purpose")
        self.accepted.append(body)
        return web.json_response({"status": "success"}, status=202)

    def close(self) -> None:
        if self.runner is not None:
            self.lt.run(self.runner.cleanup())


def write_config(
    directory: Path,
    *,
    settings: dict[str, Any] | None = None,
    rules: list[dict[str, Any]] | None = None,
) -> Path:
    """A copy of the example config with these settings merged and these rules."""
    shutil.copytree(REPO / "config", directory, dirs_exist_ok=True)
    base = yaml.safe_load((directory / "settings.yaml").read_text()) or {}
    base.update(settings or {})
    (directory / "settings.yaml").write_text(yaml.safe_dump(base))
    rules_file = directory / "rules.yaml"
    if rules is not None:
        rules_file.write_text(yaml.safe_dump({"rules": rules}, sort_keys=False))
    elif rules_file.exists():
        rules_file.unlink()
    return directory


class Serve:
    """``python -m opsconsole serve`` as a real process on a free port."""

    def __init__(
        self, config_dir: Path, db: Path, *args: str, env: dict[str, str] | None = None
    ) -> None:
        full_env = dict(os.environ)
        full_env["PYTHONPATH"] = str(SRC) + os.pathsep + full_env.get("PYTHONPATH", "")
        full_env["OPSCONSOLE_SERVE_TOKEN"] = TOKEN
        full_env.update(env or {})
        self.proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "opsconsole",
                "--config",
                str(config_dir),
                "--db",
                str(db),
                "serve",
                "--port",
                "0",
                *args,
            ],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=full_env,
        )
        self.lines: queue.Queue[str] = queue.Queue()
        self.log: list[dict[str, Any]] = []
        threading.Thread(target=self._read, daemon=True).start()
        started = self.wait_for("serve.listening", timeout=60)
        self.url = started["url"]

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.lines.put(line)

    def wait_for(self, event: str, timeout: float = 30, **fields: Any) -> dict[str, Any]:
        """The first log line of ``event`` with these field values (read so far or next)."""

        def match(item: dict[str, Any]) -> bool:
            return item.get("event") == event and all(item.get(k) == v for k, v in fields.items())

        for item in self.log:
            if match(item):
                return item
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                line = self.lines.get(timeout=0.2)
            except queue.Empty:
                if self.proc.poll() is not None:
                    err = self.proc.stderr.read() if self.proc.stderr else ""
                    raise AssertionError(f"serve exited {self.proc.returncode}: {err}") from None
                continue
            item = json.loads(line)
            self.log.append(item)
            if match(item):
                return item
        raise AssertionError(f"serve did not log {event} within {timeout}s: {self.log}")

    def client(self, token: str | None = TOKEN, **kw: Any) -> httpx.Client:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        return httpx.Client(base_url=self.url, headers=headers, trust_env=False, **kw)

    def stop(self) -> int:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)
        return self.proc.returncode


def wait_until(predicate: Any, timeout: float = 30, interval: float = 0.1) -> Any:
    """Poll ``predicate`` until it returns something truthy (the tests' only waiting)."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met within {timeout}s")
        time.sleep(interval)
