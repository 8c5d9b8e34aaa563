"""Local publishes that swap spare files into place, and the rename path they fall back to.

Both paths run on the real disk: the rename path is forced with
``LocalFileStorage.exchange = False`` or ``RESULTKIT_LOCAL_EXCHANGE=0``.
"""

from __future__ import annotations

import os
import pickle
import random
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from resultkit.errors import StorageError
from resultkit.results import LocalResult
from resultkit.results._localwrite import SMALL_LIMIT, SPARE_PAYLOAD, SPARE_RECORD
from resultkit.results._location import TEMP_MARKER
from resultkit.results._record import Record, with_previous

SPARES = sorted([SPARE_PAYLOAD, SPARE_RECORD])


def _result(folder: Path, exchange: bool) -> LocalResult:
    r = LocalResult(dir=folder)
    r.storage.exchange = exchange and r.storage.exchange  # type: ignore[attr-defined]
    return r


@pytest.mark.parametrize("exchange", [True, False], ids=["exchange", "rename"])
def test_overwrites_read_back_and_leave_only_the_pair_and_the_spares(tmp_path, exchange):
    r = _result(tmp_path, exchange)
    assert r.storage.exchange is exchange  # type: ignore[attr-defined]
    values = [b"a", b"b" * 5000, b"", b"c" * (SMALL_LIMIT + 10), b"d" * 300, b"e" * 300]
    for value in values:
        r.write(value, location="k.pkl")
        assert r.read("k.pkl").value == value
    names = sorted(os.listdir(tmp_path))
    assert names == sorted(["k.pkl", "k.pkl.rkmeta"] + (SPARES if exchange else []))
    assert r.storage.list() == ["k.pkl"]


def test_a_small_overwrite_swaps_the_spare_in_instead_of_making_a_file(tmp_path):
    r = _result(tmp_path, True)
    r.write("one", location="k.pkl")
    r.write("two", location="k.pkl")  # the first overwrite leaves the replaced files as spares
    spare_inode = os.stat(tmp_path / SPARE_PAYLOAD).st_ino
    old_inode = os.stat(tmp_path / "k.pkl").st_ino
    r.write("three", location="k.pkl")
    assert os.stat(tmp_path / "k.pkl").st_ino == spare_inode
    assert os.stat(tmp_path / SPARE_PAYLOAD).st_ino == old_inode
    assert r.read("k.pkl").value == "three"


def test_a_first_write_makes_no_spare_and_delete_removes_them(tmp_path):
    r = _result(tmp_path, True)
    r.write("one", location="a/k.pkl")
    assert sorted(os.listdir(tmp_path / "a")) == ["k.pkl", "k.pkl.rkmeta"]
    r.write("two", location="a/k.pkl")
    assert set(SPARES) <= set(os.listdir(tmp_path / "a"))
    assert r.delete("a/k.pkl")
    assert os.listdir(tmp_path / "a") == []


def test_the_environment_variable_forces_the_rename_path(tmp_path, monkeypatch):
    monkeypatch.setenv("RESULTKIT_LOCAL_EXCHANGE", "0")
    r = LocalResult(dir=tmp_path)
    assert r.storage.exchange is False  # type: ignore[attr-defined]
    for value in ("one", "two", "three"):
        r.write(value, location="k.pkl")
    assert r.read("k.pkl").value == "three"
    assert sorted(os.listdir(tmp_path)) == ["k.pkl", "k.pkl.rkmeta"]


@pytest.mark.parametrize("writer", [True, False], ids=["exchange", "rename"])
@pytest.mark.parametrize("reader", [True, False], ids=["read-exchange", "read-rename"])
def test_pairs_written_by_either_path_read_with_the_other(tmp_path, writer, reader):
    _result(tmp_path, writer).write({"v": 1}, location="k.pkl")
    _result(tmp_path, writer).write({"v": 2}, location="k.pkl")
    assert _result(tmp_path, reader).read("k.pkl").value == {"v": 2}
    _result(tmp_path, reader).write({"v": 3}, location="k.pkl")
    assert _result(tmp_path, writer).read("k.pkl").value == {"v": 3}


