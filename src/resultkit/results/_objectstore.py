"""Storage on object stores (S3, GCS, Azure): a payload and its record are ONE object.

The record travels as the object's own user metadata, written by the same
request that publishes the payload and read back with it, so no writer,
crash or concurrent reader can ever pair a payload with another write's
record (``atomic_pairs`` is true):

* S3: a small payload is one PUT with ``x-amz-meta-*``; a large one a
  multipart upload of a temporary object, then one CopyObject onto the key
  with the metadata (a multipart copy past 5 GiB). A read is one GET (body
  and metadata of the same object).
* GCS: a small payload is one multipart upload with the metadata; a large
  one a resumable upload of a temporary object, then one rewrite onto the
  key with the metadata. A read is a metadata GET, then the media GET of
  exactly that generation.
* Azure: a small payload is one Put Blob with the metadata; a large one
  Put Block per part, then one Put Block List with the metadata. A read is
  one GET (the SDK pins any further ranges to the first one's ETag).

``exists`` is one HEAD (GCS: one metadata GET); ``exists_many`` of a few
keys sends them at once on the client's event loop (``_objectheads.py``). Names of the metadata are
``rk-<name>`` (S3, GCS; ``rk_<name>`` on Azure, where names must be C#
identifiers) plus a marker ``rk``; values that are not plain ASCII tokens are
percent-encoded behind a ``~`` (see :func:`encode_metadata`). The whole
record stays well under S3's 2 KiB limit for user metadata.

Objects written before (the payload, and its record in a ``P.rkmeta``
sidecar object) still read: an object without the marker falls back to its
sidecar. A write never touches an old sidecar (it is stale but harmless:
the object's own metadata wins); ``delete`` removes it.
"""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import Mapping
from datetime import datetime
from glob import has_magic
from typing import BinaryIO, ClassVar

from fsspec.asyn import sync

from ._asyncreads import first_get
from ._fsstorage import FileSystemStorage
from ._location import RECORD_SUFFIX, TEMP_MARKER
from ._objcreate import create_settled
from ._objectheads import ObjectHeads
from ._objmetadata import (
    CREATE_NONCE,
    METADATA_MARKER,
    create_nonce,
    decode_metadata,
    encode_metadata,
)
from ._ranged import RangedObject, RangedReads
from ._upload import LargeUpload, ObjectWriter, TempObjectUpload, is_stale_temp
from ._verify import parse_record
from .storage import Metadata, StorageWriter

__all__ = [
    "ObjectStoreStorage",
    "object_store_class",
    "encode_metadata",
    "decode_metadata",
    "METADATA_MARKER",
]

#: Storage classes of the protocols with a record-as-metadata implementation.
_PROTOCOL_CLASSES = {
    "s3": "s3:S3Storage",
    "s3a": "s3:S3Storage",
    "gs": "gcs:GCSStorage",
    "gcs": "gcs:GCSStorage",
    "az": "azure:AzureStorage",
    "abfs": "azure:AzureStorage",
    "abfss": "azure:AzureStorage",
}


def object_store_class(protocol: str | None) -> type[FileSystemStorage] | None:
    """The storage class for an object-store protocol (``"s3"`` -> ``S3Storage``...).

    ``None`` for other protocols (``adl``: Data Lake Gen1 is a filesystem
    with renames; it gets the generic storage).
    """
    import importlib

    target = _PROTOCOL_CLASSES.get(protocol or "")
    if target is None:
        return None
    module, _, name = target.partition(":")
    cls: type[FileSystemStorage] = getattr(importlib.import_module(f"{__package__}.{module}"), name)
    return cls


