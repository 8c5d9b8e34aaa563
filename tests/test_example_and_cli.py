"""The README's first command: the example pipeline, run twice (the CLI: test_cli*.py)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_example_pipeline_second_run_is_cached(tmp_path):
    cmd = [sys.executable, str(ROOT / "examples" / "pipeline.py"), str(tmp_path)]
    first = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    assert first.returncode == 0, first.stderr
    assert "computed everything" in first.stdout
    assert "Retrying" in first.stderr  # the flaky load retried
    second = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    assert second.returncode == 0, second.stderr
    assert "served from cache: extract, transform" in second.stdout.replace("\n", " ")
    assert "Task 'extract': Running" not in second.stderr


def test_example_default_dir_is_under_home(tmp_path):
    env = {"HOME": str(tmp_path), "PATH": "/usr/bin:/bin"}
    out = subprocess.run(
        [sys.executable, str(ROOT / "examples" / "pipeline.py")],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )
    assert out.returncode == 0, out.stderr
    assert (tmp_path / ".resultkit" / "results" / "weather").is_dir()
