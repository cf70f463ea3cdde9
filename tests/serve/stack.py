"""Real Prometheus and Alertmanager (Debian packages) on free loopback ports."""

from __future__ import annotations

import subprocess
import time
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from tests.serve.helpers import free_port

PROMETHEUS = Path("/usr/bin/prometheus")
ALERTMANAGER = Path("/usr/bin/prometheus-alertmanager")


def need(binary: Path) -> None:
    if not binary.exists():
        pytest.skip(f"{binary} is not installed (scripts/install adds it)")


class Daemon:
    """A foreground process answering ``GET /-/ready`` once it is up."""

    def __init__(self, argv: list[str], url: str, log: Path) -> None:
        self.url = url
        self.log = log
        self.out = log.open("w")
        self.proc = subprocess.Popen(argv, stdout=self.out, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 60
        while True:
            if self.proc.poll() is not None:
                raise AssertionError(f"{argv[0]} exited: {log.read_text()[-2000:]}")
            try:
                if httpx.get(f"{url}/-/ready", timeout=1, trust_env=False).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                raise AssertionError(f"{argv[0]} not ready: {log.read_text()[-2000:]}")
            time.sleep(0.1)

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(20)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(10)
        self.out.close()


def prometheus(directory: Path, target: str, token_file: Path) -> Daemon:
    need(PROMETHEUS)
    port = free_port()
    config = {
        "global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
        "scrape_configs": [
            {
                "job_name": "opsconsole",
                "scrape_interval": "1s",
                "authorization": {"type": "Bearer", "credentials_file": str(token_file)},
                "static_configs": [{"targets": [target]}],
            }
        ],
    }
    (directory / "prometheus.yml").write_text(yaml.safe_dump(config))
    return Daemon(
        [
            str(PROMETHEUS),
            f"--config.file={directory / 'prometheus.yml'}",
            f"--storage.tsdb.path={directory / 'tsdb'}",
            f"--web.listen-address=127.0.0.1:{port}",
        ],
        f"http://127.0.0.1:{port}",
        directory / "prometheus.log",
    )


def alertmanager(directory: Path, webhook_url: str, token_file: Path) -> Daemon:
    need(ALERTMANAGER)
    port = free_port()
    config: dict[str, Any] = {
        "route": {
            "receiver": "opsconsole",
            "group_by": ["alertname"],
            "group_wait": "1s",
            "group_interval": "1s",
            "repeat_interval": "2s",
        },
        "receivers": [
            {
                "name": "opsconsole",
                "webhook_configs": [
                    {
                        "url": webhook_url,
                        "send_resolved": True,
                        "http_config": {
                            "authorization": {"type": "Bearer", "credentials_file": str(token_file)}
                        },
                    }
                ],
            }
        ],
    }
    (directory / "alertmanager.yml").write_text(yaml.safe_dump(config))
    return Daemon(
        [
            str(ALERTMANAGER),
            f"--config.file={directory / 'alertmanager.yml'}",
            f"--storage.path={directory / 'am-data'}",
            f"--web.listen-address=127.0.0.1:{port}",
            "--cluster.listen-address=",
        ],
        f"http://127.0.0.1:{port}",
        directory / "alertmanager.log",
    )
