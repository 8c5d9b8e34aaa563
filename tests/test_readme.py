"""Every README block runs, and every value its comments promise is checked.

A Python line ``expr  # <literal>`` (e.g. ``r.read(...).value   # {'rows': 3}``)
becomes ``assert expr == <literal>``: the comment is a promise, so it is
tested. A comment that is not a literal (``# True; also in a new process``
checks its part before ``;``) is prose. ``/home/me`` in a promised string
stands for the reader's home folder. Python blocks run with ``HOME`` in a
temporary folder and an S3 server (moto) named by ``AWS_ENDPOINT_URL``, as a
user's environment would; shell blocks run with bash from the checkout.
"""

from __future__ import annotations

import ast
import contextlib
import io
import os
import re
import subprocess
import tokenize
from pathlib import Path
from typing import Any

import pytest

import emulators

ROOT = Path(__file__).resolve().parent.parent
README = ROOT / "README.md"
TEXT = README.read_text()
PYTHON_BLOCKS = re.findall(r"```python\n(.*?)```", TEXT, flags=re.S)
BASH_BLOCKS = re.findall(r"```bash\n(.*?)```", TEXT, flags=re.S)
# The "two commands" block runs the whole suite (scripts/test.sh): running it
# from inside the suite would recurse. Its commands are tested by
# test_example_and_cli.py and test_scripts.py.
SHELL_BLOCKS = [b for b in BASH_BLOCKS if "scripts/test.sh" not in b]


def _literal_prefix(comment: str) -> tuple[bool, Any]:
    text = comment.lstrip("#").strip().split(";")[0].strip()
    try:
        return True, ast.literal_eval(text)
    except (ValueError, SyntaxError, TypeError, MemoryError, RecursionError):
        return False, None


def promises(source: str) -> list[tuple[int, Any]]:
    """(line number, promised value) for each ``expr  # literal`` line."""
    comments = {
        tok.start[0]: tok.string
        for tok in tokenize.generate_tokens(io.StringIO(source).readline)
        if tok.type == tokenize.COMMENT
    }
    found = []
    for node in ast.parse(source).body:
        if not isinstance(node, ast.Expr) or node.lineno != node.end_lineno:
            continue
        comment = comments.get(node.lineno)
        if comment is None:
            continue
        ok, value = _literal_prefix(comment)
        if ok:
            found.append((node.lineno, value))
    return found


def checked_source(source: str, home: str) -> str:
    """The block with each promised value turned into an assertion."""
    lines = source.splitlines()
    for lineno, value in promises(source):
        if isinstance(value, str):
            value = value.replace("/home/me", home)
        expr = lines[lineno - 1].split("#")[0].rstrip()
        lines[lineno - 1] = f"__check__({expr}, {value!r}, {lines[lineno - 1]!r})"
    return "\n".join(lines) + "\n"


def _check(actual: Any, expected: Any, line: str) -> None:
    assert actual == expected, f"README promises {expected!r} for\n    {line}\nbut got {actual!r}"


def test_readme_blocks_are_found_and_make_promises():
    assert len(PYTHON_BLOCKS) >= 6
    assert sum(len(promises(b)) for b in PYTHON_BLOCKS) >= 15
    assert SHELL_BLOCKS, "the moto shell block is missing"


def test_the_checker_catches_a_broken_promise(tmp_path):
    source = "x = 1 + 1\nx   # 3\n"
    with pytest.raises(AssertionError, match="README promises 3"):
        exec(checked_source(source, str(tmp_path)), {"__check__": _check})


@pytest.fixture
def readme_env(tmp_path, monkeypatch, moto_server):
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.setenv("AWS_ENDPOINT_URL", moto_server.url)
    monkeypatch.chdir(tmp_path)
    from resultkit.results import S3Result

    with contextlib.suppress(FileExistsError):
        S3Result("my-bucket").fs.mkdir("my-bucket")
    return tmp_path


@pytest.mark.parametrize("block", PYTHON_BLOCKS, ids=lambda b: b.strip().splitlines()[0][:40])
def test_readme_python_block(block, readme_env):
    source = checked_source(block, str(readme_env))
    exec(
        compile(source, str(README), "exec"),
        {"__name__": "readme_example", "__check__": _check},
    )


@pytest.mark.parametrize("block", SHELL_BLOCKS, ids=lambda b: b.strip().splitlines()[0][:40])
def test_readme_shell_block(block, tmp_path):
    port = str(emulators.free_port())
    script = block.replace("5000", port)
    env = {
        k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "RESULTKIT_", "PYTEST"))
    }
    env["HOME"] = str(tmp_path)
    out = subprocess.run(
        ["bash", "-euo", "pipefail", "-c", script],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert out.returncode == 0, out.stdout + out.stderr
    for expected in re.findall(r"print\(.*\)\s+# (\S+)", block):
        assert expected in out.stdout, (expected, out.stdout, out.stderr)
