"""The real install: scripts/install's failure handling, and the wheel with its shipped content.

The wheel test builds the wheel of this tree, installs it (not editable) into a fresh
virtual environment and runs the ``opsconsole`` entry point from a directory outside the
repository: the runbooks, playbooks and demo must come from inside the package.
"""

from __future__ import annotations

import json
import os
import shlex
import signal
import subprocess
import sys
import sysconfig
import venv
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
INSTALL = REPO / "scripts" / "install"


def _fake_bin(tmp_path: Path, scripts: dict[str, str]) -> Path:
    """A directory of fake commands put first on PATH."""
    bin_dir = tmp_path / "fake-bin"
    bin_dir.mkdir()
    for name, body in scripts.items():
        path = bin_dir / name
        path.write_text("#!/bin/sh\n" + body + "\n")
        path.chmod(0o755)
    return bin_dir


def _run_install(tmp_path: Path, fakes: dict[str, str]) -> subprocess.CompletedProcess[str]:
    bin_dir = _fake_bin(tmp_path, fakes)
    env = {"PATH": f"{bin_dir}:/usr/bin:/bin", "HOME": str(tmp_path / "home")}
    return subprocess.run(
        [str(INSTALL)],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        stdin=subprocess.DEVNULL,
    )


# dpkg-query says tmux is not installed (and everything else is).
MISSING_TMUX = {
    "dpkg-query": 'for a; do pkg=$a; done; [ "$pkg" = tmux ] && exit 1; printf installed',
}
AS_ROOT = '[ "$1" = -u ] && echo 0 || /usr/bin/id "$@"'
AS_USER = '[ "$1" = -u ] && echo 1000 || /usr/bin/id "$@"'


def test_install_stops_when_apt_get_fails_as_root(tmp_path: Path) -> None:
    result = _run_install(
        tmp_path,
        {
            **MISSING_TMUX,
            "id": AS_ROOT,
            # apt-get update works; install fails as it does when dpkg's lock is held.
            "apt-get": 'case " $* " in *" install "*) echo "E: Could not get lock '
            '/var/lib/dpkg/lock-frontend" >&2; exit 100;; esac; exit 0',
        },
    )
    assert result.returncode == 1, result.stderr
    assert "apt-get install tmux failed (exit 100;" in result.stderr
    assert "dpkg lock held" in result.stderr
    assert "creating the virtual environment" not in result.stderr


def test_install_stops_when_apt_get_update_fails(tmp_path: Path) -> None:
    result = _run_install(
        tmp_path,
        {**MISSING_TMUX, "id": AS_ROOT, "apt-get": "exit 100"},
    )
    assert result.returncode == 1
    assert "apt-get update failed (exit 100)" in result.stderr


def test_install_names_missing_packages_with_the_exact_command_as_a_user(tmp_path: Path) -> None:
    result = _run_install(
        tmp_path,
        {
            **MISSING_TMUX,
            "id": AS_USER,
            "apt-get": "echo apt-get must not run >&2; exit 1",
        },
    )
    assert result.returncode == 3
    assert "  sudo apt-get install -y tmux\n" in result.stderr
    assert "must not run" not in result.stderr


def test_install_package_list_is_one_array_with_the_base_packages() -> None:
    text = INSTALL.read_text()
    block = text.split("DEBIAN_PACKAGES=(", 1)[1].split("\n)", 1)[0]
    names = {line.split("#")[0].strip() for line in block.splitlines()} - {""}
    assert {"python3-venv", "openssh-server", "tmux"} <= names


def test_ci_runs_the_readme_install_and_test_commands() -> None:
    readme = (REPO / "README.md").read_text()
    ci = (REPO / ".ci" / "run").read_text().splitlines()
    install = readme.split("\n## Install\n", 1)[1].split("```sh\n", 1)[1].split("\n```", 1)[0]
    test = readme.split("\n## Test\n", 1)[1].split("```sh\n", 1)[1].split("\n```", 1)[0]
    assert install.strip() in ci
    assert test.strip() in ci
    assert ci.index(install.strip()) < ci.index(test.strip())


