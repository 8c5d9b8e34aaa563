"""The local publish: a record that vouches for both payloads, the payload, the record alone.

Each step replaces one file (the record ``P.rkmeta`` or the payload ``P``)
atomically. Where the filesystem can swap two names (Linux ``renameat2``
with ``RENAME_EXCHANGE``: ext4, xfs, btrfs, tmpfs) a step rewrites a spare
file of the folder in place and swaps it with the file it replaces, which
becomes the spare of the next step: no inode is created or freed, which is
what a temp file and ``os.replace`` cost (measured on ext4 with ``discard``:
about 30 us a swap against 200 us). Elsewhere, and for payloads above
:data:`SMALL_LIMIT` (written before the lock is taken), a step writes a
temp file and renames it over the old one.

Every step happens under the folder lock (the spares are the folder's),
so writers of one folder publish one at a time; readers take no lock. A
reader that opened a file just before it became a spare may see it
rewritten under it: the digest tells, and the reader reads again.
"""

from __future__ import annotations

import contextlib
import errno
import os
import stat
import threading
from typing import TYPE_CHECKING, Any

from ._localio import (
    PreallocatedFile,
    discard_spare,
    exchange,
    fsync_folder,
    hold_replaced,
    overwrite_spare,
    release_along,
)
from ._localsafety import refuse_long_name, sweep_dead_writers
from ._location import LOCKS_FOLDER, RECORD_SUFFIX
from ._locks import folder_lock, publish_lock
from ._record import final_sidecar, with_previous
from .storage import Metadata

if TYPE_CHECKING:
    from ._localstorage import LocalFileStorage

__all__ = [
    "LocalWriter",
    "SMALL_LIMIT",
    "SPARE_PAYLOAD",
    "SPARE_RECORD",
    "link_if_absent",
    "remove_spares",
]

#: Payloads up to this size are buffered and written in place of a spare
#: under the folder lock; larger ones stream to a temp file first.
SMALL_LIMIT = 1 << 20
#: The folder's spare files. Both end in ``.rkmeta.rkmeta``: hidden from
#: listings like every record, and no key's record can have the name (a
#: key ending in ``.rkmeta`` is refused).
SPARE_PAYLOAD = ".rkspare-payload" + RECORD_SUFFIX * 2
SPARE_RECORD = ".rkspare-record" + RECORD_SUFFIX * 2

# Folders known to exist (a write spares its makedirs); a folder removed
# since is made again when its lock cannot be opened.
_known_folders: set[str] = set()
_known_guard = threading.Lock()


def _is_regular(path: str, up_to: int | None = None) -> bool | None:
    """True for a regular file (of at most ``up_to`` bytes), None when nothing is
    there, False for anything else."""
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        return None
    return stat.S_ISREG(st.st_mode) and (up_to is None or st.st_size <= up_to)


def remove_spares(folder: str) -> None:
    """Remove a folder's spares (a delete leaves no old bytes and no file of ours behind)."""
    for name in (SPARE_PAYLOAD, SPARE_RECORD):
        discard_spare(os.path.join(folder, name))


