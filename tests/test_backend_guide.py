"""The README's "Writing a backend" guide, followed exactly as written.

Its two Python blocks are saved, unchanged, as the files the guide names
(``sqlite_backend.py`` and ``test_sqlite_backend.py``) in a fresh project,
and pytest runs there in a subprocess, as a newcomer would run it.
"""

from __future__ import annotations

import re
from pathlib import Path

pytest_plugins = ["pytester"]

ROOT = Path(__file__).resolve().parent.parent
README = (ROOT / "README.md").read_text()
EXAMPLE = (ROOT / "examples" / "sqlite_backend.py").read_text()


def _guide() -> str:
    start = README.index("\n## Writing a backend\n")
    end = README.find("\n## ", start + 1)
    return README[start : end if end != -1 else len(README)]


GUIDE = _guide()
BLOCKS = re.findall(r"```python\n(.*?)```", GUIDE, flags=re.S)


def _block(marker: str) -> str:
    found = [b for b in BLOCKS if marker in b]
    assert len(found) == 1, f"the guide must have one Python block with {marker!r}"
    return found[0]


BACKEND = _block("class SQLiteStorage(Storage)")
CONTRACT = _block("class TestSQLiteResult(ResultContract)")


def test_guide_names_what_to_implement_and_the_rules():
    for needed in (
        "put(key, data, metadata)",
        "get(key)",
        "head(key)",
        "delete(key)",
        'list(prefix="")',
        "put_if_absent",
        "exists_many",
        "open_writer",
        "root_url",
        "PermissionError",
        "pip install resultkit",
        "supports_put_if_absent",
        "supports_delete",
        "persists_across_processes",
    ):
        assert needed in GUIDE, f"the guide must mention {needed}"


def test_guide_example_is_the_shipped_example():
    classes = BACKEND.split("\n\n# Try it")[0].rstrip() + "\n"
    shipped = EXAMPLE.split('\n\nif __name__ == "__main__":')[0].rstrip() + "\n"
    assert classes == shipped, (
        "the README's SQLite backend must be examples/sqlite_backend.py, unchanged"
    )


def test_guide_followed_as_written_passes_the_contract(pytester):
    pytester.makeini("[pytest]\n")
    (pytester.path / "sqlite_backend.py").write_text(BACKEND)
    first_line = CONTRACT.splitlines()[0]
    assert first_line.startswith("# test_sqlite_backend.py"), first_line
    (pytester.path / "test_sqlite_backend.py").write_text(CONTRACT)
    out = pytester.runpytest_subprocess("-p", "no:cacheprovider", "test_sqlite_backend.py")
    outcomes = out.parseoutcomes()
    assert set(outcomes) == {"passed"} and outcomes["passed"] >= 90, (
        f"the guide's backend must pass the whole contract: {outcomes}\n" + out.stdout.str()[-5000:]
    )
