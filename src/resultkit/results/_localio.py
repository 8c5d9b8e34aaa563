"""Fast local-file I/O used by the base when the filesystem is the local disk.

* :class:`PreallocatedFile` reserves disk blocks ahead of the writes
  (Linux ``fallocate``). On ext4 a rename over an existing file otherwise
  forces the new file's delayed-allocation data to be flushed first
  (``auto_da_alloc``), which makes every atomic publish of a large file
  several times slower than writing it in place. Durability is unchanged:
  without ``fsync=True`` a power loss may leave a payload that fails its
  checksum, which resultkit reports (and a target recomputes), never a
  wrong value.
* :class:`HashingReader` hashes what the deserializer reads, so a payload is
  loaded and verified in one pass with one copy.
"""

from __future__ import annotations

import ctypes
import errno
import os
import sys
from typing import Any

from ._record import DIGEST_PREFIX, new_hasher

__all__ = ["PreallocatedFile", "HashingReader", "fsync_folder"]

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
        self._prealloc = _fallocate is not None

    def _reserve(self, end: int) -> None:
        # The first write is reserved exactly (small payloads come in one write,
        # and giving back unused blocks with ftruncate costs more than it saves);
        # after that, reserve ahead in doubling steps.
        needed = end - self._allocated
        ahead = 0 if self._allocated == 0 else min(max(self._allocated, _MIN_STEP), _MAX_STEP)
        step = max(needed, ahead)
        if _fallocate(self.fd, 0, self._allocated, step) != 0:
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
        if self._prealloc and self.pos + n > self._allocated:
            self._reserve(self.pos + n)
        done = 0
        while done < n:
            done += os.write(self.fd, view[done:])
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


class HashingReader:
    """Reads a binary file, hashing and counting every byte handed out."""

    def __init__(self, raw: Any) -> None:
        self._raw = raw
        self._hash = new_hasher()
        self.size = 0

    def read(self, n: int = -1) -> bytes:
        data: bytes = self._raw.read(n)
        self._hash.update(data)
        self.size += len(data)
        return data

    def readinto(self, buffer: Any) -> int:
        n: int = self._raw.readinto(buffer)
        view = memoryview(buffer).cast("B")[:n]
        self._hash.update(view)
        self.size += n
        return n

    def readline(self, limit: int = -1) -> bytes:
        data: bytes = self._raw.readline(limit)
        self._hash.update(data)
        self.size += len(data)
        return data

    def drain(self) -> None:
        """Read (and hash) whatever the deserializer left unread."""
        while True:
            chunk = self.read(1 << 20)
            if not chunk:
                return

    def hexdigest(self) -> str:
        return DIGEST_PREFIX + str(self._hash.hexdigest())
