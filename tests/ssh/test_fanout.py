"""run_on_hosts: parallel over host aliases, forks limit, max_fail_percentage, stop."""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from opsconsole.config import Host
from opsconsole.ssh import CommandResult, HostKeyUnknown, run_on_hosts, run_on_hosts_async
from opsconsole.testing.sshd import LoopbackSshd
from tests.ssh.procs import process_alive, wait_until


@pytest.fixture
def closed_port() -> Iterator[int]:
    """A port bound but not listening: connecting to it is refused at once."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        yield s.getsockname()[1]


def test_fanout_runs_on_every_alias_with_per_host_results(sshd: LoopbackSshd) -> None:
    hosts = sshd.hosts(8)
    seen: list[str] = []
    res = run_on_hosts(
        hosts, "echo hello", forks=4, timeout=60, on_result=lambda r: seen.append(r.alias)
    )
    assert res.ok and res.failed == 0 and not res.aborted and res.skipped == []
    assert list(res.results) == list(hosts)  # inventory order, whatever finished first
    assert all(r.stdout == "hello\n" and r.alias == a for a, r in res.results.items())
    assert sorted(seen) == sorted(hosts) and res.succeeded == 8


def test_forks_limits_how_many_hosts_run_at_once(sshd: LoopbackSshd, tmp_path: Path) -> None:
    running = tmp_path / "running"
    running.mkdir()
    # each host registers itself, counts who else is running, lingers, and leaves
    cmd = f"touch {running}/$$; ls {running} | wc -l; sleep 0.3; rm {running}/$$"
    res = run_on_hosts(sshd.hosts(9), cmd, forks=3, timeout=60)
    assert res.ok, {a: r.error for a, r in res.results.items()}
    counts = [int(r.stdout) for r in res.results.values()]
    assert max(counts) <= 3


def test_output_callback_gets_the_alias(sshd: LoopbackSshd) -> None:
    got: dict[str, str] = {}
    lock = threading.Lock()

    def on_output(alias: str, stream: str, text: str) -> None:
        with lock:
            got[alias] = got.get(alias, "") + text

    res = run_on_hosts(sshd.hosts(3), "echo hi", forks=3, timeout=60, on_output=on_output)
    assert res.ok and got == {"h01": "hi\n", "h02": "hi\n", "h03": "hi\n"}


def test_max_fail_percentage_stops_starting_new_hosts(sshd: LoopbackSshd, closed_port: int) -> None:
    good = sshd.host()
    bad = sshd.host(port=closed_port)
    hosts: dict[str, Host] = {"bad1": bad, "bad2": bad, "bad3": bad}
    hosts.update({f"good{i}": good for i in range(1, 8)})
    # one at a time: 1/10 = 10%, 2/10 = 20% (not above 20), 3/10 = 30% -> abort
    res = run_on_hosts(hosts, "true", forks=1, timeout=30, max_fail_percentage=20)
    assert res.aborted and res.failed == 3 and not res.ok
    assert list(res.results) == ["bad1", "bad2", "bad3"]
    assert res.skipped == [f"good{i}" for i in range(1, 8)]
    assert all(r.status == "error" for r in res.results.values())


def test_failures_within_the_budget_do_not_abort(sshd: LoopbackSshd, closed_port: int) -> None:
    hosts = sshd.hosts(4)
    hosts["bad"] = sshd.host(port=closed_port)
    res = run_on_hosts(hosts, "true", forks=2, timeout=30, max_fail_percentage=20)
    assert not res.aborted and res.failed == 1 and res.succeeded == 4
    assert res.skipped == [] and len(res.results) == 5


def test_nonzero_exit_and_host_key_errors_count_as_failures(
    sshd: LoopbackSshd, tmp_path: Path
) -> None:
    empty = tmp_path / "kh"
    empty.write_text("")
    hosts = {"ok": sshd.host(), "unknown-key": sshd.host(known_hosts=empty)}
    res = run_on_hosts(hosts, "true", forks=2, timeout=30)
    assert res.failed == 1 and not res.aborted
    assert isinstance(res.results["unknown-key"].exception, HostKeyUnknown)
    res = run_on_hosts(sshd.hosts(3), "exit 2", forks=3, timeout=30, max_fail_percentage=50)
    assert res.failed == 3 and {r.exit_status for r in res.results.values()} == {2}


def test_stop_event_starts_no_more_hosts(sshd: LoopbackSshd) -> None:
    stop = threading.Event()

    def on_result(r: CommandResult) -> None:
        stop.set()

    res = run_on_hosts(sshd.hosts(5), "true", forks=1, timeout=30, stop=stop, on_result=on_result)
    assert res.aborted and list(res.results) == ["h01"]
    assert res.skipped == ["h02", "h03", "h04", "h05"]


async def test_async_fanout(sshd: LoopbackSshd) -> None:
    res = await run_on_hosts_async(sshd.hosts(3), "echo x", forks=3, timeout=60)
    assert res.ok and len(res.results) == 3


def test_stop_kills_commands_still_running(sshd: LoopbackSshd, tmp_path: Path) -> None:
    import uuid

    marker = f"4{uuid.uuid4().int % 10**6}.5"
    pids = tmp_path / "pids"
    pids.mkdir()
    stop = threading.Event()
    outcome: list[object] = []
    worker = threading.Thread(
        target=lambda: outcome.append(
            run_on_hosts(
                sshd.hosts(3),
                f"sleep {marker} & echo $! > {pids}/$$; wait",
                forks=3,
                timeout=600,
                stop=stop,
            )
        )
    )
    worker.start()
    assert wait_until(lambda: len(list(pids.iterdir())) == 3)
    stop.set()
    worker.join(20)
    res = outcome[0]
    assert all("cancelled" in (r.error or "") for r in res.results.values())  # type: ignore[attr-defined]
    for f in pids.iterdir():
        pid = int(f.read_text())
        assert wait_until(lambda pid=pid: not process_alive(pid)), f"sleep {pid} still running"
