"""The publish of a pair on a filesystem with renames: temporary file, then two moves.

The record goes first and vouches for the old payload too (see
``with_previous``), so a reader between the moves finds a record that
matches whichever payload it reads; then the payload; then the final record.
"""

from __future__ import annotations

import contextlib
from typing import TYPE_CHECKING, Any

from ._location import RECORD_SUFFIX
from ._locks import publish_lock
from ._record import final_sidecar, with_previous
from .storage import Metadata

if TYPE_CHECKING:
    from ._fsstorage import FileSystemStorage

__all__ = ["RenameWriter"]


class RenameWriter:
    """Write to a temporary file, then move the payload and its record into place."""

    def __init__(self, storage: FileSystemStorage, path: str) -> None:
        self._storage = storage
        self._path = path
        self._tmp, self._tmp_record = storage._temp_names(path)
        parent = path.rpartition("/")[0]
        fs = storage.fs
        if parent:
            fs.makedirs(parent, exist_ok=True)
        self._file: Any = fs.open(self._tmp, "wb")

    def write(self, data: Any) -> int:
        self._file.write(data)
        return memoryview(data).nbytes

    def commit(self, metadata: Metadata) -> None:
        storage, fs = self._storage, self._storage.fs
        self._file.close()
        record = self._path + RECORD_SUFFIX
        # One writer at a time per key in this process; the record goes first
        # and vouches for the old payload too (see with_previous).
        with publish_lock(storage.url(self._path)):
            first = with_previous(
                metadata,
                storage._cat_or_none(record),
                lambda: storage._size_or_none(self._path),
                lambda: storage._digest_or_none(self._path),
            )
            fs.pipe_file(self._tmp_record, first)
            storage._move(self._tmp_record, record)
            storage._move(self._tmp, self._path)
            fs.pipe_file(self._tmp_record, final_sidecar(metadata))
            storage._move(self._tmp_record, record)

    def abort(self) -> None:
        fs = self._storage.fs
        with contextlib.suppress(Exception):
            self._file.close()
        for leftover in (self._tmp, self._tmp_record):
            with contextlib.suppress(Exception):
                fs.rm_file(leftover)