# --- the wheel ------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def wheel_venv(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A fresh venv with the wheel of this tree installed (not editable)."""
    pytest.importorskip("hatchling", reason="hatchling (a dev extra) builds the wheel offline")
    tmp = tmp_path_factory.mktemp("wheel")
    build = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--no-build-isolation",
         "-w", str(tmp / "dist"), str(REPO)],
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert build.returncode == 0, build.stderr
    (wheel,) = (tmp / "dist").glob("opsconsole-*.whl")
    env_dir = tmp / "venv"
    venv.EnvBuilder(with_pip=False).create(env_dir)
    python = env_dir / "bin" / "python"
    install = subprocess.run(
        [sys.executable, "-m", "pip", "--python", str(python), "install", "-q", "--no-deps",
         "--no-index", str(wheel)],
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert install.returncode == 0, install.stderr
    # The dependencies come from this interpreter (the test runs offline); a path line in a
    # .pth does not process the .pth files found there, so an editable opsconsole of this
    # interpreter stays out of sight.
    code = "import sysconfig; print(sysconfig.get_paths()['purelib'])"
    site = Path(subprocess.check_output([str(python), "-c", code], text=True).strip())
    paths = dict.fromkeys([sysconfig.get_paths()["purelib"], sysconfig.get_paths()["platlib"]])
    (site / "_test_dependencies.pth").write_text("\n".join(paths) + "\n")
    return env_dir


def _env(tmp_path: Path, env_dir: Path) -> dict[str, str]:
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("OPSCONSOLE_", "PYTHON", "XDG_")) and k != "VIRTUAL_ENV"
    }
    env["PATH"] = f"{env_dir / 'bin'}:/usr/bin:/bin"
    env["HOME"] = str(tmp_path / "home")
    env["XDG_STATE_HOME"] = str(tmp_path / "state")
    env["XDG_CONFIG_HOME"] = str(tmp_path / "config-home")
    return env


def _ops(env: dict[str, str], cwd: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["opsconsole", *args], env=env, cwd=cwd, capture_output=True, text=True, timeout=120
    )


@pytest.mark.slow
def test_wheel_carries_runbooks_playbooks_config_and_schemas(wheel_venv: Path) -> None:
    python = wheel_venv / "bin" / "python"
    code = (
        "import opsconsole, json; from opsconsole.paths import shipped_dir; "
        "print(json.dumps([opsconsole.__file__] + "
        "[str(shipped_dir(n)) for n in ('runbooks', 'playbooks', 'config', 'schemas')]))"
    )
    clean = {"PATH": "/usr/bin:/bin"}
    out = json.loads(
        subprocess.check_output([str(python), "-c", code], cwd="/", text=True, env=clean)
    )
    for path in out:
        assert path.startswith(str(wheel_venv)), path
    _package, runbooks, playbooks, config, schemas = (Path(p) for p in out)
    assert {p.name for p in runbooks.glob("*.yaml")} == {
        p.name for p in (REPO / "runbooks").glob("*.yaml")
    }
    assert {p.name for p in playbooks.glob("*.yaml")} == {
        p.name for p in (REPO / "playbooks").glob("*.yaml")
    }
    assert (config / "inventory.yaml").read_text() == (REPO / "config/inventory.yaml").read_text()
    assert (schemas / "runbook.schema.json").is_file()


