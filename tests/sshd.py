"""pytest plugin: a real OpenSSH sshd on 127.0.0.1 for the whole test session.

Enable with ``pytest_plugins = ["tests.sshd"]`` (tests/conftest.py does). Use the
``sshd`` fixture: ``sshd.host()`` is an inventory ``Host`` for it (key and known_hosts
pinned), ``sshd.hosts(5)`` five aliases of it for fan-out, ``sshd.port``, ``sshd.user``,
``sshd.key_file``, ``sshd.known_hosts``, ``sshd.inventory_yaml([...])``.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from opsconsole.testing.sshd import LoopbackSshd, SshdUnavailable


@pytest.fixture(scope="session")
def sshd(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LoopbackSshd]:
    """A running sshd; fails (does not skip) when OpenSSH is missing."""
    server = LoopbackSshd(tmp_path_factory.mktemp("sshd"))
    try:
        server.start()
    except SshdUnavailable as exc:
        pytest.fail(str(exc), pytrace=False)
    try:
        yield server
    finally:
        server.stop()
