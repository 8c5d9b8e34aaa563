"""S3Result: results in an S3 bucket (or any S3-compatible server) via s3fs."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Mapping
from datetime import datetime
from typing import Any, ClassVar

from fsspec.asyn import sync

from ..errors import ConfigurationError
from ..serializers import Serializer
from ._errors import precondition_failed
from ._fsspec import FSSpecResult
from ._location import LocationTemplate
from ._objectstore import ObjectStoreStorage
from ._obstore import ObstoreRequests
from ._ranged import RangedObject
from ._s3client import check_s3fs_options, client_config, tuned_client
from ._s3ranges import s3_range_fetcher
from ._upload import is_stale_temp

__all__ = ["S3Result", "S3Storage"]


class S3Storage(ObjectStoreStorage):
    """Objects in an S3 bucket, each with its record as ``x-amz-meta-rk-*`` metadata.

    ``exists`` and ``head`` are one HEAD; a read is one GET (body and metadata
    of the same object); a small write one PUT. A large write is a multipart
    upload of a temporary object, then one CopyObject onto the key with the
    metadata (past :attr:`copy_limit`, a multipart copy completed as one
    object), then a DELETE of the temporary object.

    Incomplete multipart uploads of a writer that died mid-upload are
    invisible; the next large write of the key aborts those older than
    ``stale_temp_age`` (a bucket lifecycle rule ``AbortIncompleteMultipartUpload``
    does it for the whole bucket).
    """

    #: The largest object one CopyObject copies (S3: 5 GiB); larger ones are
    #: copied in parts of at least :attr:`copy_part_size`.
    copy_limit: ClassVar[int] = 5 * 2**30
    copy_part_size: ClassVar[int] = 512 * 2**20

    def _s3(self, method: str, **kwargs: Any) -> Any:
        fs: Any = self.fs
        return sync(fs.loop, fs._call_s3, method, fs.kwargs, **kwargs)

    def _split(self, path: str) -> tuple[str, str]:
        bucket, key, _ = self.fs.split_path(path)
        return bucket, key

    @classmethod
    def client_options(cls, options: dict[str, Any]) -> dict[str, Any]:
        """s3fs's options with resultkit's defaults for small requests (the user's win).

        Applied to every lazily built S3 client: ``S3Result`` and
        ``from_url("s3://...")`` alike.
        """
        options = dict(options)
        check_s3fs_options(options)  # s3fs would hand an unknown one to aiobotocore, to fail late
        # s3fs's concurrent read first asks for the size (an extra HEAD on every
        # read); one GET is cheaper for results. Raise it for very large objects.
        options.setdefault("max_concurrency", 1)
        # Less client CPU a request (a bigger pool, no CRC32s, no parameter
        # checks, a fixed User-Agent): each a default the user's config_kwargs override.
        options["config_kwargs"] = client_config(options.get("config_kwargs"))
        return options

    #: The obstore engine's requests (``S3Result(engine="obstore")``), or None: s3fs.
    requests: ObstoreRequests | None = None

    def _put_object(
        self, path: str, data: bytes, metadata: dict[str, str], create: bool = False
    ) -> bool:
        if self.requests is not None:
            try:
                return self.requests.put(path, data, metadata, create)
            finally:
                self.fs.invalidate_cache(path)
        return super()._put_object(path, data, metadata, create)

    def _request_loop(self) -> asyncio.AbstractEventLoop | None:
        if self.requests is not None:  # obstore sends the small requests: no s3fs coroutine
            return None
        tuned_client(self.fs)
        return super()._request_loop()

    async def _put_object_async(
        self, path: str, data: bytes, metadata: dict[str, str], create: bool = False
    ) -> bool:
        fs: Any = self.fs
        bucket, key = self._split(path)
        condition = {"IfNoneMatch": "*"} if create else {}
        try:
            await fs._call_s3(
                "put_object",
                fs.kwargs,
                Bucket=bucket,
                Key=key,
                Body=data,
                Metadata=metadata,
                **condition,
            )
        except FileExistsError:
            return False
        except OSError as exc:
            # Some S3 servers (SeaweedFS) answer 412 without the detail s3fs
            # needs to call it FileExistsError.
            if create and precondition_failed(exc):
                return False
            raise
        finally:
            fs.invalidate_cache(path)
        return True

    def _get_object(self, path: str) -> tuple[bytes | RangedObject, Mapping[str, str]] | None:
        if self.requests is not None:
            return self.requests.get(path, self._range_limit(path), self._ranged_object)
        return super()._get_object(path)  # _get_object_async on s3fs's loop

    async def _get_object_async(
        self, path: str, limit: int
    ) -> tuple[bytes | RangedObject, Mapping[str, str]] | None:
        fs: Any = self.fs
        bucket, key = self._split(path)
        try:
            response = await fs._call_s3("get_object", fs.kwargs, Bucket=bucket, Key=key)
        except FileNotFoundError as exc:
            self._missing(exc)
            return None
        body = response["Body"]
        metadata = response.get("Metadata") or {}
        size = int(response.get("ContentLength") or 0)
        if size > limit and response.get("ETag"):
            # The first part comes from this response's body, the others by
            # ranges of exactly this version, all at once.
            fetch = s3_range_fetcher(fs, bucket, key, response["ETag"], body)
            return self._ranged_object(path, size, fetch, release=fetch.release), metadata
        try:
            data = await body.read()
        finally:
            body.close()
        return data, metadata

    def _head_object(self, path: str) -> Mapping[str, str] | None:
        if self.requests is not None:
            return self.requests.head(path)
        tuned_client(self.fs)
        bucket, key = self._split(path)
        try:
            response = self._s3("head_object", Bucket=bucket, Key=key)
        except FileNotFoundError:
            return None
        return response.get("Metadata") or {}

    async def _head_object_async(self, path: str) -> Mapping[str, str] | None:
        # s3fs's client (exists_many on its loop); the obstore engine has no loop lane
        fs: Any = self.fs
        bucket, key = self._split(path)
        try:
            response = await fs._call_s3("head_object", fs.kwargs, Bucket=bucket, Key=key)
        except FileNotFoundError:
            return None
        return response.get("Metadata") or {}

    def _copy_object(self, src: str, dst: str, metadata: dict[str, str], size: int) -> None:
        bucket, key = self._split(dst)
        src_bucket, src_key = self._split(src)
        source = {"Bucket": src_bucket, "Key": src_key}
        if size <= self.copy_limit:
            self._s3(
                "copy_object",
                Bucket=bucket,
                Key=key,
                CopySource=source,
                MetadataDirective="REPLACE",
                Metadata=metadata,
                ContentType="application/octet-stream",
            )
        else:
            self._multipart_copy(source, bucket, key, metadata, size)
        self.fs.invalidate_cache(dst)

    def _multipart_copy(
        self, source: dict[str, str], bucket: str, key: str, metadata: dict[str, str], size: int
    ) -> None:
        """Copy a source past :attr:`copy_limit` in parts; visible only when complete."""
        part = max(self.copy_part_size, -(-size // 10_000))  # S3: at most 10,000 parts
        upload = self._s3(
            "create_multipart_upload",
            Bucket=bucket,
            Key=key,
            Metadata=metadata,
            ContentType="application/octet-stream",
        )["UploadId"]
        try:
            parts = []
            for number, start in enumerate(range(0, size, part), 1):
                end = min(start + part, size) - 1
                out = self._s3(
                    "upload_part_copy",
                    Bucket=bucket,
                    Key=key,
                    UploadId=upload,
                    PartNumber=number,
                    CopySource=source,
                    CopySourceRange=f"bytes={start}-{end}",
                )
                parts.append({"PartNumber": number, "ETag": out["CopyPartResult"]["ETag"]})
            self._s3(
                "complete_multipart_upload",
                Bucket=bucket,
                Key=key,
                UploadId=upload,
                MultipartUpload={"Parts": parts},
            )
        except BaseException:
            with contextlib.suppress(Exception):  # the copy's error is the one to report
                self._s3("abort_multipart_upload", Bucket=bucket, Key=key, UploadId=upload)
            raise

    def _temp_prefix(self, path: str) -> tuple[str, str]:
        """The bucket, and the key prefix of every temporary object of ``path``."""
        return self._split(self._temp_stem(path))

    def _list_temps(self, path: str) -> list[tuple[str, datetime | None]]:
        bucket, prefix = self._temp_prefix(path)
        listing = self._s3("list_objects_v2", Bucket=bucket, Prefix=prefix)
        return [
            (f"{bucket}/{o['Key']}", o.get("LastModified")) for o in listing.get("Contents", [])
        ]

    def _sweep_temps(self, path: str) -> int:
        removed = super()._sweep_temps(path)
        # Multipart uploads of temporary objects that a dead writer never completed.
        bucket, prefix = self._temp_prefix(path)
        listing = self._s3("list_multipart_uploads", Bucket=bucket, Prefix=prefix)
        for upload in listing.get("Uploads", []):
            name = upload["Key"].rpartition("/")[2]
            if is_stale_temp(name, upload.get("Initiated"), self.stale_temp_age):
                self._s3(
                    "abort_multipart_upload",
                    Bucket=bucket,
                    Key=upload["Key"],
                    UploadId=upload["UploadId"],
                )
                removed += 1
        return removed


class S3Result(FSSpecResult):
    """Results stored as objects in an S3 bucket (``pip install 'resultkit[s3]'``).

    Credentials come from the standard boto chain (environment variables,
    ``~/.aws`` profiles, instance roles; ``AWS_ENDPOINT_URL`` points it at
    another server) unless given in ``storage_options`` (``key``, ``secret``,
    ``token``, ``profile``...), which go to :class:`s3fs.S3FileSystem` and never
    appear in ``repr()`` or error messages.

    Args:
        bucket: the bucket name.
        location: location template under ``bucket/prefix``.
        serializer: default :class:`~resultkit.serializers.PickleSerializer`.
        prefix: a folder inside the bucket that every location is under.
        endpoint_url: an S3-compatible server (MinIO, SeaweedFS, moto...).
        storage_options: any other :class:`s3fs.S3FileSystem` argument.
        retries: a :class:`~resultkit.results.RetryPolicy` (or a number of
            attempts) for transient failures of the service.
        engine: ``"s3fs"`` (default), or ``"obstore"`` to send the requests of
            small values through obstore's Rust client (``resultkit[obstore]``):
            a third to a fifth of the client CPU a request, for many small values at
            once (``write_many``, ``read_many``); credentials from
            ``storage_options`` (``key``, ``secret``, ``token``) or ``AWS_*``
            variables. Large values, listings and deletes stay on s3fs.

    Example:
        >>> r = S3Result(bucket="my-bucket", location="{flow_name}/{task_name}.pkl")  # doctest: +SKIP
        >>> r.write(42, flow_name="etl", task_name="answer").location                # doctest: +SKIP
        's3://my-bucket/etl/answer.pkl'
    """

    default_protocol = "s3"
    filesystem_class = "s3fs:S3FileSystem"
    extra = "s3"
    storage_class = S3Storage

    def __init__(
        self,
        bucket: str,
        location: LocationTemplate | None = None,
        serializer: Serializer | None = None,
        *,
        prefix: str = "",
        endpoint_url: str | None = None,
        storage_options: dict[str, Any] | None = None,
        value: Any = None,
        verify: bool = True,
        signing_key: Any = None,
        retries: Any = None,
        engine: str = "s3fs",
    ) -> None:
        if engine not in ("s3fs", "obstore"):
            raise ConfigurationError(f"engine must be 's3fs' or 'obstore', got {engine!r}")
        options = dict(storage_options or {})
        if endpoint_url:
            options.setdefault("endpoint_url", endpoint_url)
        self.bucket = bucket
        self._init_bucket(
            "bucket",
            bucket,
            prefix,
            options,
            location,
            serializer,
            value,
            verify,
            signing_key,
            retries,
        )
        if engine == "obstore":
            storage: Any = self.storage
            storage.requests = ObstoreRequests(bucket, options)
