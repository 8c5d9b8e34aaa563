"""GCSResult: results in a Google Cloud Storage bucket via gcsfs."""

from __future__ import annotations

from typing import Any

from fsspec.asyn import sync
from fsspec.spec import AbstractFileSystem

from ..errors import ConfigurationError
from ..serializers import Serializer
from ._fsspec import FSSpecResult
from ._location import LocationTemplate

__all__ = ["GCSResult"]


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
    ) -> None:
        if not bucket or "/" in bucket:
            raise ConfigurationError(
                f"GCSResult needs a bucket name without '/', got {bucket!r}; use prefix= for folders"
            )
        options = dict(storage_options or {})
        for key, val in (("project", project), ("token", token), ("endpoint_url", endpoint_url)):
            if val is not None:
                options.setdefault(key, val)
        self.bucket = bucket
        root = f"{bucket}/{prefix.strip('/')}" if prefix.strip("/") else bucket
        super().__init__(
            "gs",
            root,
            location=location,
            serializer=serializer,
            value=value,
            storage_options=options,
            verify=verify,
        )

    def _make_fs(self) -> AbstractFileSystem:
        try:
            import gcsfs
        except ImportError as exc:  # pragma: no cover - depends on the install
            raise ConfigurationError("GCSResult needs gcsfs: pip install 'resultkit[gcs]'") from exc
        return gcsfs.GCSFileSystem(**self._storage_options)

    def _head(self, path: str) -> bool:
        fs: Any = self.fs
        try:
            sync(fs.loop, fs._get_object, path)  # one GET of the object's metadata
        except FileNotFoundError:
            return False
        return True
