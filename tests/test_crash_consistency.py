"""A kill at any instant of a publish leaves the old or the new value, never an error.

Local writes rename the record first (it vouches for the old payload and the
new one), then the payload; readers take no lock. These tests stop and kill
real writer processes between and around those steps.
"""

from __future__ import annotations

import os
import pickle
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from resultkit.errors import ResultNotFoundError, UnsafeLocationError
from resultkit.results import LocalResult, MemoryResult
from resultkit.results._localsafety import process_space, sweep_dead_writers
from resultkit.results._location import TEMP_MARKER
from resultkit.results._locks import folder_lock
from resultkit.results._record import Record, with_previous

WRITER = r"""
import sys
from resultkit.results import LocalResult
r = LocalResult(dir=sys.argv[1])
i = 0
print("ready", flush=True)
while True:
    i += 1
    r.write({"round": i, "blob": bytes(int(sys.argv[2]))}, location="k.pkl")
"""


def _temps(folder: Path) -> list[str]:
    return [p.name for p in folder.iterdir() if TEMP_MARKER in p.name]


def test_between_the_two_renames_readers_see_the_old_value_and_never_wait(tmp_path):
    r = LocalResult(dir=tmp_path)
    r.write("old", location="k.pkl")
    new = pickle.dumps("new", protocol=5)
    record = Record("pickle", Record.digest_of(new), len(new))
    old_payload = (tmp_path / "k.pkl").read_bytes()
    sidecar = with_previous(
        record.to_metadata(),
        (tmp_path / "k.pkl.rkmeta").read_bytes(),
        lambda: len(old_payload),
        lambda: Record.digest_of(old_payload),
    )
    # A writer stopped after its first rename, holding the folder lock.
    with folder_lock(str(tmp_path)):
        (tmp_path / "k.pkl.rkmeta").write_bytes(sidecar)
        assert r.read("k.pkl").value == "old"  # no wait, no "corrupt"
        (tmp_path / "k.pkl").write_bytes(new)  # ...and killed after its second
        assert r.read("k.pkl").value == "new"


def test_a_stopped_writer_blocks_no_reader(tmp_path):
    r = LocalResult(dir=tmp_path)
    r.write("a", location="k.pkl")
    r.write("b", location="other.pkl")
    got, errors = [], []
    with folder_lock(str(tmp_path)):  # as a writer SIGSTOPped mid-publish holds it
        done = threading.Event()

        def read() -> None:
            try:
                got.append((r.read("k.pkl").value, r.read("other.pkl").value))
            except Exception as exc:  # collected and asserted below
                errors.append(exc)
            done.set()

        threading.Thread(target=read).start()
        assert done.wait(10), "a reader waited for a stopped writer's folder lock"
    assert errors == [] and got == [("a", "b")]


@pytest.mark.parametrize("size", [0, 4 * 2**20])
def test_sigkill_an_overwriting_writer_never_loses_the_value(tmp_path, size):
    """Kill a process that overwrites one key in a loop; every read after works."""
    r = LocalResult(dir=tmp_path)
    r.write({"round": 0, "blob": b""}, location="k.pkl")
    kills = 25
    rounds = []
    for n in range(kills):
        proc = subprocess.Popen(
            [sys.executable, "-c", WRITER, str(tmp_path), str(size)],
            stdout=subprocess.PIPE,
            text=True,
        )
        assert proc.stdout is not None and proc.stdout.readline() == "ready\n"
        time.sleep(0.01 + (n % 7) * 0.013)  # a different instant of the loop each time
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        value = r.read("k.pkl").value  # never corrupt, never missing
        assert len(value["blob"]) in (0, size)
        rounds.append(value["round"])
    assert any(rounds), "no writer ever got to publish: the test did not test anything"
    # The next writer of the folder clears the dead writers' temp files.
    leftovers = _temps(tmp_path)
    removed = sweep_dead_writers(str(tmp_path), now=time.time() + 60, force=True)
    assert sorted(removed) == sorted(leftovers)
    assert _temps(tmp_path) == []
    assert r.read("k.pkl").value["round"] == rounds[-1]


def test_the_next_writer_removes_a_dead_writers_temp_files(tmp_path):
    r = LocalResult(dir=tmp_path)
    dead = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"],
        capture_output=True,
        text=True,
        check=True,
    )
    pid = int(dead.stdout)
    space = process_space()
    stale = tmp_path / f".k.pkl{TEMP_MARKER}{pid}-{space}abc"
    stale.write_bytes(b"x" * 100)
    old = time.time() - 3600
    os.utime(stale, (old, old))
    live = tmp_path / f".k.pkl{TEMP_MARKER}{os.getpid()}-{space}def"  # ours: never touched
    # A writer in another PID namespace (a container) with a pid that means
    # nothing here: kept until it is a day old.
    foreign = tmp_path / f".k.pkl{TEMP_MARKER}{pid}-zzzzzzghi"
    foreign.write_bytes(b"z")
    os.utime(foreign, (old, old))
    live.write_bytes(b"y")
    os.utime(live, (old, old))
    r.write(1, location="k.pkl")
    assert not stale.exists() and live.exists() and foreign.exists()
    day_old = time.time() - 2 * 86400
    os.utime(foreign, (day_old, day_old))
    sweep_dead_writers(str(tmp_path), force=True)
    assert not foreign.exists()


def test_reads_racing_deletes_are_never_called_corrupt(tmp_path):
    for result in (LocalResult(dir=tmp_path), MemoryResult(root="/race-delete")):
        stop = threading.Event()
        errors: list[BaseException] = []

        def churn(res=result, stop=stop, errors=errors) -> None:
            try:
                while not stop.is_set():
                    res.write([1, 2, 3], location="k.pkl")
                    res.delete("k.pkl")
            except Exception as exc:  # collected and asserted below
                errors.append(exc)

        t = threading.Thread(target=churn)
        t.start()
        outcomes = set()
        try:
            for _ in range(1500):
                try:
                    outcomes.add(repr(result.read("k.pkl").value))
                except ResultNotFoundError:
                    outcomes.add("missing")
        finally:
            stop.set()
            t.join()
        assert errors == []
        assert outcomes <= {"[1, 2, 3]", "missing"}


def test_symlinked_folder_leading_outside_the_root_is_refused(tmp_path):
    root, outside = tmp_path / "root", tmp_path / "outside"
    root.mkdir()
    outside.mkdir()
    (outside / "secret.pkl").write_bytes(pickle.dumps("secret"))
    (root / "escape").symlink_to(outside)
    (root / "inner").mkdir()
    (root / "alias").symlink_to(root / "inner")  # a link that stays inside is fine
    r = LocalResult(dir=root)
    for call in (
        lambda: r.write(1, location="escape/x.pkl"),
        lambda: r.read("escape/secret.pkl"),
        lambda: r.exists("escape/secret.pkl"),
    ):
        with pytest.raises(UnsafeLocationError, match="outside the result's root"):
            call()
    assert not (outside / "x.pkl").exists()
    assert r.read(r.write(2, location="alias/y.pkl").location).value == 2