def test_a_pair_in_the_format_of_the_previous_release_reads_and_is_overwritten(tmp_path):
    # As 0f4d32a wrote it: the payload, and its record as a JSON sidecar; here
    # even mid-publish (the record names the payload it replaces).
    old = pickle.dumps("old", protocol=5)
    new = pickle.dumps("new", protocol=5)
    old_record = Record("pickle", Record.digest_of(old), len(old)).to_bytes()
    (tmp_path / "k.pkl").write_bytes(old)
    new_record = Record("pickle", Record.digest_of(new), len(new)).to_metadata()
    sidecar = with_previous(new_record, old_record, lambda: len(old), lambda: Record.digest_of(old))
    (tmp_path / "k.pkl.rkmeta").write_bytes(sidecar)
    r = _result(tmp_path, True)
    assert r.read("k.pkl").value == "old"
    r.write("newer", location="k.pkl")
    assert r.read("k.pkl").value == "newer"
    assert b"previous" not in (tmp_path / "k.pkl.rkmeta").read_bytes()


@pytest.mark.parametrize("planted", ["symlink", "folder", "hardlink", "fifo", "missing"])
def test_a_spare_that_is_not_ours_is_never_written_through(tmp_path, planted):
    root = tmp_path / "root"
    r = _result(root, True)
    for value in ("one", "two", "three"):  # spares in place
        r.write(value, location="k.pkl")
    outside = tmp_path / "outside.txt"
    outside.write_bytes(b"precious")
    for name in SPARES:
        spare = root / name
        spare.unlink()
        if planted == "symlink":
            spare.symlink_to(outside)
        elif planted == "folder":
            spare.mkdir()
            (spare / "inside").write_bytes(b"kept")
        elif planted == "hardlink":
            os.link(outside, spare)
        elif planted == "fifo":
            os.mkfifo(spare)
    for value in ("four", "five", "six"):
        r.write(value, location="k.pkl")
        assert r.read("k.pkl").value == value
    assert outside.read_bytes() == b"precious"
    if planted == "folder":
        assert (root / SPARE_PAYLOAD / "inside").read_bytes() == b"kept"
    else:  # replaced by spares of our own, and used again
        assert all((root / n).is_file() and not (root / n).is_symlink() for n in SPARES)
    assert [n for n in os.listdir(root) if TEMP_MARKER in n] == []


def test_readers_racing_exchanges_never_fail(tmp_path):
    """A reader that opens a file just before it becomes a spare reads again."""
    r = _result(tmp_path, True)
    values = [{"i": i, "pad": "x" * (i % 7) * 300} for i in range(8)]
    r.write(values[0], location="k.pkl")
    r.write(values[1], location="other.pkl")
    stop = threading.Event()
    errors: list[BaseException] = []

    def write() -> None:
        try:
            for n in range(400):
                r.write(values[n % 8], location="k.pkl" if n % 3 else "other.pkl")
        except BaseException as exc:  # collected and asserted below
            errors.append(exc)
        finally:
            stop.set()

    writer = threading.Thread(target=write)
    writer.start()
    reads = 0
    while not stop.is_set():
        assert r.read("k.pkl").value in values
        reads += 1
    writer.join()
    assert errors == [] and reads > 0


WRITER = r"""
import sys
from resultkit.results import LocalResult
r = LocalResult(dir=sys.argv[1])
tag = sys.argv[2]
print("ready", flush=True)
for i in range(int(sys.argv[3])):
    r.write({"writer": tag, "i": i, "pad": "x" * (i % 5) * 200}, location="k.pkl")
"""


def test_two_writer_processes_of_one_key_and_a_reader(tmp_path):
    r = _result(tmp_path, True)
    r.write({"writer": "start", "i": 0, "pad": ""}, location="k.pkl")
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", WRITER, str(tmp_path), tag, "300"],
            stdout=subprocess.PIPE,
            text=True,
        )
        for tag in ("a", "b")
    ]
    reads = 0
    while any(p.poll() is None for p in procs):
        value = r.read("k.pkl").value
        assert value["writer"] in ("start", "a", "b")
        reads += 1
    assert [p.wait() for p in procs] == [0, 0]
    last = r.read("k.pkl").value
    assert last["writer"] in ("a", "b") and last["i"] == 299
    assert [n for n in os.listdir(tmp_path) if TEMP_MARKER in n] == []


LOOP = r"""
import sys
from resultkit.results import LocalResult
r = LocalResult(dir=sys.argv[1])
i = 0
print("ready", flush=True)
while True:
    i += 1
    r.write({"round": i, "blob": b"x" * (i % 3) * 700}, location="k.pkl")
"""


