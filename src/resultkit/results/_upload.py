"""Streaming uploads to object stores: one PUT when small, a multipart upload when large."""

from __future__ import annotations

import contextlib
import io
from typing import Any

from fsspec.spec import AbstractFileSystem

__all__ = ["SpillingUpload"]


class SpillingUpload:
    """Writes to an object store: one PUT for small payloads, a streamed upload past a limit.

    Nothing is visible until :meth:`commit`; :meth:`discard` aborts a started
    multipart upload instead of completing it (closing an fsspec file, even at
    garbage collection, would commit what was written so far).
    """

    def __init__(self, fs: AbstractFileSystem, path: str, limit: int) -> None:
        self._fs = fs
        self._path = path
        self._limit = limit
        self._buffer: io.BytesIO | None = io.BytesIO()
        self._file: Any = None

    def write(self, data: Any) -> int:
        view = memoryview(data).cast("B")
        if self._file is None:
            assert self._buffer is not None
            if self._buffer.tell() + view.nbytes <= self._limit:
                return self._buffer.write(view)
            self._file = self._fs.open(self._path, "wb")
            self._file.write(self._buffer.getvalue())
            self._buffer = None
        # Feed the upload in slices so it flushes a part at a time instead of
        # buffering (and copying) one huge write whole.
        step = self._limit
        for start in range(0, view.nbytes, step):
            self._file.write(view[start : start + step])
        return view.nbytes

    def commit(self) -> None:
        if self._file is None:
            assert self._buffer is not None
            self._fs.pipe_file(self._path, self._buffer.getvalue())
        else:
            self._file.close()

    def discard(self) -> None:
        if self._file is not None:
            with contextlib.suppress(Exception):
                self._file.discard()
            self._file.closed = True
