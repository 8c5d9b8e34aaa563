"""scripts/demo.sh and scripts/test.sh: where results land, and what is (re)installed.

The scripts run for real, but on a stand-in virtualenv (``RESULTKIT_VENV``)
whose ``python`` records pip/pytest calls instead of running them and
otherwise hands over to this test's own interpreter (which has resultkit
installed from this checkout). Nothing is installed, and test.sh never
starts the real test suite.
"""

from __future__ import annotations

import json
import os
import shutil
import stat
import subprocess
import sys
import uuid
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent


def _executable(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    path.chmod(path.stat().st_mode | stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH)


def _fake_venv(root: Path, log: Path) -> Path:
    """A virtualenv stand-in: pip and pytest are recorded, the rest is real Python."""
    venv = root / "venv"
    _executable(
        venv / "bin" / "python",
        f"""#!/bin/sh
if [ "$1" = "-m" ] && [ "$2" = "pip" ]; then echo "pip $*" >>"{log}"; exit 0; fi
if [ "$1" = "-m" ] && [ "$2" = "pytest" ]; then echo "pytest $*" >>"{log}"; exit 0; fi
exec "{sys.executable}" "$@"
""",
    )
    for tool in ("ruff", "mypy"):
        _executable(venv / "bin" / tool, f'#!/bin/sh\necho "{tool} $*" >>"{log}"\n')
    return venv


def _calls(log: Path, what: str) -> list[str]:
    if not log.exists():
        return []
    return [line for line in log.read_text().splitlines() if line.startswith(what + " ")]


def _run(script: Path, *args: str, cwd: Path, env: dict[str, str]) -> subprocess.CompletedProcess:
    proc = subprocess.run(
        ["bash", str(script), *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, f"stdout:\n{proc.stdout}\nstderr:\n{proc.stderr}"
    return proc


@pytest.fixture
def env(tmp_path: Path) -> dict[str, str]:
    home = tmp_path / "home"
    home.mkdir()
    keep = {k: v for k, v in os.environ.items() if k in ("PATH", "LANG", "LC_ALL", "TMPDIR")}
    return {**keep, "HOME": str(home), "COLUMNS": "200", "PYTHONDONTWRITEBYTECODE": "1"}


def test_demo_relative_folder_is_relative_to_the_caller(tmp_path, env):
    log = tmp_path / "calls.log"
    venv = _fake_venv(tmp_path, log)
    env["RESULTKIT_VENV"] = str(venv)
    caller = tmp_path / "caller"
    caller.mkdir()
    folder = f"demo-out-{uuid.uuid4().hex[:8]}"

    first = _run(REPO / "scripts" / "demo.sh", folder, cwd=caller, env=env)

    landed = caller / folder
    assert sorted(p.name for p in landed.rglob("*.json")), first.stdout
    assert not (REPO / folder).exists()  # not under the checkout
    assert not (tmp_path / "home" / ".resultkit").exists()  # nor the default
    assert "computed everything" in first.stdout
    assert len(_calls(log, "pip")) == 1  # no stamp yet: installs once
    stamp = (venv / ".resultkit-install").read_text().split()
    assert len(stamp[0]) == 64  # the sha256 of pyproject.toml

    second = _run(REPO / "scripts" / "demo.sh", folder, cwd=caller, env=env)
    assert "served from cache" in second.stdout
    assert len(_calls(log, "pip")) == 1  # current: skipped

    (venv / ".resultkit-install").write_text("0" * 64 + " \n")  # pyproject.toml "changed"
    _run(REPO / "scripts" / "demo.sh", folder, cwd=caller, env=env)
    assert len(_calls(log, "pip")) == 2


def test_demo_absolute_folder_and_fresh_venv_path(tmp_path, env):
    log = tmp_path / "calls.log"
    venv = _fake_venv(tmp_path, log)
    env["RESULTKIT_VENV"] = str(venv)
    out = tmp_path / "abs-out"
    _run(REPO / "scripts" / "demo.sh", str(out), cwd=tmp_path, env=env)
    assert list(out.rglob("*.json"))


@pytest.fixture
def npm_repo(tmp_path: Path) -> Path:
    """A copy of the parts of the checkout that test.sh reads, with node_modules installed."""
    repo = tmp_path / "repo"
    (repo / "scripts").mkdir(parents=True)
    for script in ("test.sh", "_venv.sh"):
        shutil.copy2(REPO / "scripts" / script, repo / "scripts" / script)
    for name in ("pyproject.toml", "package.json", "package-lock.json"):
        shutil.copy2(REPO / name, repo / name)
    lock = json.loads((repo / "package-lock.json").read_text())
    # what npm leaves in node_modules after `npm ci`: the lock without the root entry
    hidden = {**lock, "packages": {k: v for k, v in lock["packages"].items() if k}}
    (repo / "node_modules").mkdir()
    (repo / "node_modules" / ".package-lock.json").write_text(json.dumps(hidden, indent=2))
    return repo


def _fake_npm(tmp_path: Path, log: Path, env: dict[str, str]) -> None:
    _executable(tmp_path / "fakebin" / "npm", f'#!/bin/sh\necho "npm $*" >>"{log}"\n')
    env["PATH"] = f"{tmp_path / 'fakebin'}{os.pathsep}{env['PATH']}"


def test_test_sh_skips_npm_ci_when_node_modules_matches_the_lockfile(tmp_path, env, npm_repo):
    log = tmp_path / "calls.log"
    env["RESULTKIT_VENV"] = str(_fake_venv(tmp_path, log))
    _fake_npm(tmp_path, log, env)
    script = npm_repo / "scripts" / "test.sh"

    proc = _run(script, "-q", "-k", "x", cwd=tmp_path, env=env)
    assert "skipping npm ci" in proc.stdout
    assert _calls(log, "npm") == []
    # two xdist workers by default; extra args reach pytest
    assert _calls(log, "pytest") == ["pytest -m pytest -n 2 -q -k x"]
    assert _calls(log, "mypy") == ["mypy src"]

    # the lock file moved on (a different azurite): install
    lock = json.loads((npm_repo / "package-lock.json").read_text())
    lock["packages"]["node_modules/azurite"]["version"] = "0.0.0-other"
    (npm_repo / "package-lock.json").write_text(json.dumps(lock))
    _run(script, cwd=tmp_path, env=env)
    assert _calls(log, "npm") == ["npm ci --no-audit --no-fund --loglevel=error"]


def test_test_sh_runs_npm_ci_on_a_fresh_clone(tmp_path, env, npm_repo):
    log = tmp_path / "calls.log"
    env["RESULTKIT_VENV"] = str(_fake_venv(tmp_path, log))
    _fake_npm(tmp_path, log, env)
    shutil.rmtree(npm_repo / "node_modules")
    _run(npm_repo / "scripts" / "test.sh", cwd=tmp_path, env=env)
    assert len(_calls(log, "npm")) == 1
    assert len(_calls(log, "pip")) == 2  # pip upgrade, then resultkit[all,test,bench]
    # bench brings joblib, which the benchmark smoke test measures against
    assert (Path(env["RESULTKIT_VENV"]) / ".resultkit-install").read_text().split()[1] == (
        "all,test,bench"
    )