class ObjectStoreStorage(RangedReads, ObjectHeads):
    """Pairs on an object store, each one object with its record as metadata.

    Backends (``S3Storage``, ``GCSStorage``, ``AzureStorage``) implement the
    few requests below (``_put_object``, ``_get_object``, ``_head_object``,
    and ``_copy_object`` / ``_list_temps`` or ``_start_large_upload``), and
    where their client has an event loop, the same requests as coroutines
    (``_put_object_async``, ``_get_object_async``, ``_head_object_async``);
    everything else is here and in :class:`ObjectHeads` (``exists``). Constructing ``ObjectStoreStorage`` itself (as
    ``from_url("s3://...")`` does) builds the backend's class for the protocol.
    """

    atomic_pairs = True  # one object: payload and record are published together
    #: write_many / read_many / exists_many requests in flight (on the client's event loop).
    batch_concurrency = 32

    #: Payloads up to this size go up in one request; larger ones stream.
    single_request_limit: ClassVar[int] = 5 * 2**20
    #: Separator inside metadata names (``rk-written-at``; Azure: ``rk_written_at``).
    metadata_separator: ClassVar[str] = "-"
    #: Bytes of metadata an object may carry (S3: 2 KiB of user metadata).
    metadata_limit: ClassVar[int] = 2048
    #: A temporary object older than this (seconds) belongs to a dead writer.
    stale_temp_age: float = 24 * 3600.0

    # -- the requests a backend implements ----------------------------------------------
    def _put_object(
        self, path: str, data: bytes, metadata: dict[str, str], create: bool = False
    ) -> bool:
        """One request storing ``data`` with ``metadata``; ``create``: only if absent.

        Returns ``False`` when ``create`` and something is there. By default
        :meth:`_put_object_async` on :meth:`_request_loop`'s loop: one
        implementation of the request, for ``write`` and ``write_many``.
        """
        loop = self._request_loop()
        if loop is None:
            raise NotImplementedError
        return bool(sync(loop, self._put_object_async, path, data, metadata, create))

    async def _put_object_async(
        self, path: str, data: bytes, metadata: dict[str, str], create: bool = False
    ) -> bool:
        """:meth:`_put_object` as a coroutine of :meth:`_request_loop`'s loop."""
        raise NotImplementedError

    def _request_loop(self) -> asyncio.AbstractEventLoop | None:
        """The client's event loop, ready for :meth:`_put_object_async`; ``None``: no such
        coroutine (``write_many`` then sends each item's request from a thread).

        A backend that implements :meth:`_put_object_async` gets its async
        filesystem's loop (s3fs, gcsfs and adlfs each run one).
        """
        if type(self)._put_object_async is ObjectStoreStorage._put_object_async:
            return None
        loop: asyncio.AbstractEventLoop = self.fs.loop
        return loop

    def _get_object(self, path: str) -> tuple[bytes | RangedObject, Mapping[str, str]] | None:
        """The bytes and the raw metadata of ONE version of the object, or ``None``.

        An object larger than :attr:`ranged_read_from` comes as a
        :class:`RangedObject` (its size, and how to fetch a range of exactly
        that version) instead of its bytes. By default :meth:`_get_object_async`
        on :meth:`_request_loop`'s loop: one request, for ``read`` and ``read_many``.
        """
        loop = self._request_loop()
        if loop is None:
            raise NotImplementedError
        return sync(loop, self._get_object_async, path, self._range_limit(path))

    async def _get_object_async(
        self, path: str, limit: int
    ) -> tuple[bytes | RangedObject, Mapping[str, str]] | None:
        """:meth:`_get_object` as a coroutine of the loop; ranged past ``limit`` bytes."""
        raise NotImplementedError

    def _copy_object(self, src: str, dst: str, metadata: dict[str, str], size: int) -> None:
        """Copy ``src`` onto ``dst`` server-side with ``metadata``, atomically."""
        raise NotImplementedError

    def _list_temps(self, path: str) -> list[tuple[str, datetime | None]]:
        """This key's temporary objects (path, last modified), one listing request."""
        return []

    def _start_large_upload(self, path: str) -> LargeUpload:
        """The streamed upload of a large payload (default: temporary object + copy)."""
        return TempObjectUpload(self, path)

    def _temp_stem(self, path: str) -> str:
        """What every temporary object of ``path`` starts with: ``folder/.NAME.rktmp-``."""
        tmp = self._temp_names(path)[0]
        return tmp[: tmp.rindex(TEMP_MARKER) + len(TEMP_MARKER)]

    def _sweep_temps(self, path: str) -> int:
        """Remove this key's temporary objects left by dead writers; how many."""
        removed = 0
        for name, modified in self._list_temps(path):
            if is_stale_temp(name.rpartition("/")[2], modified, self.stale_temp_age):
                with contextlib.suppress(FileNotFoundError):
                    self.fs.rm_file(name)
                    removed += 1
        return removed

    # -- metadata ------------------------------------------------------------------------
    def _encode(self, metadata: Metadata) -> dict[str, str]:
        return encode_metadata(metadata, self.metadata_separator, self.metadata_limit)

    def _decode(self, raw: Mapping[str, str] | None) -> dict[str, str] | None:
        return decode_metadata(raw, self.metadata_separator)

    # -- the Storage API -----------------------------------------------------------------
    def head(self, key: str) -> Metadata | None:
        path = self.path(key)
        raw = self._head_object(path)
        if raw is None:
            self._check_container()
            return None
        metadata = self._decode(raw)
        if metadata is not None:
            return metadata
        sidecar = self._cat_or_none(path + RECORD_SUFFIX)  # written before: a sidecar
        if sidecar is not None:
            return self._parse_sidecar(key, sidecar)
        # No sidecar: deleted meanwhile (a delete removes the object first),
        # or truly without a record.
        now = self._head_object(path)
        return None if now is None else (self._decode(now) or {})

    def open_reader(self, key: str) -> tuple[BinaryIO, Metadata] | None:
        path = self.path(key)
        for attempt in range(3):
            # read_many's loop lane hands over the first GET it sent (_asyncreads.py)
            found = first_get(self, path, self._get_object)
            if found is None:
                self._check_container()
                return None
            data, raw = found
            metadata = self._decode(raw)
            if metadata is not None:
                if attempt < 2 and _torn(data, metadata):
                    continue  # a response cut short (a client resuming a broken stream)
                return self._stream(data), metadata
            # Written before records were metadata: its record is a sidecar.
            sidecar = self._cat_or_none(path + RECORD_SUFFIX)
            if sidecar is not None:
                return self._stream(data), self._parse_sidecar(key, sidecar)
            # No sidecar: deleted meanwhile (a delete removes the object first),
            # replaced by a new write, or truly without a record. Look again.
            now = self._head_object(path)
            if now is None:
                return None
            if self._decode(now) is None:
                return self._stream(data), {}
        return self._stream(data), {}

    def put(self, key: str, data: bytes | bytearray | memoryview, metadata: Metadata) -> None:
        view = memoryview(data).cast("B")
        if view.nbytes <= self.single_request_limit:
            self._put_object(self.path(key), bytes(view), self._encode(metadata))
        else:
            super().put(key, view, metadata)

    def put_if_absent(
        self, key: str, data: bytes | bytearray | memoryview, metadata: Metadata
    ) -> bool:
        """One conditional create, settled by its nonce where the answer does not say
        (see ``_objcreate.py``: lost answers, refusals with nothing there, 409s)."""
        path = self.path(key)
        nonce = uuid.uuid4().hex
        encoded = self._encode({**metadata, CREATE_NONCE: nonce})

        def owner() -> str | None:
            found = self._head_object(path)
            return None if found is None else create_nonce(found, self.metadata_separator) or ""

        def put() -> bool:
            return self._put_object(path, bytes(data), encoded, create=True)

        return create_settled(put, owner, nonce, path)

    def open_writer(self, key: str) -> StorageWriter:
        return ObjectWriter(self, self.path(key))

    def delete(self, key: str) -> bool:
        path = self.path(key)
        # Object stores answer a DELETE of a missing key with success: ask first.
        found = self._head_path(path)
        # With a sidecar of a pair written before (or left beside a newer object),
        # in one bulk request where the store has one (S3 DeleteObjects). fsspec's
        # rm expands glob characters: a name holding them is deleted one by one,
        # exactly, never as a pattern.
        paths = [path, path + RECORD_SUFFIX]
        if has_magic(path):
            for one in paths:
                with contextlib.suppress(FileNotFoundError):
                    self.fs.rm_file(one)
        else:
            with contextlib.suppress(FileNotFoundError):
                self.fs.rm(paths)
        return found

    def _find_under(self, base: str) -> list[str]:
        # A listing by key prefix: one request even when nothing is there (a plain
        # find of an empty "folder" also asks whether it is a file and a folder).
        parent, _, name = base.rstrip("/").rpartition("/")
        if not parent:
            return list(self.fs.find(base))
        return [p for p in self.fs.find(parent, prefix=name + "/") if p.startswith(base + "/")]

    def _remove(self, path: str) -> bool:
        # Object stores answer a DELETE of a missing key with success: ask first.
        if not self._head_path(path):
            return False
        with contextlib.suppress(FileNotFoundError):  # deleted meanwhile
            self.fs.rm_file(path)
        return True


def _size(data: bytes | RangedObject) -> int:
    return data.size if isinstance(data, RangedObject) else len(data)


def _torn(data: bytes | RangedObject, metadata: Metadata) -> bool:
    """Whether one GET's body is not as long as the record it came with says.

    An object store publishes payload and record together, so this is never
    a real state of the object: a client (obstore resuming a broken stream
    during a concurrent overwrite) handed back a cut response. Reading again
    costs a request only then; a body that stays wrong is reported by the
    digest check as corrupt.
    """
    try:
        record = parse_record("", metadata)
    except Exception:
        return False
    return _size(data) != record.size