class LocalWriter:
    """Buffers a small payload in memory or streams a large one to a temp file; commit publishes."""

    def __init__(self, storage: LocalFileStorage, path: str) -> None:
        self._storage = storage
        self._path = path
        self._parent = os.path.dirname(path)
        self._buffer: bytearray | None = bytearray()
        self._file: PreallocatedFile | None = None
        self._tmp = self._tmp_record = ""  # named when first needed
        # Lock files come and go (their folders are pruned): no spares there.
        self._swap = storage.exchange and (
            os.sep + LOCKS_FOLDER + os.sep not in path[len(storage.root) :]
        )

    def write(self, data: Any) -> int:
        if self._buffer is not None:
            n = memoryview(data).nbytes
            if len(self._buffer) + n <= SMALL_LIMIT:
                self._buffer += data
                return n
            self._spill()
        assert self._file is not None
        return self._file.write(data)

    def _ensure_folder(self, gone: bool = False) -> None:
        if gone:  # the folder was removed since it was known
            with _known_guard:
                _known_folders.discard(self._parent)
        if self._parent not in _known_folders:
            refuse_long_name(self._path)  # before its folders are made
            os.makedirs(self._parent, exist_ok=True)
            with _known_guard:
                if len(_known_folders) > 4096:
                    _known_folders.clear()
                _known_folders.add(self._parent)
        sweep_dead_writers(self._parent)  # at most once a minute per folder

    def _temps(self) -> tuple[str, str]:
        if not self._tmp:
            self._tmp, self._tmp_record = self._storage._temp_names(self._path)
        return self._tmp, self._tmp_record

    def _spill(self) -> None:
        """From here on the payload streams to a temp file, written before the lock."""
        self._ensure_folder()
        buffered, self._buffer = self._buffer, None
        try:
            self._file = PreallocatedFile(self._temps()[0], fsync=self._storage.fsync)
        except FileNotFoundError:
            self._ensure_folder(gone=True)
            self._file = PreallocatedFile(self._temps()[0], fsync=self._storage.fsync)
        if buffered:
            self._file.write(buffered)

    def commit(self, metadata: Metadata) -> None:
        if self._file is not None:
            self._file.close()
        else:
            self._ensure_folder()
        url = f"{self._storage.protocol}://{self._path}"  # delete's lock key for this path
        # The same order as delete: the key's lock, then the folder's.
        with publish_lock(url):
            try:
                lock = folder_lock(self._parent)
                lock.__enter__()
            except FileNotFoundError:  # the folder was removed since it was known: again
                self._ensure_folder(gone=True)
                lock = folder_lock(self._parent)
                lock.__enter__()
            try:
                self._publish(metadata)
            finally:
                lock.__exit__(None, None, None)

    def _publish(self, metadata: Metadata) -> None:
        storage, path = self._storage, self._path
        record = path + RECORD_SUFFIX
        fsync = storage.fsync
        # The replaced payload is kept as the next spare only if it is small:
        # a large one is freed, never left beside its successor.
        payload_kind = _is_regular(path, SMALL_LIMIT)
        # A small payload goes into the payload spare first: if the disk is
        # full it fails here, before anything visible has changed.
        spare = os.path.join(self._parent, SPARE_PAYLOAD)
        in_spare = (
            self._buffer is not None
            and self._swap
            and payload_kind
            and overwrite_spare(spare, self._buffer, fsync)
        )
        first = with_previous(
            metadata,
            storage._cat_or_none(record),
            lambda: _size(path),
            lambda: storage._digest_or_none(path),
        )
        final = final_sidecar(metadata)
        two_steps = first == final  # nothing old to vouch for: record, then payload
        self._put_record(record, final if two_steps else first)  # vouches for old and new
        if in_spare:
            if not exchange(spare, path):  # this filesystem cannot: rename from now on
                storage.exchange = self._swap = False
                os.replace(spare, path)
        else:
            tmp = self._temps()[0]
            if self._file is None:
                assert self._buffer is not None
                with PreallocatedFile(tmp, fsync=fsync) as f:
                    f.write(self._buffer)
            # A large replaced payload is freed on another thread, after the rename.
            held = None
            try:
                held = hold_replaced(path) if payload_kind is False else None
                self._replace(tmp, path, spare if payload_kind else None)
            finally:
                if held is not None:
                    release_along(held)
        if not two_steps:
            self._put_record(record, final)  # the publish is complete
        if fsync:
            fsync_folder(self._parent)

    def _put_record(self, record: str, data: bytes) -> None:
        spare = os.path.join(self._parent, SPARE_RECORD)
        kind = _is_regular(record) if self._swap else None
        if kind and overwrite_spare(spare, data, self._storage.fsync):
            if exchange(spare, record):
                return
            self._storage.exchange = self._swap = False
            os.replace(spare, record)
            return
        tmp = self._temps()[1]
        with PreallocatedFile(tmp, fsync=self._storage.fsync) as f:
            f.write(data)
        self._replace(tmp, record, spare if kind else None)

    def _replace(self, tmp: str, target: str, spare: str | None) -> None:
        """Move ``tmp`` over ``target``; with ``spare``, keep the old file as the folder's spare."""
        if spare is not None and self._swap and exchange(tmp, target):
            try:
                os.rename(tmp, spare)  # the replaced file, kept for the next write
            except OSError:  # a folder planted at the spare's name: no spare here
                os.unlink(tmp)
            return
        if spare is not None and self._swap:  # exchange refused: rename from now on
            self._storage.exchange = self._swap = False
        os.replace(tmp, target)

    def abort(self) -> None:
        if self._file is not None:
            with contextlib.suppress(OSError):
                self._file.close()
        self._buffer = None
        for leftover in (self._tmp, self._tmp_record):
            if not leftover:
                continue
            with contextlib.suppress(OSError):
                os.unlink(leftover)


def _size(path: str) -> int | None:
    try:
        return os.stat(path).st_size
    except OSError:
        return None


def link_if_absent(tmp: str, path: str, data: Any) -> bool:
    """Give the whole file ``tmp`` (holding ``data``) the name ``path`` unless it exists;
    whether it did.

    Where the filesystem has no hard links, an exclusive create at ``path``
    (``O_EXCL``) filled with ``data``, removed again if filling it fails (there,
    a reader may see the marker before it is filled, and a kill while filling
    leaves it part-filled).
    """
    try:
        os.link(tmp, path)
        return True
    except FileExistsError:
        return False
    except OSError as exc:
        if exc.errno not in (
            errno.EPERM,
            errno.EOPNOTSUPP,
            errno.ENOTSUP,
            errno.EMLINK,
            errno.ENOSYS,
        ):
            raise
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_CLOEXEC", 0))
    except FileExistsError:
        return False
    try:
        with os.fdopen(fd, "wb") as target:
            target.write(data)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(path)
        raise
    return True
