"""Real OS accounts for tests (CI runs as root): create with useradd/groupadd, run the CLI
as them with ``runuser``, remove what was created.

Other accounts cannot execute a Python that lives under a mode-700 home (pyenv under
/root) nor read sources under a mode-700 directory (pytest's tmp_path, perhaps the
clone). :func:`shared_python` therefore finds an interpreter they can run: this one if
it works for them with a world-readable copy of ``src``, else a venv made from
``/usr/bin/python3`` with this project's dependencies, cached under /tmp by a hash of
the pinned versions. It fails - never skips - with the reason when neither works.
"""

from __future__ import annotations

import fcntl
import hashlib
import importlib.metadata
import os
import pwd
import re
import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parent.parent / "src"
PYPROJECT = SRC.parent / "pyproject.toml"


def _dependencies() -> list[str]:
    import tomllib

    data = tomllib.loads(PYPROJECT.read_text(encoding="utf-8"))
    return [re.split(r"[<>=!~ \[;]", d, maxsplit=1)[0] for d in data["project"]["dependencies"]]


def _run(*argv: str) -> None:
    done = subprocess.run(argv, capture_output=True, text=True)
    if done.returncode != 0:
        pytest.fail(f"{' '.join(argv)} failed: {done.stderr.strip()}")


def exists(name: str) -> bool:
    try:
        pwd.getpwnam(name)
        return True
    except KeyError:
        return False


def runuser() -> str:
    """The absolute path of runuser (it lives in /usr/sbin, often not on a test's PATH)."""
    found = shutil.which("runuser") or shutil.which("runuser", path="/usr/sbin:/sbin")
    if not found:
        pytest.fail("runuser not found (util-linux)")
    return found


def require_root() -> None:
    """Skip without root (a developer's run as a normal user); in CI (``CI`` set) fail."""
    if os.geteuid() != 0 or not shutil.which("useradd") or not shutil.which("runuser"):
        why = "these tests need root with useradd/groupadd/runuser (as in CI)"
        if os.environ.get("CI"):
            pytest.fail(why)
        pytest.skip(why)


def add_group(name: str) -> None:
    _run("groupadd", name)


def add_user(name: str, groups: list[str] = ()) -> None:  # type: ignore[assignment]
    argv = ["useradd", "--no-create-home", "--shell", "/usr/sbin/nologin", "--user-group"]
    if groups:
        argv += ["--groups", ",".join(groups)]
    _run(*argv, name)


def remove_user(name: str) -> None:
    subprocess.run(["userdel", name], capture_output=True)


def remove_group(name: str) -> None:
    subprocess.run(["groupdel", name], capture_output=True)


def _usable_by(user: str, python: str, pythonpath: str) -> str | None:
    """None if ``user`` can run the CLI with ``python``; else the error."""
    env = {"PATH": "/usr/bin:/bin", "PYTHONPATH": pythonpath, "HOME": "/tmp"}
    code = "import opsconsole.cli.main, typer, pydantic, sqlite_utils, yaml, jinja2"
    done = subprocess.run(
        [runuser(), "-u", user, "--", python, "-c", code],
        capture_output=True,
        text=True,
        env=env,
        cwd="/",
    )
    return None if done.returncode == 0 else (done.stderr.strip().splitlines() or ["?"])[-1]


def _world_readable_src(base: Path) -> Path:
    """A copy of this tree's ``src`` that any account can read (tests test these sources)."""
    target = base / "src"
    shutil.copytree(SRC, target, ignore=shutil.ignore_patterns("__pycache__"))
    for root, dirs, files in os.walk(base):
        for d in dirs:
            os.chmod(os.path.join(root, d), 0o755)
        for f in files:
            os.chmod(os.path.join(root, f), 0o644)
    return target


def _pins() -> list[str]:
    out = []
    for name in _dependencies():
        try:
            out.append(f"{name}=={importlib.metadata.version(name)}")
        except importlib.metadata.PackageNotFoundError:
            out.append(name)
    return out