@pytest.mark.slow
def test_wheel_runs_runbooks_incidents_and_the_demo_outside_the_repo(
    wheel_venv: Path, tmp_path: Path
) -> None:
    env = _env(tmp_path, wheel_venv)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()

    listed = _ops(env, elsewhere, "runbook", "list", "--json")
    assert listed.returncode == 0, listed.stderr
    runbooks = {r["name"]: r for r in json.loads(listed.stdout)}
    assert {"regional-failover", "backup-restore", "breach-response"} <= set(runbooks)
    assert all(r["path"].startswith(str(wheel_venv)) and not r["error"] for r in runbooks.values())

    declared = _ops(
        env, elsewhere, "--db", str(tmp_path / "inc.db"), "incident", "declare",
        "--category", "data-breach", "--severity", "SEV1", "--title", "card data exposure",
        "--region", "eu-central-1",
    )  # fmt: skip
    assert declared.returncode == 0, declared.stderr
    assert "playbook: Data" in declared.stdout
    assert "gdpr-art33" in declared.stdout

    demo = subprocess.Popen(
        ["opsconsole", "demo", "--no-ui", "--state-dir", str(tmp_path / "demo")],
        env=env, cwd=elsewhere, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        assert demo.stderr is not None
        for line in demo.stderr:
            if "demo ready" in line:
                break
        else:
            pytest.fail(f"the demo ended before it was ready: {demo.wait()}")
        # A second terminal: no --config, no --state-dir.
        exported = _ops(env, elsewhere, "demo", "env")
        assert exported.returncode == 0, exported.stderr
        name, value = exported.stdout.splitlines()[0].removeprefix("export ").split("=", 1)
        env2 = {**env, name: shlex.split(value)[0]}
        assert Path(env2["OPSCONSOLE_CONFIG"]) == tmp_path / "demo" / "config"
        status = _ops(env2, elsewhere, "status")
        assert status.returncode == 0, status.stdout + status.stderr
        fault = _ops(env, elsewhere, "demo", "fault", "sa-east-1", "payments", "--down")
        assert fault.returncode == 0, fault.stderr
        assert "sa-east-1/payments: down" in fault.stdout
        after = _ops(env2, elsewhere, "status")
        assert after.returncode in (1, 2), after.stdout
    finally:
        demo.send_signal(signal.SIGINT)
        demo.wait(timeout=60)


# --- shipped schemas and service files -----------------------------------------------------


def test_shipped_schemas_match_the_models() -> None:
    """schemas/NAME.schema.json is what `opsconsole schema NAME` prints."""
    from opsconsole.cli.schema_cmd import SCHEMAS, _model_schema

    fix = "run scripts/update-schemas"
    for name in SCHEMAS:
        path = REPO / "schemas" / f"{name}.schema.json"
        assert path.is_file(), f"{path} is missing: {fix}"
        assert json.loads(path.read_text()) == _model_schema(name), f"{path} is stale: {fix}"


def test_every_yaml_language_server_reference_exists() -> None:
    refs = 0
    for folder in ("runbooks", "playbooks", "config"):
        for path in (REPO / folder).glob("*.yaml"):
            first = path.read_text().splitlines()[0]
            if first.startswith("# yaml-language-server: $schema="):
                target = first.split("$schema=", 1)[1].split()[0]
                assert (path.parent / target).is_file(), (path, target)
                refs += 1
    assert refs >= 3


def _units() -> list[Path]:
    return sorted((REPO / "contrib" / "systemd").glob("opsconsole-*.*"))


def test_systemd_units_run_real_commands() -> None:
    from tests.helpers import cli

    units = {p.name: p.read_text() for p in _units()}
    assert set(units) == {
        "opsconsole-scheduler.service",
        "opsconsole-scheduler-once.service",
        "opsconsole-scheduler-once.timer",
        "opsconsole-serve.service",
    }
    assert "Type=oneshot" in units["opsconsole-scheduler-once.service"]
    assert "Unit=opsconsole-scheduler-once.service" in units["opsconsole-scheduler-once.timer"]
    for name in (
        "opsconsole-scheduler.service",
        "opsconsole-scheduler-once.service",
        "opsconsole-serve.service",
    ):
        (exec_start,) = [x for x in units[name].splitlines() if x.startswith("ExecStart=")]
        argv = shlex.split(exec_start.removeprefix("ExecStart="))
        assert argv[0].endswith("/bin/opsconsole")
        options = [a for a in argv[1:] if a.startswith("-")]
        helped = cli(*[a for a in argv[1:] if not a.startswith("-")], "--help")
        assert helped.exit_code == 0, helped.output
        for option in options:
            assert option in helped.stdout, (name, option)


@pytest.mark.skipif(not Path("/usr/bin/systemd-analyze").exists(), reason="no systemd-analyze")
def test_systemd_units_pass_systemd_analyze_verify(tmp_path: Path) -> None:
    fake = tmp_path / "opsconsole"
    fake.write_text("#!/bin/sh\n")
    fake.chmod(0o755)
    for unit in _units():
        text = unit.read_text().replace("/opt/opsconsole/bin/opsconsole", str(fake))
        (tmp_path / unit.name).write_text(text)
    result = subprocess.run(
        ["systemd-analyze", "verify", *(str(tmp_path / u.name) for u in _units())],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
