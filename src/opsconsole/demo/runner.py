"""Run the demo in the foreground until Ctrl-C or SIGTERM, and talk to a running one."""

from __future__ import annotations

import asyncio
import json
import signal
from collections.abc import Callable
from pathlib import Path
from typing import Any

from opsconsole.demo.deployment import Demo, DemoInfo
from opsconsole.errors import ExitCode, NotFoundError, OpsError

__all__ = ["DemoClient", "run_headless"]


def run_headless(state_dir: Path, on_ready: Callable[[DemoInfo], None]) -> None:
    """Serve until SIGINT/SIGTERM, then stop every server and the ledger writer cleanly."""

    async def main() -> None:
        demo = Demo(state_dir)
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        try:
            info = await demo.start()
            on_ready(info)
            await stop.wait()
        finally:
            await demo.stop()

    asyncio.run(main())


class DemoClient:
    """The router's admin API of a running demo, found through its state directory."""

    def __init__(self, router_url: str, api_key_file: Path) -> None:
        self.router_url = router_url.rstrip("/")
        self.api_key_file = api_key_file

    @classmethod
    def from_state_dir(cls, state_dir: Path) -> DemoClient:
        meta = state_dir / "demo.json"
        try:
            data = json.loads(meta.read_text())
        except (OSError, ValueError):
            raise NotFoundError(
                f"no running demo in {state_dir} (no {meta.name}); start one with "
                f"`opsconsole demo --state-dir {state_dir}`"
            ) from None
        return cls(data["router_url"], state_dir / "api-key")

    def _headers(self) -> dict[str, str]:
        try:
            key = self.api_key_file.read_text().strip()
        except OSError as exc:
            raise OpsError(f"cannot read the demo API key {self.api_key_file}: {exc}") from None
        return {"Authorization": f"Bearer {key}"}

    def request(self, method: str, path: str, body: dict[str, Any] | None = None) -> Any:
        import httpx

        try:
            resp = httpx.request(
                method,
                self.router_url + path,
                json=body,
                headers=self._headers() if method != "GET" else {},
                timeout=10,
            )
        except httpx.HTTPError as exc:
            raise OpsError(f"demo router at {self.router_url} not reachable: {exc}") from None
        if resp.status_code >= 400:
            try:
                msg = resp.json().get("error", resp.text)
            except ValueError:
                msg = resp.text
            code = ExitCode.NOT_FOUND if resp.status_code == 404 else ExitCode.FAILED
            raise OpsError(f"demo router refused: {resp.status_code} {msg}", exit_code=code)
        return resp.json()

    def fault(self, region: str, service: str | None, mode: str, value: float | None = None) -> Any:
        return self.request(
            "POST", "/faults", {"region": region, "service": service, "mode": mode, "value": value}
        )