def _venv(pins: list[str]) -> Path:
    """A venv from /usr/bin/python3 with ``pins``, built once per set of versions."""
    system = Path("/usr/bin/python3")
    if not system.exists():
        pytest.fail("no /usr/bin/python3 to build an interpreter other accounts can run")
    tag = hashlib.sha256(" ".join(pins).encode()).hexdigest()[:12]
    home = Path(tempfile.gettempdir()) / f"opsconsole-test-venv-{tag}"
    python = home / "bin" / "python"
    with open(Path(tempfile.gettempdir()) / f"opsconsole-test-venv-{tag}.lock", "a+") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if (home / ".complete").exists():
            return python
        shutil.rmtree(home, ignore_errors=True)
        made = subprocess.run(
            [str(system), "-m", "venv", str(home)], capture_output=True, text=True
        )
        if made.returncode != 0:
            pytest.fail(f"cannot make a venv from /usr/bin/python3: {made.stderr.strip()}")
        pip = subprocess.run(
            [str(python), "-m", "pip", "install", "-q", "--retries", "1", "--timeout", "20", *pins],
            capture_output=True,
            text=True,
        )
        if pip.returncode != 0:
            # Offline: copy the installed distributions of this (same minor version) Python.
            problem = _copy_distributions(python)
            if problem:
                pytest.fail(
                    f"cannot install {' '.join(pins)} into {home}: {pip.stderr.strip()[-300:]}; "
                    f"nor copy them: {problem}"
                )
        for root, dirs, files in os.walk(home):
            for d in dirs:
                os.chmod(os.path.join(root, d), 0o755)
            for f in files:
                path = os.path.join(root, f)
                if not os.path.islink(path):
                    os.chmod(path, os.stat(path).st_mode | 0o444)
        os.chmod(home, 0o755)
        (home / ".complete").touch()
    return python


def _copy_distributions(python: Path) -> str | None:
    """Copy the project's dependencies (and theirs) from this interpreter's environment
    into the venv of ``python``; None if done, else why not."""
    target_version = subprocess.run(
        [str(python), "-c", "import sys; print(sys.version_info[:2])"],
        capture_output=True,
        text=True,
    ).stdout.strip()
    if target_version != str(sys.version_info[:2]):
        return f"this Python is {sys.version_info[:2]}, the venv's is {target_version}"
    site = subprocess.run(
        [str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
        capture_output=True,
        text=True,
    ).stdout.strip()
    todo, seen = list(_dependencies()), set()
    while todo:
        name = re.sub(r"[-_.]+", "-", todo.pop()).lower()
        if name in seen:
            continue
        seen.add(name)
        try:
            dist = importlib.metadata.distribution(name)
        except importlib.metadata.PackageNotFoundError:
            continue
        for req in dist.requires or []:
            if "extra ==" not in req:
                todo.append(re.split(r"[<>=!~ \[;(]", req, maxsplit=1)[0])
        for file in dist.files or []:
            src = Path(dist.locate_file(file))
            if src.is_file() and ".." not in file.parts:
                dest = Path(site) / file
                dest.parent.mkdir(parents=True, exist_ok=True)
                shutil.copy2(src, dest)
    return None


@dataclass
class SharedPython:
    python: str
    pythonpath: str
    base: Path


def shared_python(base: Path, probe_user: str) -> SharedPython:
    """An interpreter + PYTHONPATH that ``probe_user`` (and accounts like it) can use."""
    src = _world_readable_src(base)
    problems = []
    for python in (sys.executable, None):
        candidate = python or str(_venv(_pins()))
        error = _usable_by(probe_user, candidate, str(src))
        if error is None:
            return SharedPython(candidate, str(src), base)
        problems.append(f"{candidate}: {error}")
    pytest.fail("no Python other accounts can run opsconsole with: " + "; ".join(problems))


def unique(prefix: str) -> str:
    """An account name unlikely to exist: prefix + pid + counter (max 32 chars)."""
    unique.n += 1  # type: ignore[attr-defined]
    name = f"{prefix}{os.getpid() % 100000}{unique.n}"  # type: ignore[attr-defined]
    assert re.fullmatch(r"[a-z_][a-z0-9_-]{0,31}", name), name
    return name


unique.n = 0  # type: ignore[attr-defined]
