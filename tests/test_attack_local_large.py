"""Failures found by attacking this round's large local payloads and quiet reads.

Each test is a minimal, deterministic reproduction of a break seen with real
processes and signals (scripts in the attack report): a forked child that
deadlocks on a lock it inherited held, a forked child that keeps a reader's
shared folder lock (so every writer of the folder fails), and a Ctrl-C that
lands while a large read starts its helper threads and leaves them running.
"""

from __future__ import annotations

import os
import signal
import threading
import time

import pytest

from resultkit.errors import StorageError
from resultkit.results import LocalResult, MemoryResult, _localio, _locks

MB = 2**20


def _wait_for_child(pid: int, seconds: float) -> int | None:
    """The child's exit status, or None (after killing it) if it did not end in time."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        done, status = os.waitpid(pid, os.WNOHANG)
        if done:
            return status
        time.sleep(0.01)  # polling a child's exit, bounded by the deadline
    os.kill(pid, signal.SIGKILL)
    os.waitpid(pid, 0)
    return None


def test_a_child_forked_while_a_replaced_payload_is_released_can_still_write(tmp_path):
    # Seen with a thread overwriting a 9 MB value in a loop and the main thread
    # forking: 1 child in ~25 hung forever in release_along's `with
    # _pending_guard` (the closer thread held it at the instant of fork).
    # Holding the guard across the fork is that instant, made deterministic.
    result = LocalResult(dir=str(tmp_path))
    result.write(b"a" * (9 * MB), location="big.bin")
    with _localio._pending_guard:
        pid = os.fork()
        if pid == 0:  # the child: overwrite the large value (its old payload is released)
            try:
                result.write(b"b" * (9 * MB), location="big.bin")
            except BaseException:
                os._exit(2)
            os._exit(0)
    status = _wait_for_child(pid, 2.0)
    assert status is not None, "the forked child deadlocked on the release lock it inherited held"
    assert os.waitstatus_to_exitcode(status) == 0


def test_a_child_forked_during_a_quiet_read_does_not_lock_the_folders_writers_out(
    tmp_path, monkeypatch
):
    # A reader holding the folder's shared lock (quiet_reads) while another
    # thread forks a long-lived worker (multiprocessing's default on Linux):
    # the child's copy of the lock's descriptor keeps the flock after the
    # reader is done, so every writer of the folder, in any process, fails
    # with the folder-lock timeout for as long as the child lives.
    monkeypatch.setattr(_locks, "FOLDER_LOCK_TIMEOUT", 0.5)  # the real wait is 60 s
    result = LocalResult(dir=str(tmp_path))
    result.write({"n": 1}, location="k.pkl")
    release_child, child_end = os.pipe()
    with result.storage.quiet_reads("k.pkl"):
        pid = os.fork()
        if pid == 0:  # a forked worker that lives on, doing nothing with results
            os.close(child_end)
            os.read(release_child, 1)
            os._exit(0)
    os.close(release_child)
    try:
        result.write({"n": 2}, location="k.pkl")
        error = None
    except StorageError as exc:
        error = exc
    finally:
        os.close(child_end)  # the child ends
        _wait_for_child(pid, 5.0)
    assert error is None, f"a writer was locked out by a forked child: {error}"
    assert result.read("k.pkl").value == {"n": 2}


def _helper_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name in ("resultkit-hash", "resultkit-read")]


@pytest.mark.parametrize("kind", ["local", "memory"])
def test_ctrl_c_while_a_large_read_starts_its_threads_leaves_none_running(
    tmp_path, monkeypatch, kind
):
    result = LocalResult(dir=str(tmp_path)) if kind == "local" else MemoryResult()
    result.write(b"x" * (64 * MB), location="big.bin")
    before = set(_helper_threads())
    real_start = threading.Thread.start

    def start_then_interrupted(self: threading.Thread) -> None:
        real_start(self)
        if self.name in ("resultkit-hash", "resultkit-read"):
            monkeypatch.setattr(threading.Thread, "start", real_start)
            raise KeyboardInterrupt  # a Ctrl-C landing in Thread.start's _started.wait()

    # Where a SIGINT at a random instant of a large read landed in 2 of 15 tries.
    monkeypatch.setattr(threading.Thread, "start", start_then_interrupted)
    with pytest.raises(KeyboardInterrupt):
        result.read("big.bin")
    left = [t.name for t in _helper_threads() if t not in before]
    # Local: a reader thread still filling the buffer from a descriptor the
    # read has closed. Memory: the ChunkHasher's thread, blocked on its queue
    # for the life of the process.
    assert left == [], f"threads left running after Ctrl-C: {left}"
