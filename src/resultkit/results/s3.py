"""S3Result: results in an S3 bucket (or any S3-compatible server) via s3fs."""

from __future__ import annotations

from typing import Any

from ..serializers import Serializer
from ._fsspec import FSSpecResult
from ._location import LocationTemplate
from ._objectstore import ObjectStoreStorage, head_request

__all__ = ["S3Result", "S3Storage"]


class S3Storage(ObjectStoreStorage):
    """Objects in an S3 bucket; ``exists`` is exactly one HEAD request."""

    def _head_path(self, path: str) -> bool:
        fs: Any = self.fs
        bucket, key, _ = fs.split_path(path)
        return head_request(fs, fs._call_s3, "head_object", fs.kwargs, Bucket=bucket, Key=key)


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
    ) -> None:
        options = dict(storage_options or {})
        if endpoint_url:
            options.setdefault("endpoint_url", endpoint_url)
        # s3fs's concurrent read first asks for the size (an extra HEAD on every
        # read); one GET is cheaper for results. Raise it for very large objects.
        options.setdefault("max_concurrency", 1)
        self.bucket = bucket
        self._init_bucket(
            "bucket", bucket, prefix, options, location, serializer, value, verify, signing_key
        )
