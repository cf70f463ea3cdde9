from __future__ import annotations

import subprocess
import sys

from tests.helpers import cli, cli_subprocess


def test_version_prints_package_version() -> None:
    from opsconsole import __version__

    result = cli("--version")
    assert result.exit_code == 0
    assert __version__ in result.stdout


def test_help_does_not_import_heavy_libraries() -> None:
    code = (
        "import sys; sys.argv=['opsconsole','--help']\n"
        "from opsconsole.cli.main import app\n"
        "try:\n    app()\nexcept SystemExit:\n    pass\n"
        "mods=('httpx','paramiko','textual','apscheduler','sqlite_utils','pydantic')\n"
        "heavy=[m for m in mods if m in sys.modules]\n"
        "print('HEAVY', heavy)\n"
    )
    from tests.helpers import SRC

    out = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        env={"PYTHONPATH": str(SRC), "PATH": "/usr/bin:/bin"},
    )
    assert "HEAVY []" in out.stdout, out.stdout + out.stderr


def test_python_dash_m_runs_the_cli() -> None:
    proc = cli_subprocess("--help")
    assert proc.returncode == 0
    assert "audit" in proc.stdout


def test_unknown_command_suggests_the_nearest() -> None:
    for typo, meant in (("stauts", "status"), ("runbooks", "runbook"), ("incdent", "incident")):
        res = cli(typo)
        assert res.exit_code == 2, res.output
        assert f"No such command '{typo}'. Did you mean '{meant}'?" in res.output
    res = cli("runbook", "lsit")
    assert res.exit_code == 2
    assert "Did you mean 'list'?" in res.output


def test_unknown_command_without_a_near_one_suggests_nothing() -> None:
    res = cli("xyzzy")
    assert res.exit_code == 2
    assert "No such command 'xyzzy'." in res.output
    assert "Did you mean" not in res.output


def test_suggestion_through_the_real_entry_point() -> None:
    proc = cli_subprocess("stauts")
    assert proc.returncode == 2
    assert "Did you mean 'status'?" in proc.stderr
    assert "Traceback" not in proc.stderr
