"""GCSResult: results in a Google Cloud Storage bucket via gcsfs."""

from __future__ import annotations

from typing import Any

from ..serializers import Serializer
from ._fsspec import FSSpecResult
from ._location import LocationTemplate
from ._objectstore import ObjectStoreStorage, head_request

__all__ = ["GCSResult", "GCSStorage"]


class GCSStorage(ObjectStoreStorage):
    """Objects in a GCS bucket; ``exists`` is one metadata GET (GCS has no HEAD)."""

    def _head_path(self, path: str) -> bool:
        fs: Any = self.fs
        return head_request(fs, fs._get_object, path)


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
    ) -> None:
        options = dict(storage_options or {})
        for key, val in (("project", project), ("token", token), ("endpoint_url", endpoint_url)):
            if val is not None:
                options.setdefault(key, val)
        self.bucket = bucket
        self._init_bucket(
            "bucket", bucket, prefix, options, location, serializer, value, verify, signing_key
        )
