"""AzureResult: results in an Azure Blob Storage container via adlfs."""

from __future__ import annotations

import copy
import logging
import os
import uuid
from collections.abc import Awaitable, Callable, Mapping
from typing import Any, ClassVar, TypeVar

from fsspec.asyn import sync
from fsspec.spec import AbstractFileSystem

from ..errors import ConfigurationError
from ..serializers import Serializer
from ._fsspec import FSSpecResult
from ._location import LocationTemplate
from ._objectstore import ObjectStoreStorage
from ._ranged import RangedObject, ReplacedWhileRead
from ._upload import LargeUpload

__all__ = ["AzureResult", "AzureStorage"]

T = TypeVar("T")
logger = logging.getLogger("resultkit")


def _error_code(exc: BaseException) -> str:
    """Azure's error code (``"BlobNotFound"``...) of an SDK error, or ``""``."""
    code = getattr(exc, "error_code", None)
    return str(getattr(code, "value", code) or "")


class AzureStorage(ObjectStoreStorage):
    """Blobs in an Azure container, each with its record as metadata (``rk_*``).

    ``exists`` and ``head`` are one HEAD; a read is one GET (the SDK pins any
    further ranges of a large blob to the first response's ETag); a small
    write is one Put Blob with the metadata. A large write stages its parts
    as blocks of the blob itself (Put Block; uncommitted blocks are invisible)
    and publishes them with Put Block List, which carries the metadata: one
    atomic request, no temporary blob, no copy. A writer that dies leaves
    only uncommitted blocks, which readers never see and Azure deletes after
    a week.

    Azure keeps one list of uncommitted blocks per blob and empties it at
    every commit: when another write (or a delete) of the same blob completes
    while a large write is uploading, the large write's blocks are gone. The
    blob's ETag, taken when the large write started, shows it: the large
    write then counts as superseded by the concurrent one (it succeeds and is
    never seen, as the losing PUT of two racing on S3), and readers see the
    old value or the winner's, never an error.
    """

    metadata_separator: ClassVar[str] = "_"  # Azure metadata names are C# identifiers
    #: Bytes per staged block of a large payload.
    block_size: ClassVar[int] = 8 * 2**20

    def _build_filesystem(
        self, cls: type[AbstractFileSystem], options: dict[str, Any]
    ) -> AbstractFileSystem:
        if "connection_string" not in options and "account_name" not in options:
            conn = os.environ.get("AZURE_STORAGE_CONNECTION_STRING")
            account = os.environ.get("AZURE_STORAGE_ACCOUNT_NAME")
            if conn:
                options["connection_string"] = conn
            elif account:
                options["account_name"] = account
                options.setdefault("anon", False)  # adlfs then uses DefaultAzureCredential
            else:
                raise ConfigurationError(
                    f"AzureResult at {self.root_url} has no credentials: pass "
                    "connection_string=..., or account_name=... (with credential=... or "
                    "DefaultAzureCredential), or set AZURE_STORAGE_CONNECTION_STRING"
                )
        return cls(**options)

    def _on_blob(self, path: str, action: Callable[[Any], Awaitable[T]]) -> T:
        """Run ``action(blob_client)`` on the client's loop, with Azure's errors as OSError's."""
        fs: Any = self.fs
        return sync(fs.loop, self._on_blob_async, path, action)

    async def _on_blob_async(self, path: str, action: Callable[[Any], Awaitable[T]]) -> T:
        fs: Any = self.fs
        container, key, _ = fs.split_path(path)
        from azure.core.exceptions import ResourceExistsError, ResourceNotFoundError

        try:
            async with fs.service_client.get_blob_client(container, key) as blob:
                return await action(blob)
        except ResourceNotFoundError as exc:
            if _error_code(exc) == "ContainerNotFound":
                raise FileNotFoundError(f"the container does not exist: {container}") from exc
            raise FileNotFoundError(f"{container}/{key}") from exc
        except ResourceExistsError as exc:
            raise FileExistsError(f"{container}/{key}") from exc

    async def _put_object_async(
        self, path: str, data: bytes, metadata: dict[str, str], create: bool = False
    ) -> bool:
        from azure.storage.blob import ContentSettings

        async def put(blob: Any) -> None:
            await blob.upload_blob(
                data,
                overwrite=not create,  # False: If-None-Match: *
                metadata=metadata,
                content_settings=ContentSettings(content_type="application/octet-stream"),
            )

        try:
            await self._on_blob_async(path, put)
        except FileExistsError:
            if create:
                return False
            raise
        finally:
            self.fs.invalidate_cache(path)
        return True

    async def _head_object_async(self, path: str) -> Mapping[str, str] | None:
        async def head(blob: Any) -> Mapping[str, str]:
            properties = await blob.get_blob_properties()  # one HEAD
            return dict(properties.metadata or {})

        try:
            return await self._on_blob_async(path, head)
        except FileNotFoundError:
            return None

    async def _get_object_async(
        self, path: str, limit: int
    ) -> tuple[bytes | RangedObject, Mapping[str, str]] | None:
        async def get(blob: Any) -> tuple[bytes | RangedObject, Mapping[str, str]]:
            # The SDK's first GET asks for the first max_single_get_size bytes (and
            # gets the size, ETag and metadata): no larger than where ranges start.
            # Its chunks as large, so the first chunk is that GET's, not one more.
            # (A copy: the service client shares its configuration with every blob client.)
            config = blob._config = copy.copy(blob._config)
            config.max_single_get_size = min(config.max_single_get_size, limit)
            config.max_chunk_get_size = config.max_single_get_size
            downloader = await blob.download_blob()
            metadata = dict(downloader.properties.metadata or {})
            size = int(downloader.size or 0)
            etag = downloader.properties.etag
            if size > limit and etag:
                first = b""
                async for chunk in downloader.chunks():  # what the first GET brought
                    first = bytes(chunk)
                    break
                fetch = self._range_fetcher(path, etag)
                prefix = first[:limit]
                return self._ranged_object(path, size, fetch, prefix), metadata
            data = await downloader.readall()
            return data, metadata

        try:
            return await self._on_blob_async(path, get)
        except FileNotFoundError as exc:
            self._missing(exc)
            return None

    def _range_fetcher(self, path: str, etag: str) -> Callable[[int, int], Awaitable[bytes]]:
        async def fetch(start: int, end: int) -> bytes:
            from azure.core import MatchConditions
            from azure.core.exceptions import ResourceModifiedError

            async def get(blob: Any) -> bytes:
                try:
                    downloader = await blob.download_blob(
                        offset=start,
                        length=end - start,
                        etag=etag,
                        match_condition=MatchConditions.IfNotModified,  # If-Match
                    )
                    return bytes(await downloader.readall())
                except ResourceModifiedError:
                    raise ReplacedWhileRead(f"{path} was overwritten") from None

            try:
                return await self._on_blob_async(path, get)
            except FileNotFoundError:
                raise ReplacedWhileRead(f"{path} was deleted") from None

        return fetch

    def _etag(self, path: str) -> str | None:
        """The blob's ETag (one HEAD), or ``None`` when there is no blob."""

        async def head(blob: Any) -> str:
            return str((await blob.get_blob_properties()).etag)

        try:
            return self._on_blob(path, head)
        except FileNotFoundError:
            return None

    def _start_large_upload(self, path: str) -> LargeUpload:
        return _BlockUpload(self, path)


