"""Attacks on the kept small pairs (results/_smallpairs.py): a process that keeps a verified
pair must never serve it once the files hold anything else.

Real files, real mounts (tests run as root: a loop-mounted ext4 whose inodes keep whole
seconds, an overlay inside a results folder), real forks. The only waits are for the clock
itself: a file's age, or the part of the current second, which is the condition under test.
"""

from __future__ import annotations

import multiprocessing
import os
import subprocess
import threading
import time
import tracemalloc
from pathlib import Path

import pytest

from resultkit import Flow, Parameter, task
from resultkit.results import LocalResult, _smallpairs
from resultkit.results._location import RECORD_SUFFIX


@pytest.fixture(autouse=True)
def _fresh_memory():
    _smallpairs.forget_kept_pairs()
    yield
    _smallpairs.forget_kept_pairs()


def _mount(*args: str) -> None:
    done = subprocess.run(["mount", *args], capture_output=True, text=True)
    assert done.returncode == 0, f"mount {args} failed: {done.stderr}"


@pytest.fixture(scope="module")
def whole_seconds(tmp_path_factory):
    """A real ext4 of 128-byte inodes (as ext2/ext3 made by older tools, or `mkfs -I 128`):
    its times are whole seconds, so two changes within one second share them."""
    base = tmp_path_factory.mktemp("seconds")
    image, folder = base / "fs.img", base / "mnt"
    folder.mkdir()
    with open(image, "wb") as f:
        f.truncate(16 << 20)
    made = subprocess.run(
        ["mkfs.ext4", "-q", "-F", "-I", "128", str(image)], capture_output=True, text=True
    )
    assert made.returncode == 0, made.stderr
    _mount("-o", "loop", str(image), str(folder))
    yield folder
    subprocess.run(["umount", str(folder)], check=True)


def _path(r: LocalResult, location: str) -> str:
    return r.storage.path(r.storage_key(location))


def _early_in_a_second() -> None:
    """Until the clock is early in a second: what follows then happens within it."""
    deadline = time.monotonic() + 5
    while not 0.1 <= time.time() % 1 < 0.6:
        assert time.monotonic() < deadline, "the clock did not move"
        time.sleep(0.005)


def _until_older_than(seconds: float, *paths: str) -> None:
    """Until every file's change time is more than ``seconds`` in the past."""
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        now = time.time_ns()
        if all(os.lstat(p).st_ctime_ns < now - seconds * 1e9 for p in paths):
            return
        time.sleep(0.01)
    raise AssertionError(f"{paths} did not age")


@pytest.mark.parametrize("exchange", [True, False])
def test_whole_second_times_never_serve_a_replaced_value(whole_seconds, exchange):
    """Where times are whole seconds, a pair written at 10.2 s shows 10.0 s: it looks old
    enough at 10.3 s, yet two writes before 11.0 s bring back its inode (the spare swaps, or
    ext4 reusing a freed inode on the rename path) with the same size and the same times."""
    r = LocalResult(dir=str(whole_seconds / f"exchange-{exchange}"))
    r.storage.exchange = r.storage.exchange and exchange
    r.write({"n": 0}, "a.pkl")
    r.write({"n": 0}, "a.pkl")  # the folder's spares exist
    _early_in_a_second()
    r.write({"n": 1}, "a.pkl")
    assert r.read("a.pkl").value == {"n": 1}
    r.write({"n": 2}, "a.pkl")
    r.write({"n": 3}, "a.pkl")
    assert r.read("a.pkl").value == {"n": 3}


def test_whole_second_times_still_keep_a_pair_a_second_old(whole_seconds):
    """The optimisation stays on such a filesystem, for files changed in an earlier second;
    a write after that has a later second and is read."""
    r = LocalResult(dir=str(whole_seconds / "aged"))
    r.write("old", "b.pkl")
    path = _path(r, "b.pkl")
    _until_older_than(1.06, path, path + RECORD_SUFFIX)
    assert r.read("b.pkl").value == "old"
    assert path in _smallpairs._kept
    r.write("new", "b.pkl")
    assert r.read("b.pkl").value == "new"


