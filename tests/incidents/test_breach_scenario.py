"""A scripted SEV1 data breach, start to close, and the report it produces."""

from __future__ import annotations

import json
import re
from pathlib import Path

from opsconsole.incidents import IncidentService
from tests.helpers import cli
from tests.incidents.conftest import Clock


def _row(report: str, label: str) -> str:
    match = re.search(rf"^\| {re.escape(label)} \| (.*) \|$", report, re.MULTILINE)
    assert match, f"no row {label!r} in report"
    return match.group(1)


def test_scripted_sev1_data_breach_report(make_service, clock: Clock) -> None:  # type: ignore[no-untyped-def]
    alice: IncidentService = make_service("alice")
    # Detected at 08:40 UTC (Friday), declared 20 minutes later.
    inc = alice.declare(
        "card data exposure",
        severity="SEV1",
        category="data-breach",
        regions=["eu-central-1"],
        services=["payments"],
        detected_at=clock.now.replace(hour=8, minute=40),
    )
    iid = inc.id
    for role, who in [
        ("operations", "omar"),
        ("legal", "lena"),
        ("communications", "cora"),
        ("customer-service", "cas"),
        ("scribe", "sam"),
    ]:
        alice.assign(iid, role, who)
    alice.task(iid, "assign-roles", "done")
    clock.advance(minutes=10)
    omar = make_service("omar")
    omar.task(iid, "confirm-breach", "start")
    omar.note(iid, "card numbers readable in payments access logs since 07:55 UTC")
    omar.task(iid, "confirm-breach", "done")
    omar.task(iid, "preserve-evidence", "done", note="logs copied to evidence store")
    alice.update(iid, "Investigating exposure of card data in Frankfurt; contained soon")
    clock.advance(minutes=25)
    omar.task(iid, "quarantine-service", "done")
    omar.task(iid, "rotate-credentials", "done")
    alice.set_status(iid, "mitigated", note="payments quarantined in eu-central-1")
    clock.advance(minutes=30)
    lena = make_service("lena")
    lena.decide(iid, "notifiable", note="card data of 1200 customers")
    lena.task(iid, "assess-notifiable", "done")
    alice.update(iid, "Contained; notifying regulators")
    clock.advance(hours=5)  # 15:05, 6h25m after detection
    lena.task(iid, "notify-cert-in", "done", note="CERT-In ticket 4711")  # due 14:40
    lena.task(iid, "notify-card-brands", "done")
    lena.task(iid, "notify-eu-dpa", "done", note="DPA reference 2026-889")
    lena.task(iid, "notify-pdpc", "done")
    lena.task(iid, "notify-anpd", "waive", note="no Brazilian data subjects affected")
    make_service("cora").task(iid, "notify-customers", "done")
    make_service("cas").task(iid, "brief-customer-service", "skip", note="covered by the notice")
    omar.task(iid, "close-access-path", "done")
    omar.task(iid, "restore-service", "done")
    alice.set_status(iid, "resolved")
    alice.note(iid, "action: mask card numbers in access logs at the gateway")
    alice.note(iid, "action: alert on PAN patterns in logs")
    alice.assign(iid, "commander", "bob")  # handover for the review
    bob = make_service("bob")
    bob.task(iid, "post-incident-review", "done")
    bob.set_status(iid, "closed")

    report = bob.report(iid)

    assert report.startswith(f"# Post-incident report: {iid} - card data exposure")
    assert "blameless" in report.lower()
    # Metrics: detected 08:40, declared 09:00, mitigated 09:35, resolved 15:45.
    assert _row(report, "Time to declare (detected to declared)") == "20m"
    assert _row(report, "Time to mitigate (detected to mitigated)") == "55m"
    assert _row(report, "Time to resolve (detected to resolved)") == "6h 25m"
    assert _row(report, "Deadlines met / missed") == "3 / 1 of 5"
    assert "- Regions: eu-central-1 (local time Europe/Berlin)" in report
    assert "- Services: payments" in report
    # Deadline outcomes, each with its source.
    gdpr = next(line for line in report.splitlines() if line.startswith("| Notify the supervisory"))
    assert "GDPR" in gdpr and "**met**" in gdpr and "72 hours after detected" in gdpr
    assert "2026-11-30 08:40 UTC" in gdpr
    cert_in = next(line for line in report.splitlines() if "CERT-In |" in line or "| IN |" in line)
    assert "**missed**" in cert_in and "2026-11-27 14:40 UTC" in cert_in
    pci = next(line for line in report.splitlines() if "| PCI |" in line)
    assert "**met**" in pci
    pdpa = next(line for line in report.splitlines() if "| SG |" in line)
    assert "**met**" in pdpa and "decision notifiable" in pdpa
    anpd = next(line for line in report.splitlines() if "| BR |" in line)
    assert "**waived**" in anpd
    assert "not legal advice" in report
    # Tasks: counts and the waiver's reason.
    assert "14 done, 1 skipped, 1 waived, 0 in progress, 0 pending" in report
    assert "no Brazilian data subjects affected" in report
    # Timeline: UTC and Frankfurt local time, actors, in order.
    timeline = report.split("## Timeline")[1].split("## Action items")[0]
    rows = [r for r in timeline.splitlines() if r.startswith("| 2026")]
    assert rows[0].startswith("| 2026-11-27 08:40 UTC | 2026-11-27 09:40 CET (Europe/Berlin) |")
    assert "detected in eu-central-1" in rows[0]
    assert "| alice | declared SEV1 data-breach: card data exposure" in rows[1]
    assert any("| lena | decided: notifiable" in r for r in rows)
    assert any("status update: Contained; notifying regulators" in r for r in rows)
    assert any("commander handed over from alice to bob" in r for r in rows)
    assert any("deadline met: Notify the supervisory authority" in r for r in rows)
    assert any("| clock | deadline missed: Report the cyber incident to CERT-In" in r for r in rows)
    assert any("CERT-In: done 25m after the deadline" in r for r in rows)
    assert rows[-1].endswith("| bob | status resolved -> closed |")
    times = [r.split(" | ")[0] for r in rows]
    assert times == sorted(times)
    # Action items from notes.
    actions = report.split("## Action items")[1]
    assert "- [ ] mask card numbers in access logs at the gateway" in actions
    assert "- [ ] alert on PAN patterns in logs" in actions


