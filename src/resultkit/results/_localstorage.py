"""The local-disk storage: plain files, a temp file + ``os.replace`` publish, folder locks.

Writers publish a payload and its record under an exclusive folder lock;
readers pick both up under a shared one, so a reader never sees one
writer's payload beside another's record (``atomic_pairs``).
"""

from __future__ import annotations

import contextlib
import os
from typing import Any, BinaryIO

from fsspec.implementations.local import LocalFileSystem

from ._fsstorage import FileSystemStorage
from ._localio import PreallocatedFile, fsync_folder
from ._location import RECORD_SUFFIX
from ._locks import folder_lock, publish_lock
from ._record import metadata_to_bytes
from .storage import Metadata, StorageWriter

__all__ = ["LocalFileStorage"]


class LocalFileStorage(FileSystemStorage):
    """Pairs of files under a local folder.

    Args:
        root: the absolute folder.
        fsync: flush the payload, its record and the folder to the disk at
            each publish, so a value survives a power loss.
    """

    atomic_pairs = True  # pairs are published and picked up under the folder lock

    def __init__(self, root: str, *, fsync: bool = False) -> None:
        super().__init__(LocalFileSystem(), root)
        self.fsync = fsync

    def exists(self, key: str) -> bool:
        return os.path.isfile(self.path(key))

    def _head_path(self, path: str) -> bool:
        return os.path.isfile(path)

    def _cat_or_none(self, path: str) -> bytes | None:
        try:
            with open(path, "rb") as f:
                return f.read()
        except FileNotFoundError:
            return None

    def open_reader(self, key: str) -> tuple[BinaryIO, Metadata] | None:
        path = self.path(key)
        folder = os.path.dirname(path)
        if not os.path.isdir(folder):
            return None
        # Under a shared folder lock, the record and the payload's descriptor
        # are one consistent pair; an open descriptor keeps its file whatever
        # is renamed after.
        with folder_lock(folder, shared=True):
            raw = self._cat_or_none(path + RECORD_SUFFIX)
            try:
                stream = open(path, "rb", buffering=0)  # noqa: SIM115 - the caller closes it
            except (FileNotFoundError, IsADirectoryError):
                return None
        return stream, ({} if raw is None else self._parse_sidecar(key, raw))

    def open_writer(self, key: str) -> StorageWriter:
        return _LocalWriter(self, self.path(key))

    def _remove(self, path: str) -> bool:
        try:
            os.unlink(path)
        except FileNotFoundError:
            return False
        return True

    def put_if_absent(self, key: str, data: Any, metadata: Metadata) -> bool:
        path = self.path(key)
        os.makedirs(os.path.dirname(path), exist_ok=True)
        try:
            with PreallocatedFile(path, fsync=self.fsync) as f:  # O_EXCL create
                f.write(data)
        except FileExistsError:
            return False
        return True


class _LocalWriter:
    """The serializer writes into a preallocated temp file; commit renames both files."""

    def __init__(self, storage: LocalFileStorage, path: str) -> None:
        self._storage = storage
        self._path = path
        self._parent = os.path.dirname(path)
        self._tmp, self._tmp_record = storage._temp_names(path)
        os.makedirs(self._parent, exist_ok=True)
        self._file = PreallocatedFile(self._tmp, fsync=storage.fsync)

    def write(self, data: Any) -> int:
        return self._file.write(data)

    def commit(self, metadata: Metadata) -> None:
        fsync = self._storage.fsync
        self._file.close()
        with PreallocatedFile(self._tmp_record, fsync=fsync) as f:
            f.write(metadata_to_bytes(metadata))
        # Payload first, then its record, under the folder lock, so a reader
        # (shared lock) never sees one writer's payload beside another's record.
        with publish_lock(self._storage.url(self._path)), folder_lock(self._parent):
            os.replace(self._tmp, self._path)
            os.replace(self._tmp_record, self._path + RECORD_SUFFIX)
            if fsync:
                fsync_folder(self._parent)

    def abort(self) -> None:
        with contextlib.suppress(OSError):
            self._file.close()
        for leftover in (self._tmp, self._tmp_record):
            with contextlib.suppress(OSError):
                os.unlink(leftover)