def test_a_reader_held_up_after_its_reads_keeps_nothing_older_than_the_files(
    whole_seconds, monkeypatch
):
    """A reader descheduled between reading a pair and keeping it (a busy machine, a thread
    waiting for the GIL) must judge the files' age from when it looked at them: two writes
    in that same second left the same times on the files, not the bytes it read."""
    r = LocalResult(dir=str(whole_seconds / "held-up"))
    writer = LocalResult(dir=str(whole_seconds / "held-up"))
    writer.write({"n": 0}, "c.pkl")
    writer.write({"n": 0}, "c.pkl")
    _early_in_a_second()
    writer.write({"n": 1}, "c.pkl")
    path = _path(r, "c.pkl")
    read_whole = _smallpairs._read_whole

    def held_up(*args, **kwargs):
        found = read_whole(*args, **kwargs)
        if args[0] == path:  # the payload read: the reader stops here for a while
            writer.write({"n": 2}, "c.pkl")  # in the same second as the pair it read
            writer.write({"n": 3}, "c.pkl")
            _until_older_than(1.1, path, path + RECORD_SUFFIX)
        return found

    monkeypatch.setattr(_smallpairs, "_read_whole", held_up)
    assert r.read("c.pkl").value == {"n": 1}
    monkeypatch.setattr(_smallpairs, "_read_whole", read_whole)
    assert r.read("c.pkl").value == {"n": 3}


def test_a_flow_target_written_again_within_the_second_is_read_again(whole_seconds):
    """The same through a flow: its target, rewritten by another Result twice within the
    second of the flow's read, is not served from memory."""
    folder = str(whole_seconds / "flow")

    @task(result=LocalResult(dir=folder), target="sq-{n}.pkl")
    def square(n):
        return n * n

    with Flow("kept", run_store="off") as flow:
        out = square(Parameter("n", default=3))
    other = LocalResult(dir=folder)
    other.write(0, "sq-3.pkl")
    other.write(0, "sq-3.pkl")
    _early_in_a_second()
    other.write(1, "sq-3.pkl")
    assert flow.run().result[out].result == 1
    other.write(2, "sq-3.pkl")
    other.write(5, "sq-3.pkl")
    assert flow.run().result[out].result == 5


def test_a_pair_on_another_filesystem_inside_the_root_is_not_kept(tmp_path):
    """Trust belongs to the filesystem each pair is on, not to the root's at the first
    read: an overlay mounted in a subfolder later (or over a deeper trusted mount, which
    mountinfo's longest prefix still names) is not a trusted filesystem."""
    root = tmp_path / "root"
    r = LocalResult(dir=str(root))
    r.write(1, "top.pkl")
    path = _path(r, "top.pkl")
    _until_older_than(0.06, path, path + RECORD_SUFFIX)
    assert r.read("top.pkl").value == 1
    assert path in _smallpairs._kept  # the root is trusted, and was asked once
    layers = tmp_path / "layers"
    for name in ("lower", "upper", "work"):
        (layers / name).mkdir(parents=True)
    (root / "sub" / "deep").mkdir(parents=True)
    _mount("-t", "tmpfs", "tmpfs", str(root / "sub" / "deep"))
    try:
        options = (
            f"lowerdir={layers / 'lower'},upperdir={layers / 'upper'},workdir={layers / 'work'}"
        )
        _mount("-t", "overlay", "overlay", "-o", options, str(root / "sub"))
        try:
            (root / "sub" / "deep").mkdir()
            for location in ("sub/x.pkl", "sub/deep/y.pkl"):
                r.write(location, location)
                path = _path(r, location)
                _until_older_than(0.06, path, path + RECORD_SUFFIX)
                assert r.read(location).value == location
                assert path not in _smallpairs._kept, f"{location} is on an overlay"
        finally:
            subprocess.run(["umount", str(root / "sub")], check=True)
    finally:
        subprocess.run(["umount", str(root / "sub" / "deep")], check=True)


