"""Fast local-file I/O used by the base when the filesystem is the local disk.

* :class:`PreallocatedFile` reserves disk blocks ahead of the writes
  (Linux ``fallocate``). On ext4 a rename over an existing file otherwise
  forces the new file's delayed-allocation data to be flushed first
  (``auto_da_alloc``), which makes every atomic publish of a large file
  several times slower than writing it in place. Durability is unchanged:
  without ``fsync=True`` a power loss may leave a payload that fails its
  checksum, which resultkit reports (and a target recomputes), never a
  wrong value.
* :func:`exchange` swaps two names atomically (Linux ``renameat2`` with
  ``RENAME_EXCHANGE``) and :func:`overwrite_spare` rewrites a spare file in
  place: a small publish then reuses the replaced file as the next spare
  instead of creating and freeing an inode per write (on ext4 with
  ``discard`` freeing one costs about 0.2 ms; an exchange about 10 us).
* :func:`hold_replaced` and :func:`release_along` move the freeing of a
  large replaced payload off the writer's path: the old file is opened
  before the rename and its last descriptor closed on another thread,
  where the kernel frees its blocks (about 9 ms per 100 MB here).
"""

from __future__ import annotations

import contextlib
import ctypes
import errno
import os
import stat
import sys
import threading
from typing import Any

__all__ = [
    "PreallocatedFile",
    "fsync_folder",
    "exchange",
    "exchange_available",
    "overwrite_spare",
    "discard_spare",
    "hold_replaced",
    "release_along",
    "wait_for_releases",
]

#: A replaced payload from this size is freed on another thread.
RELEASE_ALONG_FROM = 8 << 20

_MIN_STEP = 1 << 16
_MAX_STEP = 64 << 20

_fallocate: Any = None
if sys.platform.startswith("linux"):
    try:
        _libc = ctypes.CDLL(None, use_errno=True)
        _fallocate = _libc.fallocate
        _fallocate.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_int64, ctypes.c_int64]
        _fallocate.restype = ctypes.c_int
    except (OSError, AttributeError):  # pragma: no cover - exotic libc
        _fallocate = None

_renameat2: Any = None
if sys.platform.startswith("linux"):
    try:
        _renameat2 = ctypes.CDLL(None, use_errno=True).renameat2  # glibc 2.28+
        _renameat2.argtypes = [
            ctypes.c_int,
            ctypes.c_char_p,
            ctypes.c_int,
            ctypes.c_char_p,
            ctypes.c_uint,
        ]
        _renameat2.restype = ctypes.c_int
    except (OSError, AttributeError):  # pragma: no cover - older libc: the rename path
        _renameat2 = None
_AT_FDCWD = -100
_RENAME_EXCHANGE = 2
# The call exists but this kernel or filesystem cannot exchange (NFS, FUSE, old kernels).
_NO_EXCHANGE = frozenset({errno.EINVAL, errno.ENOSYS, errno.EOPNOTSUPP, errno.EXDEV})


