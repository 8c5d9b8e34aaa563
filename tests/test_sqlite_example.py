"""The non-fsspec example backend (examples/sqlite_backend.py) passes the contract unchanged,
and two processes share one database file."""

from __future__ import annotations

import multiprocessing
import sys
from pathlib import Path

import pytest

from resultkit.results import StorageResult
from resultkit.testing import ResultContract

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"
sys.path.insert(0, str(EXAMPLES))  # as a user's own module; child processes import it too

from sqlite_backend import SQLiteResult, SQLiteStorage  # noqa: E402


class TestSQLiteResult(ResultContract):
    """The full suite, every flag at its default."""

    @pytest.fixture
    def result(self, tmp_path):
        return SQLiteResult(tmp_path / "results.db")


def test_sqlite_result_is_a_storage_result(tmp_path):
    r = SQLiteResult(tmp_path / "r.db", location="{name}.pkl")
    assert isinstance(r, StorageResult) and isinstance(r.storage, SQLiteStorage)
    written = r.write({"rows": 3}, name="clean")
    assert written.location == f"sqlite://{tmp_path}/r.db/clean.pkl"
    assert r.read(name="clean").value == {"rows": 3}
    assert r.copy().storage is r.storage  # copies share the connections


def _worker(path: str, who: int, start, results) -> None:
    r = SQLiteResult(path)
    start.wait()
    won = r.put_if_absent(f"process-{who}".encode(), location="lock")
    for i in range(30):
        r.write((who, i), location=f"p{who}/{i}.pkl")
        r.write((who, i), location="shared.pkl")
    results.put((who, won))


def test_two_processes_share_one_database(tmp_path):
    path = str(tmp_path / "shared.db")
    SQLiteResult(path).write("made by the parent", location="parent.pkl")
    ctx = multiprocessing.get_context("spawn")
    start, results = ctx.Barrier(2, timeout=120), ctx.Queue()
    procs = [ctx.Process(target=_worker, args=(path, who, start, results)) for who in (0, 1)]
    for p in procs:
        p.start()
    outcomes = sorted(results.get(timeout=120) for _ in procs)
    for p in procs:
        p.join(120)
        assert p.exitcode == 0, f"a worker process failed with exit code {p.exitcode}"

    r = SQLiteResult(path)
    winners = [who for who, won in outcomes if won]
    assert len(winners) == 1, f"exactly one process must win put_if_absent: {outcomes}"
    assert r.storage.get("lock")[0] == f"process-{winners[0]}".encode()
    for who in (0, 1):
        assert [r.read(f"p{who}/{i}.pkl").value for i in range(30)] == [(who, i) for i in range(30)]
    assert r.read("shared.pkl").value in {(0, 29), (1, 29)}
    assert r.read("parent.pkl").value == "made by the parent"
    assert sorted(r.storage.list("p0/")) == sorted(f"p0/{i}.pkl" for i in range(30))
