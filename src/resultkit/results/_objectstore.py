"""Storage on object stores (S3, GCS, Azure): payloads uploaded in place.

An object appears only when its upload completes (one PUT, or a completed
multipart upload), so writing in place is already atomic there; a rename
would be a second full copy. The record goes up after its payload.
"""

from __future__ import annotations

import io
from typing import Any, BinaryIO, ClassVar

from ._fsstorage import FileSystemStorage
from ._location import RECORD_SUFFIX
from ._locks import publish_lock
from ._record import metadata_to_bytes
from ._upload import SpillingUpload
from .storage import Metadata, StorageWriter

__all__ = ["ObjectStoreStorage", "head_request"]


class ObjectStoreStorage(FileSystemStorage):
    """Pairs on an object store (S3, GCS, Azure): payload uploaded in place, then the record."""

    #: Payloads up to this size go up in one request; larger ones stream as a
    #: multipart (block) upload completed as one object.
    single_request_limit: ClassVar[int] = 5 * 2**20

    def open_writer(self, key: str) -> StorageWriter:
        return _InPlaceWriter(self, self.path(key))

    def open_reader(self, key: str) -> tuple[BinaryIO, Metadata] | None:
        # One GET for the payload: a ranged file object would first ask for the
        # size and could then read ranges of a newer object.
        path = self.path(key)
        raw = self._cat_or_none(path + RECORD_SUFFIX)
        data = self._cat_or_none(path)
        if data is None:
            self._check_container()
            return None
        return io.BytesIO(data), ({} if raw is None else self._parse_sidecar(key, raw))

    def _remove(self, path: str) -> bool:
        # Object stores answer a DELETE of a missing key with success: ask first.
        if not self._head_path(path):
            return False
        self.fs.rm_file(path)
        return True

    def _check_container(self) -> None:
        """On a miss, make sure the bucket itself exists (once per storage).

        Some clients (gcsfs, adlfs) say only "not found" for a missing bucket;
        a read must not report a missing bucket as an empty cache.
        """
        if self.__dict__.get("_container_seen"):
            return
        container = self.root.split("/", 1)[0]
        if not self.fs.exists(container):
            raise FileNotFoundError(f"the bucket or container does not exist: {container}")
        self._container_seen = True


class _InPlaceWriter:
    def __init__(self, storage: ObjectStoreStorage, path: str) -> None:
        self._storage = storage
        self._path = path
        self._upload = SpillingUpload(storage.fs, path, storage.single_request_limit)

    def write(self, data: Any) -> int:
        return self._upload.write(data)

    def commit(self, metadata: Metadata) -> None:
        # One writer at a time per key in this process: payload and record belong together.
        with publish_lock(self._storage.url(self._path)):
            self._upload.commit()
            self._storage.fs.pipe_file(self._path + RECORD_SUFFIX, metadata_to_bytes(metadata))

    def abort(self) -> None:
        self._upload.discard()


def head_request(fs: Any, request: Any, *args: Any, **kwargs: Any) -> bool:
    """Run one async metadata request of an async filesystem; not found means ``False``."""
    from fsspec.asyn import sync

    try:
        sync(fs.loop, request, *args, **kwargs)
    except FileNotFoundError:
        return False
    return True