def _read_in_child(folder: str, done) -> None:  # the forked child's work
    r = LocalResult(dir=folder)
    path = r.storage.path("f.pkl")
    inherited = path in _smallpairs._kept
    _smallpairs.forget_kept_pairs()  # takes the lock
    done.put((inherited, r.read("f.pkl").value, path in _smallpairs._kept))


def test_a_child_forked_while_a_thread_keeps_a_pair_still_reads(tmp_path):
    """multiprocessing's fork copies the lock of the kept pairs as it is: held, if a thread
    was keeping a pair at that moment. The child starts with the parent's kept pairs, and
    must forget and keep them all the same."""
    r = LocalResult(dir=str(tmp_path))
    r.write([1, 2], "f.pkl")
    path = _path(r, "f.pkl")
    _until_older_than(0.06, path, path + RECORD_SUFFIX)
    assert r.read("f.pkl").value == [1, 2]
    keeping, forked = threading.Event(), threading.Event()
    errors: list[BaseException] = []

    def keeper() -> None:  # a thread inside _keep's lock when the fork happens
        try:
            with _smallpairs._kept_lock:
                keeping.set()
                assert forked.wait(30)
        except BaseException as exc:  # collected: the test asserts none
            errors.append(exc)

    thread = threading.Thread(target=keeper)
    thread.start()
    assert keeping.wait(30)
    context = multiprocessing.get_context("fork")
    done = context.Queue()
    child = context.Process(target=_read_in_child, args=(str(tmp_path), done))
    try:
        child.start()
    finally:
        forked.set()
        thread.join()
    child.join(timeout=15)
    if child.exitcode is None:
        child.kill()
        child.join()
        raise AssertionError("the forked child hung on the kept pairs' lock")
    assert errors == []
    assert child.exitcode == 0
    assert done.get(timeout=5) == (True, [1, 2], True)


def test_memory_bound_counts_what_each_kept_pair_costs(tmp_path, monkeypatch):
    """Thousands of tiny values (a few bytes of payload each) must not hold many times the
    bound: each kept pair's record, identities and entry count, not just its payload."""
    monkeypatch.setattr(_smallpairs, "_KEPT_BYTES", 64 << 10)
    r = LocalResult(dir=str(tmp_path))
    locations = [f"t/{i}.pkl" for i in range(400)]
    for location in locations:
        r.write(None, location)
    last = _path(r, locations[-1])
    _until_older_than(0.06, last, last + RECORD_SUFFIX)
    paths = [_path(r, location) for location in locations]  # cached before measuring
    tracemalloc.start()
    try:
        for location in locations:
            r.read(location)
        assert len(_smallpairs._kept) > 20  # kept, up to the bound
        held = tracemalloc.take_snapshot()
        _smallpairs.forget_kept_pairs()
        freed = -sum(d.size_diff for d in tracemalloc.take_snapshot().compare_to(held, "lineno"))
    finally:
        tracemalloc.stop()
    assert freed <= 64 << 10, f"{freed} bytes kept for a bound of 64 KB ({len(paths)} pairs)"


def test_another_pairs_files_renamed_over_this_one_are_read(tmp_path):
    """Attack that fails: the files of another pair of the same sizes, renamed over a kept
    pair (by hand, on the rename path where inode numbers come back), are read from disk."""
    r = LocalResult(dir=str(tmp_path))
    r.storage.exchange = False
    r.write("aaaa", "one.pkl")
    r.write("bbbb", "two.pkl")
    one, two = _path(r, "one.pkl"), _path(r, "two.pkl")
    _until_older_than(0.06, one, one + RECORD_SUFFIX, two, two + RECORD_SUFFIX)
    assert r.read("one.pkl").value == "aaaa"
    assert Path(one).stat().st_size == Path(two).stat().st_size
    os.rename(two + RECORD_SUFFIX, one + RECORD_SUFFIX)
    os.rename(two, one)
    assert r.read("one.pkl").value == "bbbb"