class PreallocatedFile:
    """A write-only file on a raw descriptor that allocates its blocks ahead of the data.

    Uses ``fallocate(2)`` directly (never glibc's slow emulation); where the
    filesystem does not support it, it simply writes. ``fsync=True`` flushes
    the file to the disk when it is closed.
    """

    def __init__(self, path: str, fsync: bool = False) -> None:
        # O_EXCL: never write into a file someone else created.
        self.fd = os.open(
            path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_CLOEXEC", 0), 0o644
        )
        self._fsync = fsync
        self.pos = 0
        self._allocated = 0
        self._small_bytes = 0  # written in writes under _MIN_STEP: they set the step ahead
        self._prealloc = _fallocate is not None

    def _reserve(self, end: int, small: bool) -> None:
        # The first write is reserved exactly (small payloads come in one write,
        # and giving back unused blocks with ftruncate costs more than it saves);
        # after that, small writes reserve ahead in steps that double with the
        # bytes they brought. A large write is reserved exactly: a footer after
        # 100 MB of arrays must not reserve (then give back) 64 MB.
        needed = end - self._allocated
        ahead = 0
        if self._allocated and small:
            ahead = min(max(2 * self._small_bytes, _MIN_STEP), _MAX_STEP)
        step = max(needed, ahead)
        if _fallocate(self.fd, 0, self._allocated, step) != 0:
            err = ctypes.get_errno()
            if err == errno.ENOSPC and wait_for_releases():
                # Replaced payloads were still being freed: their blocks are back now.
                if _fallocate(self.fd, 0, self._allocated, step) == 0:
                    self._allocated += step
                    return
                err = ctypes.get_errno()
            if err == errno.ENOSPC and step > needed:
                # Reserving ahead must never fail a value that fits: from now on
                # reserve exactly what each write needs.
                self._prealloc = False
                return
            if err in (errno.EOPNOTSUPP, errno.ENOSYS, errno.EINVAL, errno.ENOTTY):
                self._prealloc = False
                return
            raise OSError(err, os.strerror(err))
        self._allocated += step

    def write(self, data: Any) -> int:
        view = memoryview(data).cast("B")
        n = view.nbytes
        small = n < _MIN_STEP
        if small:
            self._small_bytes += n
        if self._prealloc and self.pos + n > self._allocated:
            self._reserve(self.pos + n, small)
        _write_all(self.fd, view)
        self.pos += n
        return n

    def flush(self) -> None:
        pass

    def fileno(self) -> int:
        return self.fd

    def close(self) -> None:
        if self.fd < 0:
            return
        try:
            if self._allocated > self.pos:
                os.ftruncate(self.fd, self.pos)  # give back what was reserved and not used
            if self._fsync:
                os.fsync(self.fd)
        finally:
            os.close(self.fd)
            self.fd = -1

    def __enter__(self) -> PreallocatedFile:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def fsync_folder(path: str) -> None:
    """Flush a folder's entries (a rename in it) to the disk."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def exchange_available() -> bool:
    """Whether this system has ``renameat2`` (a filesystem may still refuse it)."""
    return _renameat2 is not None


def exchange(first: str, second: str) -> bool:
    """Swap the files at two paths in one atomic step; both must exist.

    Returns False, changing nothing, where the call is missing or the
    filesystem cannot exchange (``EINVAL``, ``ENOSYS``...): the caller
    falls back to a rename. Other failures raise ``OSError``.
    """
    if _renameat2 is None:
        return False
    if _renameat2(_AT_FDCWD, os.fsencode(first), _AT_FDCWD, os.fsencode(second), _RENAME_EXCHANGE):
        err = ctypes.get_errno()
        if err in _NO_EXCHANGE:
            return False
        raise OSError(err, os.strerror(err), second)
    return True


_SPARE_FLAGS = (
    os.O_WRONLY
    | getattr(os, "O_NOFOLLOW", 0)
    | getattr(os, "O_NONBLOCK", 0)
    | getattr(os, "O_CLOEXEC", 0)
)


def overwrite_spare(path: str, data: Any, fsync: bool = False) -> bool:
    """Write ``data`` over the spare file at ``path`` in place; False if it is not usable.

    Writes from the start, then trims what is left of the old bytes: never a
    truncation to zero first, which on ext4 frees the blocks and costs as
    much as a new file. A spare that is missing, a symlink, not a regular
    file or linked from elsewhere (a hard link planted to make us write
    into another file) is not written; one that is not a regular file is
    removed if it can be, so the caller's next publish makes a fresh one.
    """
    try:
        fd = os.open(path, _SPARE_FLAGS)
    except FileNotFoundError:
        return False
    except OSError:  # a symlink (ELOOP), a folder (EISDIR), a FIFO (ENXIO)
        discard_spare(path)
        return False
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode) or st.st_nlink != 1:
            discard_spare(path)
            return False
        view = memoryview(data).cast("B")
        n = view.nbytes
        _write_all(fd, view, at=0)
        if st.st_size > n:
            os.ftruncate(fd, n)
        if fsync:
            os.fsync(fd)
    finally:
        os.close(fd)
    return True


def _write_all(fd: int, view: memoryview, at: int | None = None) -> None:
    """Write all of ``view`` to ``fd`` (from offset ``at`` with ``pwrite``, else where it is).

    A full disk first waits for replaced payloads still being freed (see
    :func:`release_along`), then tries again; once nothing is left to free,
    it raises.
    """
    done, n = 0, view.nbytes
    while done < n:
        try:
            if at is None:
                done += os.write(fd, view[done:])
            else:
                done += os.pwrite(fd, view[done:], at + done)
        except OSError as exc:
            if exc.errno != errno.ENOSPC or not wait_for_releases():
                raise


def discard_spare(path: str) -> None:
    """Remove a spare (a file or link; a folder planted there is left, and never used)."""
    with contextlib.suppress(OSError):
        os.unlink(path)


# Descriptors of replaced payloads not yet closed, and the threads closing them.
_pending: list[int] = []
_closers: set[threading.Thread] = set()
_pending_guard = threading.Lock()


def hold_replaced(path: str) -> int | None:
    """A descriptor on the large regular file at ``path`` that is about to be replaced, or None.

    Held across the rename, it keeps the old file's blocks allocated until
    :func:`release_along` closes it, so the rename itself frees nothing.
    """
    if os.name != "posix":  # elsewhere an open file cannot be renamed over
        return None
    try:
        st = os.lstat(path)
        if not stat.S_ISREG(st.st_mode) or st.st_size < RELEASE_ALONG_FROM:
            return None
        flags = os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_NOFOLLOW", 0)
        fd = os.open(path, flags | getattr(os, "O_CLOEXEC", 0))
    except OSError:
        return None
    return fd


def release_along(fd: int) -> None:
    """Close ``fd`` (from :func:`hold_replaced`) on another thread."""
    with _pending_guard:
        _pending.append(fd)
    _start_closer()


def _start_closer() -> None:
    thread = threading.Thread(target=_close_pending, name="resultkit-release", daemon=True)
    with _pending_guard:
        try:
            thread.start()
        except RuntimeError:  # no thread to be had: the next write's wait closes them
            return
        _closers.add(thread)


def _close_pending() -> None:
    try:
        while True:
            with _pending_guard:
                if not _pending:
                    return
                fd = _pending.pop()
            with contextlib.suppress(OSError):
                os.close(fd)
    finally:
        with _pending_guard:
            _closers.discard(threading.current_thread())


def _after_fork_in_child() -> None:
    # The guard may have been held by another thread at the fork, and the
    # descriptors are the child's copies: the parent frees its own.
    global _pending_guard
    _pending_guard = threading.Lock()
    for fd in _pending:
        with contextlib.suppress(OSError):
            os.close(fd)
    _pending.clear()
    _closers.clear()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork_in_child)


def wait_for_releases() -> bool:
    """Free every replaced payload still held (see :func:`release_along`); whether any was.

    A write that finds the disk full calls this and tries once more: the
    space a replaced payload held is back before the write gives up.
    """
    with _pending_guard:
        fds, closers = _pending[:], list(_closers)
        _pending.clear()
    for fd in fds:
        with contextlib.suppress(OSError):
            os.close(fd)
    for thread in closers:
        thread.join()
    return bool(fds or closers)
