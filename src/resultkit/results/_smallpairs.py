"""The read of a small local pair, and the pairs a process has already verified.

A small value (payload up to 64 KB) is read in two reads: its record, then
its payload, each one ``open``, ``fstat`` and ``read``. A warm flow reads
the same unchanged pairs run after run, so a pair whose digest checked out
is kept in memory with the identity of both files as their ``fstat`` gave
it *before* they were read: device, inode, size, modification and change
times. The next read of the pair asks ``lstat`` of both paths (two calls
instead of eight) and takes the kept bytes only if both files are still
exactly those; anything else (a new write, which always gives the pair new
change times; a delete; a file put in place by another tool) reads the
files as before. The caller checks the digest of what it gets either way.

Kept only where the answer is trustworthy:

* both files are on a local filesystem whose change time the kernel sets on
  every change (ext2/3/4, xfs, btrfs, tmpfs, f2fs), never a network or FUSE
  one, where ``lstat`` may answer from a cache while a fresh ``open`` sees
  the new file. The root's filesystem is looked up once in
  ``/proc/self/mountinfo``, and the payload's own (``fstatfs`` on the open
  file) before a pair is kept: a subfolder may be another mount, and a
  mount may come after the first read;
* both files were last changed at least :data:`SETTLED` seconds, plus the
  filesystem's time step, before the read *started*. Timestamps move in
  clock ticks: a file changed twice within one tick could otherwise show
  the same times with other bytes. A file looked at after its tick has
  passed can change again only with a later time; measured from the start
  of the read, a reader held up between its reads and the keeping cannot
  keep bytes older than the times it recorded. Filesystems that store
  whole seconds (ext2/3/4 with 128-byte inodes) step by a second: a change
  time that is a whole second counts as one of those.

Bounded: at most :data:`_KEPT_BYTES` bytes in all, counting each kept
pair's bookkeeping (:data:`_ENTRY_COST` and its path) with its payload.
A forked child starts with the parent's kept pairs (the files' identities
hold there too) and a lock of its own.
"""

from __future__ import annotations

import ctypes
import os
import stat
import sys
import threading
import time
from typing import Any

from ._location import RECORD_SUFFIX
from ._record import Record, parsed_record, sidecar_metadata

__all__ = ["read_small_pair", "keeps_pairs", "SMALL_PAIR", "SETTLED"]

#: What :func:`read_small_pair` reads of a record (one is a few hundred bytes).
RECORD_READ = 4096
#: The largest payload :func:`read_small_pair` reads.
SMALL_PAIR = 1 << 16
#: A pair is kept only if both files were last changed this long (seconds) before its read.
SETTLED = 0.05
#: Bytes kept in all (payloads and bookkeeping); past it, the memory starts again.
_KEPT_BYTES = 32 << 20
#: What a kept pair costs besides its payload and path: its record, two identities and
#: the entry (measured: about 420 bytes for an unsigned record).
_ENTRY_COST = 512
_SECOND_NS = 1_000_000_000

#: How a result file is opened for reading: never through a final symlink, never
#: blocking (a FIFO put in its place), never inherited by a child process.
READ_FLAGS = (
    os.O_RDONLY
    | getattr(os, "O_NOFOLLOW", 0)
    | getattr(os, "O_NONBLOCK", 0)
    | getattr(os, "O_CLOEXEC", 0)
)

#: Filesystems (``mountinfo`` type names) whose change times every change moves.
_TRUSTED_TYPES = frozenset({"ext2", "ext3", "ext4", "xfs", "btrfs", "tmpfs", "f2fs"})
#: The same filesystems by ``statfs`` magic number (ext2/3/4 share one; linux/magic.h).
_TRUSTED_MAGIC = frozenset({0xEF53, 0x58465342, 0x9123683E, 0x01021994, 0xF2F52010})

_fstatfs: Any = None
if sys.platform.startswith("linux"):
    try:
        _fstatfs = ctypes.CDLL(None, use_errno=True).fstatfs
        _fstatfs.argtypes = [ctypes.c_int, ctypes.c_void_p]
        _fstatfs.restype = ctypes.c_int
    except (OSError, AttributeError):  # pragma: no cover - exotic libc: nothing is kept
        _fstatfs = None
_StatfsBuffer = ctypes.c_ulong * 32

# path -> (record file's identity, payload file's identity, payload, record)
_Identity = tuple[int, int, int, int, int]
_kept: dict[str, tuple[_Identity, _Identity, bytes, Record]] = {}
_kept_size = 0
_kept_lock = threading.Lock()
_trusted_roots: dict[str, bool] = {}


def _identity(st: os.stat_result) -> _Identity:
    return (st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns)


def _read_whole(
    path: str, limit: int, check_filesystem: bool = False
) -> tuple[bytes, os.stat_result, bool] | None:
    """Up to ``limit`` bytes of a regular file in one read, its status taken before the
    read, and (with ``check_filesystem``) whether the file is on a trusted filesystem;
    None for anything else.

    Never a FIFO, a device, a socket or a folder (one ``fstat``), and the
    open never follows a final symlink nor blocks.
    """
    try:
        fd = os.open(path, READ_FLAGS)
    except OSError:
        return None
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            return None
        # A regular file gives all it has up to limit in one read; a short one
        # (FUSE, a signal) only sends the caller the general way.
        data = os.read(fd, limit)
        return data, st, check_filesystem and _on_trusted_filesystem(fd)
    except OSError:
        return None
    finally:
        os.close(fd)


