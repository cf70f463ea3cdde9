from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest

from tests.demo_fixture import demo, demo_thread  # noqa: F401
from tests.health.servers import HttpServer, LoopThread, RawServer


@pytest.fixture
def loop_thread() -> Iterator[LoopThread]:
    lt = LoopThread()
    yield lt
    lt.stop()


@pytest.fixture
def servers(loop_thread: LoopThread) -> Iterator[Callable[..., Any]]:
    """``servers("http")``, ``servers("hang")``, ``servers("reset")``, ``servers("http",
    ssl_context=ctx)``: started on 127.0.0.1, closed after the test."""
    made: list[Any] = []

    def make(kind: str = "http", **kw: Any) -> Any:
        srv = HttpServer(loop_thread, **kw) if kind == "http" else RawServer(loop_thread, kind)
        made.append(srv)
        return srv

    yield make
    for srv in made:
        srv.close()
