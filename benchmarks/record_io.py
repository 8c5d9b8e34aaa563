"""resultkit's small-file steps, mirrored with stdlib + xxhash for ``record_layouts.py``.

The same digest (XXH3-128, ``xxh3_128:<hex>``), the same JSON record, the same
open flags, the same spare rewrite (``overwrite_spare``) and the same atomic swap
(``renameat2`` with ``RENAME_EXCHANGE`` through ctypes) as
``src/resultkit/results/_localio.py``, ``_localwrite.py`` and ``_smallpairs.py``;
plus ``fgetxattr`` for the xattr layout. Linux only, as the exchange is.
"""

from __future__ import annotations

import contextlib
import ctypes
import errno
import fcntl
import json
import os
import stat
from collections.abc import Iterator
from datetime import datetime, timezone

import xxhash

DIGEST_PREFIX = "xxh3_128:"
RECORD_SUFFIX = ".rkmeta"
SPARE_PAYLOAD = ".rkspare-payload" + RECORD_SUFFIX * 2
SPARE_RECORD = ".rkspare-record" + RECORD_SUFFIX * 2
XATTR_NAME = "user.resultkit"
RECORD_READ = 4096  # what resultkit reads of a record
SMALL_PAIR = 1 << 16  # the largest payload its small read takes

# resultkit's open flags (results/_localio.py, results/_smallpairs.py).
SPARE_FLAGS = os.O_WRONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC
READ_FLAGS = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC

_libc = ctypes.CDLL(None, use_errno=True)
_renameat2 = _libc.renameat2  # glibc 2.28+, as resultkit requires for the exchange
_renameat2.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_int, ctypes.c_char_p, ctypes.c_uint]
_renameat2.restype = ctypes.c_int
_AT_FDCWD = -100
_RENAME_EXCHANGE = 2
# os.getxattr asks with a 128-byte buffer first, then again with 64 KB: for a
# record (~260 bytes) that is 13 us against 4 us for one call with a 4 KB buffer.
_fgetxattr = _libc.fgetxattr
_fgetxattr.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_void_p, ctypes.c_size_t]
_fgetxattr.restype = ctypes.c_ssize_t
_XATTR_BUFFER = ctypes.create_string_buffer(RECORD_READ)


class Corrupt(Exception):
    """A payload whose size or digest is not the one its record names."""


def exchange(first: str, second: str) -> None:
    """Swap two names in one step (``renameat2(RENAME_EXCHANGE)``), as resultkit does."""
    if _renameat2(_AT_FDCWD, os.fsencode(first), _AT_FDCWD, os.fsencode(second), _RENAME_EXCHANGE):
        err = ctypes.get_errno()
        raise OSError(err, os.strerror(err), second)


def digest_of(data: bytes) -> str:
    return DIGEST_PREFIX + xxhash.xxh3_128(data).hexdigest()


def record_metadata(data: bytes) -> dict[str, str]:
    """The record resultkit writes for ``data`` (PickleSerializer, unsigned)."""
    return {
        "digest": digest_of(data),
        "serializer": "pickle",
        "size": str(len(data)),
        "version": "1",
        "written_at": datetime.now(timezone.utc).isoformat(),
    }


def record_bytes(meta: dict[str, str]) -> bytes:
    return json.dumps(meta, sort_keys=True).encode("utf-8")


def parse_record(raw: bytes) -> dict[str, str]:
    """Parse and check a record as resultkit's ``Record.from_metadata`` does (the gist)."""
    meta = json.loads(raw.decode("utf-8"))
    if int(meta["version"]) != 1 or not str(meta["digest"]).startswith(DIGEST_PREFIX):
        raise Corrupt("not a record")
    int(meta["size"])
    if datetime.fromisoformat(meta["written_at"]).tzinfo is None:
        raise Corrupt("naive time")
    return meta


def verified(data: bytes, meta: dict[str, str]) -> bytes:
    """``data`` if it is the payload ``meta`` names; :class:`Corrupt` otherwise."""
    if len(data) != int(meta["size"]) or digest_of(data) != meta["digest"]:
        raise Corrupt(f"payload of {len(data)} bytes does not match its record")
    return data


@contextlib.contextmanager
def folder_lock(folder: str) -> Iterator[None]:
    """resultkit's folder lock: the folder opened, ``flock`` exclusive, closed after."""
    fd = os.open(folder, os.O_RDONLY)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        yield
    finally:
        os.close(fd)


def overwrite_spare(path: str, data: bytes, record: bytes | None = None) -> None:
    """resultkit's ``overwrite_spare`` (write from the start, trim the rest); with
    ``record``, also set it as the file's xattr before it is closed."""
    fd = os.open(path, SPARE_FLAGS)
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode) or st.st_nlink != 1:
            raise OSError(errno.EINVAL, "not a usable spare", path)
        os.pwrite(fd, data, 0)
        if st.st_size > len(data):
            os.ftruncate(fd, len(data))
        if record is not None:
            os.setxattr(fd, XATTR_NAME, record)
    finally:
        os.close(fd)


def read_whole(path: str, limit: int) -> bytes:
    """resultkit's ``_read_whole``: one open, ``fstat``, one read."""
    fd = os.open(path, READ_FLAGS)
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise Corrupt(f"{path} is not a regular file")
        return os.read(fd, limit)
    finally:
        os.close(fd)


def get_record_attribute(fd: int) -> bytes:
    """The ``user.resultkit`` attribute of the open file ``fd`` (one ``fgetxattr``)."""
    n = _fgetxattr(fd, XATTR_NAME.encode(), _XATTR_BUFFER, RECORD_READ)
    if n < 0:
        err = ctypes.get_errno()
        raise Corrupt(f"no record attribute: {os.strerror(err)}")
    return ctypes.string_at(_XATTR_BUFFER, n)


def identity(path: str) -> tuple[int, int, int, int, int]:
    st = os.lstat(path)
    return (st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns)