class _BlockUpload:
    """A large payload staged as blocks of the blob, published by one Put Block List."""

    def __init__(self, storage: AzureStorage, path: str) -> None:
        self._storage = storage
        self._path = path
        # Block ids unique to this writer (all of one length, as Azure requires):
        # another writer's blocks of the same blob never mix with these.
        self._token = uuid.uuid4().hex
        self._ids: list[str] = []
        self._buffer = bytearray()
        # The blob's version before this write: a commit that fails because
        # another one emptied the uncommitted blocks is told apart by it.
        self._etag_before = storage._etag(path)

    def write(self, data: memoryview) -> None:
        self._buffer += data
        size = self._storage.block_size
        while len(self._buffer) >= size:
            self._stage(bytes(self._buffer[:size]))
            del self._buffer[:size]

    def _stage(self, data: bytes) -> None:
        block_id = f"{self._token}-{len(self._ids):08d}"  # the SDK base64-encodes it

        async def stage(blob: Any) -> None:
            await blob.stage_block(block_id, data, length=len(data))

        self._storage._on_blob(self._path, stage)
        self._ids.append(block_id)

    def commit(self, metadata: dict[str, str]) -> None:
        from azure.core.exceptions import HttpResponseError
        from azure.storage.blob import ContentSettings

        if self._buffer or not self._ids:
            self._stage(bytes(self._buffer))
            self._buffer = bytearray()

        async def commit(blob: Any) -> None:
            await blob.commit_block_list(
                self._ids,
                metadata=metadata,
                content_settings=ContentSettings(content_type="application/octet-stream"),
            )

        try:
            self._storage._on_blob(self._path, commit)
        except HttpResponseError as exc:
            if _error_code(exc) != "InvalidBlockList":
                raise
            if self._storage._etag(self._path) == self._etag_before:
                raise OSError(
                    f"az://{self._path}: Azure no longer has this write's uncommitted blocks "
                    "(they expire after a week); write it again"
                ) from exc
            # Another write (or a delete) of this blob completed while this one
            # was uploading, and its commit emptied the uncommitted blocks. The
            # two writes were concurrent: this one counts as the earlier of the
            # two, replaced at once, as when two PUTs race on S3 (the loser's
            # PUT succeeds and is never seen).
            logger.info("az://%s: superseded by a concurrent write of the same blob", self._path)
        finally:
            self._storage.fs.invalidate_cache(self._path)

    def abort(self) -> None:
        # Uncommitted blocks are invisible and expire; deleting them would
        # need a commit, which would also drop other writers' blocks.
        self._buffer = bytearray()


