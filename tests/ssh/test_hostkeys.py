"""Host key verification: unknown and changed keys refuse; trusting pins the key."""

from __future__ import annotations

import base64
import hashlib
from pathlib import Path

import pytest

from opsconsole.ssh import (
    HostKeyChanged,
    HostKeyUnknown,
    fetch_host_key,
    run_command,
    trust_host,
)
from opsconsole.testing.sshd import LoopbackSshd, write_ed25519_key

OTHER_KEY = "AAAAC3NzaC1lZDI1NTE5AAAAIA0bVyoZdrNTgoN0aOG8xd+Zi2x3V4J7NDZj7xdd8Yt8"


def sshd_fingerprint(sshd: LoopbackSshd) -> str:
    blob = base64.b64decode(sshd.host_public_key.split()[1])
    return "SHA256:" + base64.b64encode(hashlib.sha256(blob).digest()).decode().rstrip("=")


def other_key_line(sshd: LoopbackSshd, tmp_path: Path) -> tuple[str, str]:
    """A known_hosts line pinning a different ed25519 key for the sshd's address."""
    public = write_ed25519_key(tmp_path / "impostor").split()
    blob = base64.b64decode(public[1])
    fp = "SHA256:" + base64.b64encode(hashlib.sha256(blob).digest()).decode().rstrip("=")
    return f"[127.0.0.1]:{sshd.port} {public[0]} {public[1]}\n", fp


def test_fetch_host_key_returns_the_sshd_key(sshd: LoopbackSshd) -> None:
    keytype, key, fingerprint = fetch_host_key(sshd.host())
    assert (keytype, key) == tuple(sshd.host_public_key.split()[:2])
    assert fingerprint == sshd_fingerprint(sshd)


def test_unknown_host_key_is_refused_with_fingerprint_and_advice(
    sshd: LoopbackSshd, tmp_path: Path
) -> None:
    empty = tmp_path / "known_hosts"
    empty.write_text("")
    marker = tmp_path / "ran"
    res = run_command(sshd.host(known_hosts=empty), f"touch {marker}", timeout=30, alias="h01")
    assert isinstance(res.exception, HostKeyUnknown)
    msg = res.error or ""
    assert "unknown host key" in msg and "h01" in msg and f"127.0.0.1:{sshd.port}" in msg
    assert sshd_fingerprint(sshd) in msg and str(empty) in msg
    assert "opsconsole ssh trust h01" in msg
    assert not marker.exists()


def test_missing_known_hosts_file_means_unknown(sshd: LoopbackSshd, tmp_path: Path) -> None:
    res = run_command(sshd.host(known_hosts=tmp_path / "nope"), "true", timeout=30)
    assert isinstance(res.exception, HostKeyUnknown)


def test_changed_host_key_is_refused_as_possible_mitm(sshd: LoopbackSshd, tmp_path: Path) -> None:
    line, pinned_fp = other_key_line(sshd, tmp_path)
    kh = tmp_path / "known_hosts"
    kh.write_text(line)
    marker = tmp_path / "ran"
    res = run_command(sshd.host(known_hosts=kh), f"touch {marker}", timeout=30, alias="h01")
    assert isinstance(res.exception, HostKeyChanged)
    msg = res.error or ""
    assert "HOST KEY CHANGED" in msg and "man-in-the-middle" in msg
    assert sshd_fingerprint(sshd) in msg and pinned_fp in msg
    assert "unknown host key" not in msg
    assert not marker.exists()


def test_known_hosts_order_host_then_default_then_user_file(
    sshd: LoopbackSshd, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    host = sshd.host(known_hosts=None)
    # neither host nor default: ~/.ssh/known_hosts (absent here) -> unknown, naming that file
    res = run_command(host, "true", timeout=30)
    assert isinstance(res.exception, HostKeyUnknown)
    assert str(tmp_path / "home" / ".ssh" / "known_hosts") in (res.error or "")
    # the inventory default is used when the host has none
    assert run_command(host, "true", timeout=30, known_hosts=sshd.known_hosts).ok
    # the host's own file wins over the default
    empty = tmp_path / "empty"
    empty.write_text("")
    res = run_command(
        sshd.host(known_hosts=empty), "true", timeout=30, known_hosts=sshd.known_hosts
    )
    assert isinstance(res.exception, HostKeyUnknown)


@pytest.mark.parametrize("hashed", [False, True])
def test_trust_pins_the_key_and_then_commands_run(
    sshd: LoopbackSshd, tmp_path: Path, hashed: bool
) -> None:
    kh = tmp_path / "ssh" / "known_hosts"
    host = sshd.host(known_hosts=kh)
    assert isinstance(run_command(host, "true", timeout=30).exception, HostKeyUnknown)
    info = trust_host("h01", host, kh, hashed=hashed)
    assert info.fingerprint == sshd_fingerprint(sshd)
    text = kh.read_text()
    if hashed:
        assert text.startswith("|1|") and "127.0.0.1" not in text
    else:
        assert text == f"[127.0.0.1]:{sshd.port} {info.keytype} {info.key}\n"
    assert run_command(host, "echo ok", timeout=30).stdout == "ok\n"
    trust_host("h01", host, kh, hashed=hashed)  # already pinned: no second line
    assert kh.read_text() == text


def test_trust_refuses_to_overwrite_a_changed_key_unless_replace(
    sshd: LoopbackSshd, tmp_path: Path
) -> None:
    line, _ = other_key_line(sshd, tmp_path)
    kh = tmp_path / "known_hosts"
    kh.write_text(
        "# keep this comment\nexample.org ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIA"
        "0bVyoZdrNTgoN0aOG8xd+Zi2x3V4J7NDZj7xdd8Yt8\n" + line
    )
    host = sshd.host(known_hosts=kh)
    with pytest.raises(HostKeyChanged):
        trust_host("h01", host, kh)
    trust_host("h01", host, kh, replace=True)
    lines = kh.read_text().splitlines()
    assert lines[0] == "# keep this comment" and lines[1].startswith("example.org ")
    assert len(lines) == 3 and line.strip() not in lines
    assert run_command(host, "true", timeout=30).ok


def test_trust_keeps_the_file_mode_of_a_shared_known_hosts(
    sshd: LoopbackSshd, tmp_path: Path
) -> None:
    kh = tmp_path / "ssh_known_hosts"
    kh.write_text(f"example.org ssh-ed25519 {OTHER_KEY}")  # no newline at the end
    kh.chmod(0o644)
    trust_host("h01", sshd.host(known_hosts=kh), kh)
    assert kh.stat().st_mode & 0o777 == 0o644
    lines = kh.read_text().splitlines()
    assert len(lines) == 2 and lines[1].startswith(f"[127.0.0.1]:{sshd.port} ssh-ed25519 ")
    line, _ = other_key_line(sshd, tmp_path)
    kh.write_text(line)
    trust_host("h01", sshd.host(known_hosts=kh), kh, replace=True)
    assert kh.stat().st_mode & 0o777 == 0o644 and line not in kh.read_text()
