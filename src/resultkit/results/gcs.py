"""GCSResult: results in a Google Cloud Storage bucket via gcsfs."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from datetime import datetime
from typing import Any

from fsspec.asyn import sync

from ..serializers import Serializer
from ._fsspec import FSSpecResult
from ._location import LocationTemplate
from ._objectstore import ObjectStoreStorage
from ._ranged import RangedObject, ReplacedWhileRead

__all__ = ["GCSResult", "GCSStorage"]

_OCTET = "application/octet-stream"


class GCSStorage(ObjectStoreStorage):
    """Objects in a GCS bucket, each with its record as custom metadata (``rk-*``).

    ``exists`` and ``head`` are one metadata GET (GCS has no HEAD). A read is
    a metadata GET, then the media GET of exactly that generation (if a
    writer replaced the object in between, that generation is gone: the
    read starts over, never pairing one generation's bytes with another's
    record). A small write is one multipart upload carrying the metadata; a
    large one a resumable upload of a temporary object, then one rewrite onto
    the key with the metadata, then a DELETE of the temporary object.
    Resumable uploads a dead writer left incomplete expire on their own
    (GCS drops them after a week).
    """

    #: Reads that find the object replaced between their two requests before giving up.
    max_read_attempts = 8

    def _call(self, *args: Any, **kwargs: Any) -> Any:
        fs: Any = self.fs
        return sync(fs.loop, fs._call, *args, **kwargs)

    def _split(self, path: str) -> tuple[str, str]:
        bucket, key, _ = self.fs.split_path(path)
        return bucket, key

    async def _resource_async(self, path: str) -> dict[str, Any] | None:
        fs: Any = self.fs
        bucket, key = self._split(path)
        try:
            resource: dict[str, Any] = await fs._call(
                "GET", "b/{}/o/{}", bucket, key, json_out=True
            )
        except FileNotFoundError:
            return None
        return resource

    async def _put_object_async(
        self, path: str, data: bytes, metadata: dict[str, str], create: bool = False
    ) -> bool:
        fs: Any = self.fs
        try:
            await fs._pipe_file(
                path,
                data,
                metadata=metadata,
                content_type=_OCTET,
                mode="create" if create else "overwrite",
            )
        except FileExistsError:  # 412: ifGenerationMatch=0 did not hold
            if create:
                return False
            raise
        return True

    async def _head_object_async(self, path: str) -> Mapping[str, str] | None:
        resource = await self._resource_async(path)
        return None if resource is None else (resource.get("metadata") or {})

    async def _get_object_async(
        self, path: str, limit: int
    ) -> tuple[bytes | RangedObject, Mapping[str, str]] | None:
        fs: Any = self.fs
        for _ in range(self.max_read_attempts):
            resource = await self._resource_async(path)
            if resource is None:
                return None
            generation = str(resource["generation"])
            size = int(resource.get("size") or 0)
            if size > limit:  # ranges of exactly this generation, many at once
                fetch = self._range_fetcher(path, generation)
                return self._ranged_object(path, size, fetch), resource.get("metadata") or {}
            try:
                headers, data = await fs._call("GET", fs.url(path, generation=generation))
            except FileNotFoundError:
                continue  # that generation was replaced or deleted meanwhile: look again
            served = headers.get("X-Goog-Generation")
            if served is not None and str(served) != generation:
                continue
            return bytes(data), resource.get("metadata") or {}
        raise OSError(
            f"gs://{path} was replaced {self.max_read_attempts} times while it was read; "
            "too many concurrent writers of one location"
        )

    def _range_fetcher(self, path: str, generation: str) -> Callable[[int, int], Awaitable[bytes]]:
        fs: Any = self.fs
        url = fs.url(path, generation=generation)

        async def fetch(start: int, end: int) -> bytes:
            try:
                headers, data = await fs._call(
                    "GET", url, headers={"Range": f"bytes={start}-{end - 1}"}
                )
            except FileNotFoundError:  # that generation was replaced or deleted
                raise ReplacedWhileRead(f"gs://{path} was overwritten") from None
            served = headers.get("X-Goog-Generation")
            if served is not None and str(served) != generation:
                raise ReplacedWhileRead(f"gs://{path} was overwritten")
            return bytes(data)

        return fetch

    def _copy_object(self, src: str, dst: str, metadata: dict[str, str], size: int) -> None:
        src_bucket, src_key = self._split(src)
        bucket, key = self._split(dst)
        # The request body is the new object: its metadata replaces the source's.
        body = {"metadata": metadata, "contentType": _OCTET}
        token: str | None = None
        while True:
            out = self._call(
                "POST",
                "b/{}/o/{}/rewriteTo/b/{}/o/{}",
                src_bucket,
                src_key,
                bucket,
                key,
                headers={"Content-Type": "application/json"},
                json=body,
                json_out=True,
                rewriteToken=token,
            )
            if out.get("done"):
                break
            token = out["rewriteToken"]
        self.fs.invalidate_cache(dst)

    def _list_temps(self, path: str) -> list[tuple[str, datetime | None]]:
        bucket, prefix = self._split(self._temp_stem(path))
        listing = self._call("GET", "b/{}/o", bucket, prefix=prefix, json_out=True)
        found = []
        for item in listing.get("items", []):
            stamp = item.get("timeCreated") or item.get("updated")
            when = datetime.fromisoformat(stamp.replace("Z", "+00:00")) if stamp else None
            found.append((f"{bucket}/{item['name']}", when))
        return found


class GCSResult(FSSpecResult):
    """Results stored as objects in a GCS bucket (``pip install 'resultkit[gcs]'``).

    Credentials come from Google's default chain (``GOOGLE_APPLICATION_CREDENTIALS``,
    gcloud, the metadata server); ``STORAGE_EMULATOR_HOST`` points the client
    at an emulator. ``token`` and ``storage_options`` go to
    :class:`gcsfs.GCSFileSystem` and never appear in ``repr()``.

    Args:
        bucket: the bucket name.
        location: location template under ``bucket/prefix``.
        serializer: default :class:`~resultkit.serializers.PickleSerializer`.
        project: the Google Cloud project (for bucket operations).
        prefix: a folder inside the bucket.
        token: a gcsfs token (a path to a service-account JSON, ``"anon"``...).
        endpoint_url: an emulator or other endpoint.
        storage_options: any other :class:`gcsfs.GCSFileSystem` argument.
        retries: a :class:`~resultkit.results.RetryPolicy` (or a number of
            attempts) for transient failures of the service.
    """

    default_protocol = "gs"
    filesystem_class = "gcsfs:GCSFileSystem"
    extra = "gcs"
    storage_class = GCSStorage

    def __init__(
        self,
        bucket: str,
        location: LocationTemplate | None = None,
        serializer: Serializer | None = None,
        *,
        project: str | None = None,
        prefix: str = "",
        token: Any = None,
        endpoint_url: str | None = None,
        storage_options: dict[str, Any] | None = None,
        value: Any = None,
        verify: bool = True,
        signing_key: Any = None,
        retries: Any = None,
    ) -> None:
        options = dict(storage_options or {})
        for key, val in (("project", project), ("token", token), ("endpoint_url", endpoint_url)):
            if val is not None:
                options.setdefault(key, val)
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