def _on_trusted_filesystem(fd: int) -> bool:
    """Whether the open file ``fd`` is on a filesystem of :data:`_TRUSTED_MAGIC` (Linux)."""
    if _fstatfs is None:
        return False
    # struct statfs (120 bytes) starts with f_type, a long on every 64-bit Linux but s390x
    # (whose big-endian int reads as no known number: nothing kept). About 3 us a call,
    # made only for a settled pair read from the disk: a device number says nothing
    # here, as an unmounted filesystem's goes to the next one mounted.
    status = _StatfsBuffer()
    if _fstatfs(fd, status) != 0:
        return False
    return (status[0] & 0xFFFFFFFF) in _TRUSTED_MAGIC


def _settled(st: os.stat_result, started: int) -> bool:
    """Whether the file's last change was at least :data:`SETTLED` seconds and one step of
    its filesystem's times before ``started`` (``time.time_ns()``)."""
    changed = st.st_ctime_ns
    # A filesystem that stores whole seconds shows every change as one; a change time
    # of a finer filesystem is a whole second once in 10**9. Either way: a second.
    step = _SECOND_NS if changed % _SECOND_NS == 0 else 0
    return changed + step + int(SETTLED * 1e9) <= started


def read_small_pair(path: str, keep: bool) -> tuple[bytes, Record] | None:
    """The small pair at ``path``: the payload's bytes and the record that names them.

    ``keep``: the folder is on a filesystem :func:`keeps_pairs` trusts, so a
    verified pair is kept and served again while both files are unchanged
    (see the module docstring). Returns None for anything but a settled
    small pair (no record, a payload over 64 KB or of another length than its
    record says, any error): the caller then reads the general way.
    """
    started = 0
    if keep:
        kept = _kept.get(path)
        if kept is not None:
            try:
                same = (
                    _identity(os.lstat(path + RECORD_SUFFIX)) == kept[0]
                    and _identity(os.lstat(path)) == kept[1]
                )
            except OSError:
                same = False
            if same:
                return kept[2], kept[3]
        # Before either file is looked at: their age is judged from here.
        started = time.time_ns()
    found = _read_whole(path + RECORD_SUFFIX, RECORD_READ)
    if found is None:
        return None
    raw, record_st, _ = found
    if len(raw) >= RECORD_READ:
        return None
    try:
        record = parsed_record(sidecar_metadata(raw))
    except (ValueError, RecursionError):
        return None
    if record.size > SMALL_PAIR:
        return None
    keep = keep and _settled(record_st, started)
    payload = _read_whole(path, record.size + 1, check_filesystem=keep)
    if payload is None:
        return None
    data, payload_st, trusted = payload
    if len(data) != record.size:
        return None
    # The record on the payload's filesystem (one device: one filesystem).
    if trusted and record_st.st_dev == payload_st.st_dev and _settled(payload_st, started):
        _keep(path, record_st, payload_st, data, record)
    return data, record


def _keep(
    path: str, record_st: os.stat_result, payload_st: os.stat_result, data: bytes, record: Record
) -> None:
    """Keep a settled pair on a trusted filesystem if its payload is the one its record names."""
    if Record.digest_of(data) != record.digest:
        return  # not the payload its record names (a write in between): not kept
    global _kept_size
    cost = _cost(path, data)
    entry = (_identity(record_st), _identity(payload_st), data, record)
    with _kept_lock:
        old = _kept.get(path)
        size = _kept_size - (0 if old is None else _cost(path, old[2]))
        if size + cost > _KEPT_BYTES:
            _kept.clear()
            size = 0
        _kept[path] = entry
        _kept_size = size + cost


def _cost(path: str, data: bytes) -> int:
    """What keeping ``data`` for ``path`` counts against :data:`_KEPT_BYTES`."""
    return len(data) + len(path) + _ENTRY_COST


def forget_kept_pairs() -> None:
    """Drop every kept pair (tests; a process that wants its memory back)."""
    global _kept_size
    with _kept_lock:
        _kept.clear()
        _kept_size = 0


def keeps_pairs(root: str) -> bool:
    """Whether pairs under the folder ``root`` may be kept: it is on a local filesystem
    whose change times every change moves (see the module docstring).

    Example:
        >>> isinstance(keeps_pairs("/"), bool)
        True
    """
    found = _trusted_roots.get(root)
    if found is None:
        found = _filesystem_type(root) in _TRUSTED_TYPES
        if len(_trusted_roots) >= 256:
            _trusted_roots.clear()
        _trusted_roots[root] = found
    return found


def _filesystem_type(folder: str) -> str | None:
    """The type of the filesystem ``folder`` is on, from ``/proc/self/mountinfo``; None
    when unknown (no such file: not Linux)."""
    try:
        with open("/proc/self/mountinfo", encoding="utf-8", errors="replace") as f:
            lines = f.read().splitlines()
    except OSError:
        return None
    target = os.path.realpath(folder)
    best, best_type = -1, None
    for line in lines:
        fields = line.split(" ")
        try:
            mount_point = _unescape(fields[4])
            fs_type = fields[fields.index("-", 6) + 1]
        except (IndexError, ValueError):
            continue
        inside = target == mount_point or target.startswith(mount_point.rstrip("/") + "/")
        # The last of equally long mount points is the one on top.
        if inside and len(mount_point) >= best:
            best, best_type = len(mount_point), fs_type
    return best_type


def _unescape(field: str) -> str:
    """A mountinfo path: spaces, tabs, newlines and backslashes are octal escapes."""
    if "\\" not in field:
        return field
    return field.encode().decode("unicode_escape").encode("latin-1").decode("utf-8", "replace")


def _after_fork_in_child() -> None:
    # The lock may have been held by another thread at the fork: the child's is new.
    global _kept_lock
    _kept_lock = threading.Lock()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork_in_child)
