"""Verified small pairs kept in memory (results/_smallpairs.py): served again only while
both files are exactly the ones read, never after any change, on trusted filesystems only.

Real files on the real disk (and a real tmpfs). A pair is kept only once its files are
SETTLED seconds old, so tests wait for that age (a condition on the files' age, polled
with a deadline; nothing else is timed).
"""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from resultkit.errors import ResultCorruptError, ResultNotFoundError, UnsafeLocationError
from resultkit.results import LocalResult, _smallpairs
from resultkit.results._location import RECORD_SUFFIX


@pytest.fixture(autouse=True)
def _fresh_memory():
    _smallpairs.forget_kept_pairs()
    yield
    _smallpairs.forget_kept_pairs()


def _path(r: LocalResult, location: str) -> str:
    return r.storage.path(r.storage_key(location))


def _settle(*paths: str) -> None:
    """Until every file's change time is SETTLED seconds in the past."""
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        now = time.time_ns()
        if all(os.lstat(p).st_ctime_ns < now - _smallpairs.SETTLED * 1e9 - 1e6 for p in paths):
            return
        time.sleep(0.01)
    raise AssertionError(f"{paths} did not settle")


def _read_kept(r: LocalResult, location: str):
    """Read ``location`` once its files settled, and check the pair is now kept."""
    path = _path(r, location)
    _settle(path, path + RECORD_SUFFIX)
    value = r.read(location).value
    assert path in _smallpairs._kept, "a settled, verified pair is kept"
    return value


@pytest.mark.parametrize("exchange", [True, False])
def test_each_overwrite_is_seen_even_two_within_one_clock_tick(tmp_path, exchange):
    """After a kept read, writes back to back (on the exchange path the target's inode
    comes back after two writes, same size) are always read as the latest value."""
    r = LocalResult(dir=str(tmp_path))
    r.storage.exchange = r.storage.exchange and exchange
    r.write({"n": 0}, "a.pkl")
    for n in range(1, 31):
        assert _read_kept(r, "a.pkl") == {"n": n - 1}
        r.write({"n": 100 + n}, "a.pkl")
        r.write({"n": n}, "a.pkl")  # same size as the kept value's
        assert r.read("a.pkl").value == {"n": n}


def test_a_pair_read_right_after_its_write_is_not_kept(tmp_path):
    """Files changed within the last SETTLED seconds may share their times with the next
    change: such a pair is read, not kept."""
    r = LocalResult(dir=str(tmp_path))
    r.write(1, "fresh.pkl")
    assert r.read("fresh.pkl").value == 1
    assert _path(r, "fresh.pkl") not in _smallpairs._kept


def test_payload_changed_in_place_with_its_times_put_back_is_caught(tmp_path):
    """A tool that rewrites the payload in place and restores its modification time still
    moves its change time: the read rereads the file and reports the damage."""
    r = LocalResult(dir=str(tmp_path))
    r.write({"v": "a" * 50}, "x.pkl")
    assert _read_kept(r, "x.pkl") == {"v": "a" * 50}
    path = _path(r, "x.pkl")
    before = os.stat(path)
    data = bytearray(Path(path).read_bytes())
    data[-5] ^= 0xFF
    with open(path, "r+b") as f:  # same inode, same size
        f.write(data)
    os.utime(path, ns=(before.st_atime_ns, before.st_mtime_ns))
    with pytest.raises(ResultCorruptError):
        r.read("x.pkl")


def test_deleted_and_replaced_by_a_link_are_not_served_from_memory(tmp_path):
    r = LocalResult(dir=str(tmp_path))
    r.write(7, "d.pkl")
    assert _read_kept(r, "d.pkl") == 7
    path = _path(r, "d.pkl")
    os.unlink(path)
    with pytest.raises((ResultNotFoundError, ResultCorruptError)):
        r.read("d.pkl")
    (tmp_path / "elsewhere").write_bytes(b"x")
    os.symlink(tmp_path / "elsewhere", path)
    with pytest.raises(UnsafeLocationError):
        r.read("d.pkl")


def test_another_process_write_is_seen(tmp_path):
    r = LocalResult(dir=str(tmp_path))
    r.write("first", "p.pkl")
    assert _read_kept(r, "p.pkl") == "first"
    code = (
        "import sys; from resultkit.results import LocalResult; "
        "LocalResult(dir=sys.argv[1]).write('other', 'p.pkl')"
    )
    subprocess.run([sys.executable, "-c", code, str(tmp_path)], check=True)
    assert r.read("p.pkl").value == "other"


def test_readers_racing_an_overwriting_writer_see_only_written_values(tmp_path):
    """Threads read a kept pair while a process overwrites it in a loop: each read is one
    of the values written, and the last read after the writer stops is its last value."""
    r = LocalResult(dir=str(tmp_path))
    r.write(-1, "race.pkl")
    _read_kept(r, "race.pkl")
    code = (
        "import sys; from resultkit.results import LocalResult\n"
        "r = LocalResult(dir=sys.argv[1])\n"
        "for i in range(300): r.write(i, 'race.pkl')\n"
    )
    writer = subprocess.Popen([sys.executable, "-c", code, str(tmp_path)])
    errors: list[BaseException] = []
    seen: list[int] = []
    stop = threading.Event()

    def read() -> None:
        try:
            while not stop.is_set():
                seen.append(r.read("race.pkl").value)
        except BaseException as exc:  # collected: the test asserts none
            errors.append(exc)

    readers = [threading.Thread(target=read) for _ in range(2)]
    for t in readers:
        t.start()
    assert writer.wait(timeout=120) == 0
    stop.set()
    for t in readers:
        t.join()
    assert errors == []
    assert set(seen) <= set(range(-1, 300)) and seen
    assert r.read("race.pkl").value == 299


def test_memory_is_bounded(tmp_path, monkeypatch):
    monkeypatch.setattr(_smallpairs, "_KEPT_BYTES", 3000)
    r = LocalResult(dir=str(tmp_path))
    for i in range(6):
        r.write(b"x" * 900, f"m{i}.pkl")
    for i in range(6):
        _read_kept(r, f"m{i}.pkl")
        assert _smallpairs._kept_size <= 3000
    assert 1 <= len(_smallpairs._kept) <= 3


def test_only_local_filesystems_whose_change_times_move_are_trusted(tmp_path, tmpfs):
    assert _smallpairs._filesystem_type(str(tmp_path)) in _smallpairs._TRUSTED_TYPES
    assert _smallpairs.keeps_pairs(str(tmpfs("1m")))
    assert _smallpairs._filesystem_type("/proc/self") == "proc"
    assert not _smallpairs.keeps_pairs("/proc")
    spaced = tmp_path / "a folder"
    spaced.mkdir()
    mounted = subprocess.run(["mount", "-t", "tmpfs", "tmpfs", str(spaced)], capture_output=True)
    assert mounted.returncode == 0, mounted.stderr
    try:  # a mount point with a space is escaped in mountinfo (\040)
        assert _smallpairs._filesystem_type(str(spaced / "x")) == "tmpfs"
    finally:
        subprocess.run(["umount", str(spaced)], check=True)


def test_not_kept_on_an_untrusted_filesystem(tmp_path, monkeypatch):
    r = LocalResult(dir=str(tmp_path))
    r.storage._keeps_pairs = False  # what keeps_pairs answers for NFS, FUSE, unknown
    r.write(3, "u.pkl")
    path = _path(r, "u.pkl")
    _settle(path, path + RECORD_SUFFIX)
    assert r.read("u.pkl").value == 3
    assert path not in _smallpairs._kept
