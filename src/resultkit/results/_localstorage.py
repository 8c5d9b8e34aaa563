"""The local-disk storage: plain files, a temp file + ``os.replace`` publish.

A writer renames the new record into place first (it vouches for the old
payload and the new one, see ``with_previous``), then the payload, under an
exclusive folder lock that orders writers of the folder. Readers take no
lock: a writer stopped between its two renames blocks no reader, and a
writer killed there leaves a pair that reads as the old or the new value.
Temporary files of writers that died are removed by the next writer of the
folder.
"""

from __future__ import annotations

import contextlib
import errno
import os
import stat
from typing import Any, BinaryIO

from fsspec.implementations.local import LocalFileSystem

from ..errors import UnsafeLocationError
from ._fsstorage import FileSystemStorage
from ._localio import PreallocatedFile, fsync_folder
from ._localsafety import check_inside, sweep_dead_writers
from ._location import LOCKS_FOLDER, RECORD_SUFFIX, short
from ._locks import folder_lock, publish_lock
from ._record import Record, final_sidecar, with_previous
from .storage import Metadata, StorageWriter

__all__ = ["LocalFileStorage"]


class LocalFileStorage(FileSystemStorage):
    """Pairs of files under a local folder.

    Args:
        root: the absolute folder.
        fsync: flush the payload, its record and the folder to the disk at
            each publish, so a value survives a power loss.
    """

    def __init__(self, root: str, *, fsync: bool = False) -> None:
        super().__init__(LocalFileSystem(), root)
        self.fsync = fsync

    def path(self, key: str) -> str:
        path = super().path(key)
        check_inside(self.root, os.path.dirname(path))
        return path

    def exists(self, key: str) -> bool:
        return os.path.isfile(self.path(key))

    def _head_path(self, path: str) -> bool:
        return os.path.isfile(path)

    def _cat_or_none(self, path: str) -> bytes | None:
        stream = _open_regular(path)
        if stream is None:
            return None
        with stream:
            data = stream.read(_MAX_RECORD + 1)
        if len(data) > _MAX_RECORD:
            return b"{}"  # no record is that large: unreadable, so the pair is damaged
        return data

    def _digest_or_none(self, path: str) -> str | None:
        stream = _open_regular(path)
        if stream is None:
            return None
        with stream:
            return Record.digest_of_stream(stream)

    def open_reader(self, key: str) -> tuple[BinaryIO, Metadata] | None:
        path = self.path(key)
        # Record first, then the payload: a publish renames in the same order,
        # so the record read vouches for the payload opened after it (an open
        # descriptor keeps its file whatever is renamed later).
        raw = self._cat_or_none(path + RECORD_SUFFIX)
        stream = _open_regular(path)
        if stream is None:
            return None
        return stream, ({} if raw is None else self._parse_sidecar(key, raw))

    def open_writer(self, key: str) -> StorageWriter:
        return _LocalWriter(self, self.path(key))

    def delete(self, key: str) -> bool:
        path = self.path(key)
        folder = os.path.dirname(path)
        if not os.path.isdir(folder):
            return False
        # A writer's two renames and a delete never interleave: a delete between
        # them would leave a payload without its record.
        with publish_lock(self.url(key)), folder_lock(folder):
            return self._delete_pair(key)

    def _remove(self, path: str) -> bool:
        try:
            os.unlink(path)
        except FileNotFoundError:
            return False
        locks = os.path.join(self.root, LOCKS_FOLDER)
        if path.startswith(locks + os.sep):  # a released lock leaves no empty folders
            folder = os.path.dirname(path)
            while folder.startswith(locks):
                try:
                    os.rmdir(folder)
                except OSError:  # not empty (another lock), or gone
                    break
                folder = os.path.dirname(folder)
        return True

    def put_if_absent(self, key: str, data: Any, metadata: Metadata) -> bool:
        path = self.path(key)
        for _ in range(20):
            os.makedirs(os.path.dirname(path), exist_ok=True)
            try:
                with PreallocatedFile(path, fsync=self.fsync) as f:  # O_EXCL create
                    f.write(data)
            except FileExistsError:
                return False
            except FileNotFoundError:
                continue  # the folder was pruned (a lock released) in between: again
            return True
        raise FileNotFoundError(f"the folder of {path} keeps disappearing")


#: No record is larger than this (a few hundred bytes, two records at most).
_MAX_RECORD = 64 * 1024


def _open_regular(path: str) -> BinaryIO | None:
    """Open a regular file for reading, or None when nothing is there.

    The last component is not followed if it is a symlink, and a FIFO or a
    device planted in the root is refused instead of blocking a reader or
    feeding it without end.
    """
    flags = os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_NONBLOCK", 0)
    try:
        fd = os.open(path, flags | getattr(os, "O_CLOEXEC", 0))
    except (FileNotFoundError, IsADirectoryError, NotADirectoryError):
        return None
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            raise UnsafeLocationError(
                f"{short(path)} is a symlink; results never follow links", location=path
            ) from None
        raise
    if not stat.S_ISREG(os.fstat(fd).st_mode):
        os.close(fd)
        raise UnsafeLocationError(
            f"{short(path)} is not a regular file (a FIFO, a device or a folder was put in "
            "its place); remove it and write the result again",
            location=path,
        )
    return os.fdopen(fd, "rb", buffering=0)


def _size(path: str) -> int | None:
    try:
        return os.stat(path).st_size
    except OSError:
        return None


class _LocalWriter:
    """The serializer writes into a preallocated temp file; commit renames record, then payload."""

    def __init__(self, storage: LocalFileStorage, path: str) -> None:
        self._storage = storage
        self._path = path
        self._parent = os.path.dirname(path)
        self._tmp, self._tmp_record = storage._temp_names(path)
        os.makedirs(self._parent, exist_ok=True)
        sweep_dead_writers(self._parent)
        self._file = PreallocatedFile(self._tmp, fsync=storage.fsync)

    def write(self, data: Any) -> int:
        return self._file.write(data)

    def commit(self, metadata: Metadata) -> None:
        fsync = self._storage.fsync
        self._file.close()
        record = self._path + RECORD_SUFFIX
        storage = self._storage
        with publish_lock(storage.url(self._path)), folder_lock(self._parent):
            first = with_previous(
                metadata,
                storage._cat_or_none(record),
                lambda: _size(self._path),
                lambda: storage._digest_or_none(self._path),
            )
            with PreallocatedFile(self._tmp_record, fsync=fsync) as f:
                f.write(first)
            os.replace(self._tmp_record, record)  # vouches for the old and the new payload
            os.replace(self._tmp, self._path)
            with PreallocatedFile(self._tmp_record, fsync=fsync) as f:
                f.write(final_sidecar(metadata))
            os.replace(self._tmp_record, record)  # the publish is complete
            if fsync:
                fsync_folder(self._parent)

    def abort(self) -> None:
        with contextlib.suppress(OSError):
            self._file.close()
        for leftover in (self._tmp, self._tmp_record):
            with contextlib.suppress(OSError):
                os.unlink(leftover)