class AzureResult(FSSpecResult):
    """Results stored as blobs in an Azure container (``pip install 'resultkit[azure]'``).

    Credentials, first found wins: ``connection_string``, ``account_name`` with
    ``credential`` (an account key, SAS token or azure-identity credential),
    the ``AZURE_STORAGE_CONNECTION_STRING`` environment variable, then
    ``account_name`` (or ``AZURE_STORAGE_ACCOUNT_NAME``) with
    ``DefaultAzureCredential``. Like S3Result and GCSResult, they are
    resolved at first use, so a flow can be built on a machine without them.
    Secrets never appear in ``repr()`` or errors.

    Args:
        container: the container name.
        location: location template under ``container/prefix``.
        serializer: default :class:`~resultkit.serializers.PickleSerializer`.
        connection_string: an Azure Storage connection string.
        account_name: the storage account.
        credential: key, SAS token or token credential for ``account_name``.
        prefix: a folder inside the container.
        storage_options: any other :class:`adlfs.AzureBlobFileSystem` argument.
        retries: a :class:`~resultkit.results.RetryPolicy` (or a number of
            attempts) for transient failures of the service.
    """

    default_protocol = "az"
    filesystem_class = "adlfs:AzureBlobFileSystem"
    extra = "azure"
    storage_class = AzureStorage

    def __init__(
        self,
        container: str,
        location: LocationTemplate | None = None,
        serializer: Serializer | None = None,
        *,
        connection_string: str | None = None,
        account_name: str | None = None,
        credential: Any = None,
        prefix: str = "",
        storage_options: dict[str, Any] | None = None,
        value: Any = None,
        verify: bool = True,
        signing_key: Any = None,
        retries: Any = None,
    ) -> None:
        options = dict(storage_options or {})
        if connection_string:
            options.setdefault("connection_string", connection_string)
        elif account_name:
            options.setdefault("account_name", account_name)
            if credential is not None:
                options.setdefault("credential", credential)
            else:
                options.setdefault("anon", False)  # adlfs then uses DefaultAzureCredential
        self.container = container
        self._init_bucket(
            "container",
            container,
            prefix,
            options,
            location,
            serializer,
            value,
            verify,
            signing_key,
            retries,
        )
