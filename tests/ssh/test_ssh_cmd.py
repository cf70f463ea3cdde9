"""``opsconsole ssh trust`` and ``ssh run`` against the real sshd, with an inventory."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from opsconsole.testing.sshd import LoopbackSshd
from tests.helpers import cli


@pytest.fixture
def config_dir(sshd: LoopbackSshd, tmp_path: Path) -> Path:
    """An inventory with h01..h03 on the sshd and an empty known_hosts (nothing trusted)."""
    d = tmp_path / "config"
    d.mkdir()
    (d / "known_hosts").write_text("")
    (d / "inventory.yaml").write_text(
        sshd.inventory_yaml(["h01", "h02", "h03"], known_hosts=Path("known_hosts"))
    )
    return d


def audit_actions() -> list[dict[str, object]]:
    res = cli("audit", "list", "--json")
    assert res.exit_code == 0, res.output
    return json.loads(res.stdout)


def test_trust_shows_fingerprint_pins_key_and_audits(sshd: LoopbackSshd, config_dir: Path) -> None:
    before = cli("--config", str(config_dir), "ssh", "run", "h01", "--", "true")
    assert before.exit_code == 1 and "unknown host key" in before.output
    res = cli("--config", str(config_dir), "ssh", "trust", "h01", "--yes")
    assert res.exit_code == 0, res.output
    keytype, key = sshd.host_public_key.split()[:2]
    assert "SHA256:" in res.stdout and "pinned" in res.stdout
    assert (config_dir / "known_hosts").read_text() == f"[127.0.0.1]:{sshd.port} {keytype} {key}\n"
    events = [e for e in audit_actions() if e["action"] == "ssh.trust"]
    assert len(events) == 1 and events[0]["target"] == "h01"
    assert "SHA256:" in json.dumps(events[0]["details"])
    # every alias of the same address:port is now trusted
    after = cli("--config", str(config_dir), "ssh", "run", "sshd", "--", "echo", "hi")
    assert after.exit_code == 0, after.output
    assert after.stdout.count("| hi") == 3
    again = cli("--config", str(config_dir), "ssh", "trust", "h02", "--yes")
    assert again.exit_code == 0 and "already trusted" in again.stdout


def test_trust_declined_writes_nothing(config_dir: Path) -> None:
    res = cli("--config", str(config_dir), "ssh", "trust", "h01", input="n\n")
    assert res.exit_code == 1
    assert "Pin it in" in res.output and "not trusted" in res.output
    assert (config_dir / "known_hosts").read_text() == ""
    assert not [e for e in audit_actions() if e["action"] == "ssh.trust"]


def test_trust_refuses_a_changed_key_without_replace(sshd: LoopbackSshd, config_dir: Path) -> None:
    impostor = "AAAAC3NzaC1lZDI1NTE5AAAAIA0bVyoZdrNTgoN0aOG8xd+Zi2x3V4J7NDZj7xdd8Yt8"
    (config_dir / "known_hosts").write_text(f"[127.0.0.1]:{sshd.port} ssh-ed25519 {impostor}\n")
    res = cli("--config", str(config_dir), "ssh", "trust", "h01", "--yes")
    assert res.exit_code == 1 and "HOST KEY CHANGED" in res.output
    res = cli("--config", str(config_dir), "ssh", "trust", "h01", "--yes", "--replace")
    assert res.exit_code == 0, res.output
    assert impostor not in (config_dir / "known_hosts").read_text()


def test_trust_unknown_alias_names_the_known_ones(config_dir: Path) -> None:
    res = cli("--config", str(config_dir), "ssh", "trust", "nope", "--yes")
    assert res.exit_code == 4 and "h01" in res.output


def test_run_json_reports_per_host_results_and_is_audited(
    sshd: LoopbackSshd, config_dir: Path
) -> None:
    (config_dir / "known_hosts").write_text(sshd.known_hosts_line + "\n")
    res = cli(
        "--config",
        str(config_dir),
        "ssh",
        "run",
        "sshd",
        "--forks",
        "2",
        "--json",
        "--",
        "echo $((6*7)); exit 3",
    )
    assert res.exit_code == 1
    data = json.loads(res.stdout)
    assert set(data["results"]) == {"h01", "h02", "h03"} and data["failed"] == 3
    assert all(r["stdout"] == "42\n" and r["exit_status"] == 3 for r in data["results"].values())
    actions = [e["action"] for e in audit_actions()]
    assert "ssh.run" in actions and "ssh.run.finished" in actions
