"""The README's runnable Python examples run as written."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

README = Path(__file__).resolve().parent.parent / "README.md"
BLOCKS = re.findall(r"```python\n(.*?)```", README.read_text(), flags=re.S)
# Blocks that need cloud credentials, placeholders or a user's own class are shown, not run.
RUNNABLE = [
    b for b in BLOCKS if "..." not in b and "MyResult" not in b and "Result(bucket" not in b
]


def test_readme_has_runnable_examples():
    assert len(RUNNABLE) >= 3


@pytest.mark.parametrize("block", RUNNABLE, ids=lambda b: b.strip().splitlines()[0][:40])
def test_readme_example_runs(block, tmp_path, monkeypatch):
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.chdir(tmp_path)
    exec(compile(block, str(README), "exec"), {"__name__": "readme_example"})