def test_done_when_cli_flow(tmp_path: Path, example_config: Path) -> None:
    """The issue's "done when": declare from the CLI, step through, write the report."""
    base = ("--config", str(example_config))
    declared = cli(
        *base,
        "incident",
        "declare",
        "--severity",
        "SEV1",
        "--category",
        "data-breach",
        "--title",
        "card data exposure",
        "--region",
        "eu-central-1",
        "--detected-at",
        "30m ago",
        env={"COLUMNS": "200"},
    )
    assert declared.exit_code == 0, declared.output
    iid = re.search(r"declared (INC-\d{4}-\d{4})", declared.stdout).group(1)  # type: ignore[union-attr]
    for clock_id in ("gdpr-art33", "cert-in-6h", "pdpa-26d", "anpd-res15", "pci-dss-12-10"):
        assert clock_id in declared.stdout
    assert "due in 2d 23h" in declared.stdout  # GDPR: 72h minus 30 minutes
    assert "starts when decided: notifiable" in declared.stdout

    steps = [
        ("assign", iid, "legal", "lena"),
        ("task", iid, "assign-roles", "done"),
        ("task", iid, "preserve-evidence", "start", "--no-run"),
        ("task", iid, "preserve-evidence", "done", "--note", "logs copied"),
        ("note", iid, "action: mask card numbers in logs"),
        ("update", iid, "contained in Frankfurt"),
        ("decide", iid, "notifiable"),
        ("task", iid, "notify-eu-dpa", "done"),
        ("status", iid, "mitigated"),
    ]
    for step in steps:
        result = cli(*base, "--as", "alice", "incident", *step)
        assert result.exit_code == 0, (step, result.output)
    bad = cli(*base, "incident", "status", iid, "closed")
    assert bad.exit_code == 7 and "cannot go from mitigated to closed" in bad.output

    shown = cli(*base, "incident", "show", iid, "--json", "--timeline")
    data = json.loads(shown.stdout)
    states = {d["id"]: d["state"] for d in data["deadlines"]}
    assert states["gdpr-art33"] == "met" and states["pdpa-26d"] == "running"
    assert data["status"] == "mitigated" and data["roles"]["legal"] == "lena"
    assert [e["kind"] for e in data["timeline"]][:2] == ["detected", "declare"]
    assert data["timeline"][0]["local"].endswith("+01:00")  # Frankfurt in winter

    out = tmp_path / "report.md"
    written = cli(*base, "incident", "report", iid, "--out", str(out))
    assert written.exit_code == 0, written.output
    report = out.read_text()
    assert "| Time to declare (detected to declared) | 30m |" in report
    assert "- [ ] mask card numbers in logs" in report
    assert "status update: contained in Frankfurt" in report

    listed = cli(*base, "incident", "list", "--open", "--json")
    assert [i["id"] for i in json.loads(listed.stdout)] == [iid]


def test_cli_decide_refuses_a_decision_the_playbook_does_not_know(
    config_dir: Path,
) -> None:
    base = ("--config", str(config_dir), "incident")
    declared = cli(
        *base, "declare", "--severity", "SEV1", "--category", "data-breach", "--title", "t"
    )
    iid = re.search(r"declared (INC-\d{4}-\d{4})", declared.stdout).group(1)  # type: ignore[union-attr]
    typo = cli(*base, "decide", iid, "notifable", env={"COLUMNS": "200"})
    assert typo.exit_code != 0
    assert "unknown decision 'notifable'" in typo.output and "notifiable" in typo.output
    assert "Traceback" not in typo.output
    right = cli(*base, "decide", iid, "notifiable", env={"COLUMNS": "200"})
    assert right.exit_code == 0 and "clock started" in right.stdout


def test_cli_report_to_an_unwritable_path_is_one_error_line(
    config_dir: Path, tmp_path: Path
) -> None:
    base = ("--config", str(config_dir), "incident")
    declared = cli(
        *base, "declare", "--severity", "SEV2", "--category", "data-breach", "--title", "t"
    )
    iid = re.search(r"declared (INC-\d{4}-\d{4})", declared.stdout).group(1)  # type: ignore[union-attr]
    result = cli(*base, "report", iid, "--out", str(tmp_path))  # a directory
    assert result.exit_code == 1
    assert result.stderr.strip() == f"error: cannot write {tmp_path}: Is a directory"
