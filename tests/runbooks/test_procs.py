"""Finding a step's processes: token carriers at any depth below the engine, exact
tokens, and whatever holds a step's pipes."""

from __future__ import annotations

import os
import subprocess
import time
from collections.abc import Iterator

import pytest

from opsconsole.runbooks import procs


@pytest.fixture
def started() -> Iterator[list[subprocess.Popen[bytes]]]:
    """Processes a test starts; each is killed and collected at the end."""
    out: list[subprocess.Popen[bytes]] = []
    yield out
    for p in out:
        p.kill()
        p.wait()


def _until(cond, what: str, limit: float = 30.0) -> None:  # type: ignore[no-untyped-def]
    """Poll ``cond`` (a hang guard only: nothing here depends on how long it takes)."""
    end = time.monotonic() + limit
    while not cond():
        assert time.monotonic() < end, f"timed out waiting for {what}"
        time.sleep(0.01)


def _carrier_below(parent: int, token: str) -> list[int]:
    return [p for p in procs.descendants(parent) if procs.find_by_token(token, among=[p])]


def test_a_token_carrier_below_a_tokenless_descendant_is_found(
    started: list[subprocess.Popen[bytes]],
) -> None:
    """The engine's child does not carry the token, its child does: the non-scan search
    looked only at the engine's own children and missed it."""
    env = {k: v for k, v in os.environ.items() if k != procs.TOKEN_ENV}
    shell = subprocess.Popen(
        ["/bin/sh", "-c", f"{procs.TOKEN_ENV}=R9/main/0/1 sleep 300; true"], env=env
    )
    started.append(shell)
    _until(lambda: _carrier_below(shell.pid, "R9/main/0/1"), "the token carrier to start")
    (carrier,) = _carrier_below(shell.pid, "R9/main/0/1")
    assert carrier in procs.kill_all([], "R9/main/0/1")
    assert not procs.alive(carrier)
    assert shell.wait(timeout=30) == 0  # the tokenless parent is not the step's: not killed


def test_a_step_token_is_matched_whole_and_a_run_prefix_by_prefix(
    started: list[subprocess.Popen[bytes]],
) -> None:
    """Attempt 1 of a step must not name attempt 10 of it (nor engine ``12-3`` the
    engine ``12-34``); a prefix ending in ``/`` names the whole run."""
    for token in ("R7/main/1/1", "R7/main/1/10"):
        started.append(
            subprocess.Popen(["sleep", "300"], env={**os.environ, procs.TOKEN_ENV: token})
        )
    one, ten = (p.pid for p in started)
    assert procs.find_by_token("R7/main/1/1", among=[one, ten]) == [one]
    assert procs.find_by_token("R7/main/1/10", among=[one, ten]) == [ten]
    assert sorted(procs.find_by_token("R7/", among=[one, ten])) == sorted([one, ten])
    assert procs.find_by_token("R7/main/1/", among=[one, ten]) == [one, ten]
    assert procs.find_by_token("R7/main/1", among=[one, ten]) == []


def test_the_holders_of_a_pipe_are_found_whatever_their_environment(
    started: list[subprocess.Popen[bytes]],
) -> None:
    r, w = os.pipe()
    try:
        holder = subprocess.Popen(["/usr/bin/setsid", "/usr/bin/sleep", "300"], stdout=w, env={})
        started.append(holder)
        other = subprocess.Popen(["sleep", "300"], stdout=subprocess.DEVNULL)
        started.append(other)
        inode = os.fstat(r).st_ino
        _until(lambda: holder.pid in procs.pipe_holders({inode}), "the holder to start")
        assert procs.pipe_holders({inode}) == [holder.pid]  # not us, not the other one
        assert holder.pid in procs.kill_all([], None, holding={inode})
        holder.wait(timeout=30)
        assert procs.pipe_holders({inode}) == []
    finally:
        os.close(r)
        os.close(w)