@pytest.mark.parametrize("exchange", ["1", "0"], ids=["exchange", "rename"])
def test_sigkill_at_random_instants_leaves_a_readable_value(tmp_path, exchange):
    r = _result(tmp_path, exchange == "1")
    r.write({"round": 0, "blob": b""}, location="k.pkl")
    env = {**os.environ, "RESULTKIT_LOCAL_EXCHANGE": exchange}
    rng = random.Random(7)
    last = 0
    for _ in range(8):
        proc = subprocess.Popen(
            [sys.executable, "-c", LOOP, str(tmp_path)],
            stdout=subprocess.PIPE,
            text=True,
            env=env,
        )
        assert proc.stdout is not None and proc.stdout.readline() == "ready\n"
        time.sleep(rng.uniform(0.005, 0.08))  # a random instant of the write loop
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        value = r.read("k.pkl").value  # never corrupt, never missing
        assert len(value["blob"]) in (0, 700, 1400)
        last = value["round"]
    assert last > 0, "no writer ever got to publish: the test did not test anything"
    r.write({"round": -1, "blob": b""}, location="k.pkl")  # the next writer goes on
    assert r.read("k.pkl").value["round"] == -1


def test_exists_many_agrees_with_exists_one_by_one_and_by_listing(tmp_path):
    r = LocalResult(dir=tmp_path)
    for i in range(0, 200, 2):
        r.write(i, location=f"many/k{i}.pkl")
    r.write(1, location="few/a.pkl")
    (tmp_path / "many" / "k1.pkl").mkdir()  # a folder is not a value
    keys = [f"many/k{i}.pkl" for i in range(200)] + ["few/a.pkl", "few/b.pkl", "none/x.pkl"]
    expected = [r.exists(k) for k in keys]
    assert expected[:4] == [True, False, True, False] and expected[-3:] == [True, False, False]
    assert r.exists_many(keys) == expected  # "many" is listed: most of it is asked for
    assert r.exists_many(keys[:3] + keys[-3:]) == expected[:3] + expected[-3:]  # one by one


def test_fsync_publishes_through_the_spares(tmp_path):
    r = LocalResult(dir=tmp_path, fsync=True)
    for value in ("one", "two", "three"):
        r.write(value, location="k.pkl")
    assert r.read("k.pkl").value == "three"


@pytest.fixture
def small_disk(tmpfs):
    return tmpfs("2m")


def test_a_full_disk_fails_an_overwrite_through_the_spare_and_keeps_the_old(small_disk):
    r = _result(small_disk, True)
    for value in (b"a", b"b", b"c"):  # spares in place
        r.write(value, location="k.pkl")
    filler = small_disk / "filler"
    with open(filler, "wb") as f, pytest.raises(OSError):
        while True:  # fill the disk
            f.write(b"\0" * 65536)
            f.flush()
    with pytest.raises(StorageError, match=r"k\.pkl"):
        r.write(b"d" * 500_000, location="k.pkl")
    assert r.read("k.pkl").value == b"c"
    filler.unlink()
    r.write(b"d" * 500_000, location="k.pkl")
    assert r.read("k.pkl").value == b"d" * 500_000
    assert sorted(os.listdir(small_disk)) == sorted(["k.pkl", "k.pkl.rkmeta"] + SPARES)


def test_a_large_replaced_payload_is_freed_not_kept_as_a_spare(tmp_path):
    r = _result(tmp_path, True)
    for value in (b"a", b"b", b"x" * (SMALL_LIMIT + 1), b"c"):
        r.write(value, location="k.pkl")
    assert r.read("k.pkl").value == b"c"
    assert os.path.getsize(tmp_path / SPARE_PAYLOAD) < SMALL_LIMIT


def test_writers_and_deleters_of_one_key_in_threads_never_stall(tmp_path):
    r = _result(tmp_path, True)
    errors: list[BaseException] = []

    def churn(delete: bool) -> None:
        try:
            for n in range(150):
                if delete:
                    r.delete("k.pkl")
                else:
                    r.write(n, location="k.pkl")
        except BaseException as exc:  # collected and asserted below
            errors.append(exc)

    threads = [threading.Thread(target=churn, args=(d,)) for d in (False, True, False)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert not any(t.is_alive() for t in threads) and errors == []
