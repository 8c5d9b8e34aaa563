"""Hashing large payloads on a second core while the first moves the bytes.

XXH3 hashes about 8 GB/s here: 13 ms of a 100 MB read or write that
otherwise costs 30 to 40 ms. ``xxhash`` releases the GIL while it hashes, as
``readinto`` and ``os.write`` do while they copy, so the two run side by
side: measured here, a 100 MB verified read went from 40 to 30 ms (a plain
``readinto`` with no digest: 28 ms) and a 100 MB write's hash cost nothing
over the write. Below :data:`HASH_ALONG_FROM` a thread costs more than it
saves, and everything stays on the calling thread.

The digest is the same as hashing in line: chunks are hashed in the order
they were handed over, by one thread.
"""

from __future__ import annotations

import contextlib
import os
import threading
from collections.abc import Callable
from queue import SimpleQueue
from typing import Any, TypeVar

__all__ = ["HASH_ALONG_FROM", "ChunkHasher", "hash_while", "read_file_along"]

#: From this many bytes a payload is hashed on a thread of its own.
HASH_ALONG_FROM = 4 << 20

T = TypeVar("T")


def hash_while(hasher: Any, view: memoryview, work: Callable[[], T]) -> T:
    """Run ``work()`` while ``hasher`` takes ``view`` on another thread; ``work``'s result.

    Returns only once both are done, so the caller may reuse ``view``'s
    memory afterwards. Small views, or a process that cannot start a
    thread, are hashed in line first.
    """
    if view.nbytes < HASH_ALONG_FROM:
        hasher.update(view)
        return work()
    errors: list[BaseException] = []

    def take() -> None:
        try:
            hasher.update(view)
        except BaseException as exc:  # noqa: BLE001 - reported on the caller's thread
            errors.append(exc)

    thread = threading.Thread(target=take, name="resultkit-hash", daemon=True)
    try:
        thread.start()
    except RuntimeError:  # no thread to be had (interpreter shutting down, limits)
        hasher.update(view)
        return work()
    try:
        return work()
    finally:
        thread.join()
        if errors:
            raise errors[0]


class ChunkHasher:
    """Hashes chunks of one buffer, in order, on a thread of its own.

    ``add(view)`` hands a chunk over and returns at once; the chunk's memory
    must stay unchanged until :meth:`hexdigest` (or :meth:`close`) returns.
    Always close it (``with``): an abandoned reader leaves no thread behind.

    >>> import xxhash
    >>> with ChunkHasher(xxhash.xxh3_128()) as h:
    ...     h.add(memoryview(b"abc"))
    ...     h.add(memoryview(b"def"))
    ...     h.hexdigest() == xxhash.xxh3_128(b"abcdef").hexdigest()
    True
    """

    def __init__(self, hasher: Any) -> None:
        self._hasher = hasher
        self._queue: SimpleQueue[memoryview | None] = SimpleQueue()
        self._errors: list[BaseException] = []
        self._thread: threading.Thread | None = threading.Thread(
            target=self._run, name="resultkit-hash", daemon=True
        )
        try:
            self._thread.start()
        except RuntimeError:  # no thread to be had: hash in line
            self._thread = None
        except BaseException:  # Ctrl-C while it started: it must not wait on its queue forever
            self._queue.put(None)
            with contextlib.suppress(RuntimeError):  # never started
                self._thread.join()
            raise

    def _run(self) -> None:
        while True:
            chunk = self._queue.get()
            if chunk is None:
                return
            if self._errors:
                continue  # drain: the error is reported once
            try:
                self._hasher.update(chunk)
            except BaseException as exc:  # noqa: BLE001 - reported on the caller's thread
                self._errors.append(exc)

    def add(self, view: memoryview) -> None:
        if self._thread is None:
            self._hasher.update(view)
        else:
            self._queue.put(view)

    def close(self) -> None:
        """Wait for every chunk handed over; raise what hashing raised."""
        self._stop()
        if self._errors:
            raise self._errors[0]

    def _stop(self) -> None:
        thread, self._thread = self._thread, None
        if thread is not None:
            self._queue.put(None)
            thread.join()

    def hexdigest(self) -> str:
        self.close()
        return str(self._hasher.hexdigest())

    def __enter__(self) -> ChunkHasher:
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop()


#: Threads that read a large local file into place while the caller hashes it.
FILE_READERS = 2
#: Bytes each reader fills per step (a huge page).
_FILE_CHUNK = 2 << 20


def read_file_along(fd: int, offset: int, view: memoryview, hasher: Any) -> int:
    """Fill ``view`` from ``fd`` at ``offset`` with :data:`FILE_READERS` threads, hashing in order.

    The readers take 2 MB steps in turn (``pread``: no shared file
    position) while this thread hashes each step as soon as it is in place,
    so copying and faulting in the destination uses both cores and the
    digest follows right behind. Returns the bytes read before the first
    short step (the end of a file shorter than ``view``), or -1 when no
    thread could be started (nothing was read). A reader's error is raised
    here once every reader has stopped.
    """
    size = view.nbytes
    steps = (size + _FILE_CHUNK - 1) // _FILE_CHUNK
    done = [threading.Event() for _ in range(steps)]
    got = [0] * steps
    claim = iter(range(steps)).__next__  # one step per call, thread-safe under the GIL
    stop = threading.Event()
    errors: list[BaseException] = []

    def read() -> None:
        try:
            while not stop.is_set():
                try:
                    i = claim()
                except StopIteration:
                    return
                start = i * _FILE_CHUNK
                got[i] = os.preadv(
                    fd, [view[start : min(size, start + _FILE_CHUNK)]], offset + start
                )
                done[i].set()
        except BaseException as exc:  # noqa: BLE001 - raised on the caller's thread
            errors.append(exc)
            stop.set()
            for event in done:
                event.set()  # the hashing thread must not wait for a step never read

    readers: list[threading.Thread] = []
    try:
        for _ in range(FILE_READERS):
            thread = threading.Thread(target=read, name="resultkit-read", daemon=True)
            readers.append(thread)  # before start: a Ctrl-C inside start() still stops it
            try:
                thread.start()
            except RuntimeError:  # no more threads to be had: the started ones read every step
                readers.pop()
                break
        if not readers:
            return -1
        filled = 0
        for i in range(steps):
            done[i].wait()
            if errors:
                break
            want = min(_FILE_CHUNK, size - i * _FILE_CHUNK)
            hasher.update(view[filled : filled + got[i]])
            filled += got[i]
            if got[i] < want:  # the file ends here
                break
    finally:
        # Set first: a reader not yet running when joined below sees it and
        # never touches the descriptor, which the caller closes next.
        stop.set()
        for thread in readers:
            with contextlib.suppress(RuntimeError):  # never started
                thread.join()
    if errors:
        raise errors[0]
    return filled
