"""FSSpecResult: a Result under a root folder of any fsspec filesystem, and ``from_url``.

A backend (LocalResult, S3Result...) only says which filesystem to build,
with which credentials, and which storage strategy it uses; everything else
is :class:`~resultkit.results.StorageResult`'s.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, ClassVar

import fsspec
from fsspec.implementations.local import LocalFileSystem
from fsspec.spec import AbstractFileSystem

from ..errors import ConfigurationError
from ..serializers import Serializer
from ._fsstorage import FileSystemStorage
from ._localstorage import LocalFileStorage
from ._location import LocationTemplate
from ._objectstore import object_store_class
from ._storage_result import StorageResult
from .retry import RetryPolicy

__all__ = ["FSSpecResult", "from_url"]


def _protocols_of(fs: Any) -> tuple[str, ...]:
    named = getattr(fs, "protocol", ())
    return (named,) if isinstance(named, str) else tuple(named)


class FSSpecResult(StorageResult):
    """A Result stored under a root folder of any fsspec filesystem.

    Args:
        fs: an fsspec filesystem instance, or a protocol name (``"file"``,
            ``"memory"``, ``"s3"``...) to build one lazily from
            ``storage_options``. The client is built once, on first use, and
            shared by every copy of the Result.
        root: the folder (or ``bucket/prefix``) that every location is relative to.
        location: the location template (str or callable); default: a unique name.
        serializer: default :class:`~resultkit.serializers.PickleSerializer`.
        storage_options: passed to the filesystem when it is built lazily
            (credentials go here; they never appear in ``repr()``).
        fsync: local filesystems only: fsync the payload and its folder at
            each publish, so it survives a power loss.
        verify: check the integrity record on read (default). ``False`` reads
            payloads written by other tools, which have no record.

    Example:
        >>> from fsspec.implementations.memory import MemoryFileSystem
        >>> r = FSSpecResult(MemoryFileSystem(), "/demo", location="{x}.pkl")
        >>> r.write(41, x="a").read().value
        41
    """

    #: Protocol used when ``fs`` is not given (subclasses set their own).
    default_protocol: ClassVar[str] = "file"
    #: ``"module:Class"`` of the filesystem a backend builds, and the pip extra
    #: that installs it; ``None``: whatever fsspec registers for the protocol.
    filesystem_class: ClassVar[str | None] = None
    extra: ClassVar[str] = ""
    #: The storage strategy; ``None`` picks local, object store or generic by protocol.
    storage_class: ClassVar[type[FileSystemStorage] | None] = None

    def __init__(
        self,
        fs: AbstractFileSystem | str | None = None,
        root: str = "",
        location: LocationTemplate | None = None,
        serializer: Serializer | None = None,
        *,
        value: Any = None,
        storage_options: dict[str, Any] | None = None,
        fsync: bool = False,
        verify: bool = True,
        signing_key: str | bytes | Sequence[str | bytes] | None = None,
        retries: RetryPolicy | int | None = None,
    ) -> None:
        fs = fs if fs is not None else self.default_protocol
        protocol = fs if isinstance(fs, str) else None
        storage: FileSystemStorage
        if protocol == "file" or isinstance(fs, LocalFileSystem):
            if storage_options:
                raise ConfigurationError("local files take no storage_options")
            root = LocalFileSystem._strip_protocol(root) if root else ""
            storage = LocalFileStorage(root, fsync=fsync)
        else:
            # The strategy is chosen once, by protocol (an instance's own protocols
            # count too: an s3fs filesystem passed in gets the S3 storage).
            named = (protocol,) if protocol else _protocols_of(fs)
            found = [c for c in map(object_store_class, named) if c is not None]
            cls = self.storage_class or (found[0] if found else FileSystemStorage)
            if protocol is not None:  # a client built here gets the storage's defaults
                storage_options = cls.client_options(dict(storage_options or {}))
            storage = cls(
                fs,
                root,
                storage_options,
                filesystem_class=self.filesystem_class,
                extra=self.extra,
            )
        super().__init__(
            storage,
            location=location,
            serializer=serializer,
            value=value,
            verify=verify,
            signing_key=signing_key,
            retries=retries,
        )
        self.fsync = fsync

    @property
    def fs(self) -> AbstractFileSystem:
        """The fsspec filesystem (built on first use, shared by every copy)."""
        return self.storage.fs  # type: ignore[attr-defined]

    def _init_bucket(
        self,
        kind: str,
        name: str,
        prefix: str,
        options: dict[str, Any],
        location: LocationTemplate | None,
        serializer: Serializer | None,
        value: Any,
        verify: bool,
        signing_key: Any = None,
        retries: Any = None,
    ) -> None:
        """Set up a Result rooted at ``name/prefix`` of a bucket or container."""
        if not isinstance(name, str) or not name or "/" in name:
            raise ConfigurationError(
                f"a {kind} name without '/' is needed, got {name!r}; use prefix= for folders"
            )
        prefix = prefix.strip("/")
        FSSpecResult.__init__(
            self,
            self.default_protocol,
            f"{name}/{prefix}" if prefix else name,
            location=location,
            serializer=serializer,
            value=value,
            storage_options=options,
            verify=verify,
            signing_key=signing_key,
            retries=retries,
        )


def from_url(
    url: str,
    location: LocationTemplate | None = None,
    serializer: Serializer | None = None,
    *,
    signing_key: str | bytes | Sequence[str | bytes] | None = None,
    retries: RetryPolicy | int | None = None,
    **storage_options: Any,
) -> FSSpecResult:
    """Build a Result rooted at any fsspec URL.

    Example:
        >>> r = from_url("memory://from-url-demo")
        >>> r.write([1, 2], location="x.pkl").location
        'memory:///from-url-demo/x.pkl'

    ``from_url("s3://bucket/prefix", key=..., secret=...)``,
    ``from_url("gs://bucket/prefix", token=...)`` and local paths work the same;
    the storage options go to the filesystem, which is built lazily.
    """
    if not isinstance(url, str) or not url:
        raise ConfigurationError(f"from_url needs a URL string, got {url!r}")
    if "::" in url:  # chained URL (e.g. simplecache::s3://...): let fsspec build it now
        fs, root = fsspec.core.url_to_fs(url, **storage_options)
        return FSSpecResult(
            fs,
            root,
            location=location,
            serializer=serializer,
            signing_key=signing_key,
            retries=retries,
        )
    protocol = fsspec.utils.get_protocol(url)
    return FSSpecResult(
        protocol,
        url,
        location=location,
        serializer=serializer,
        storage_options=storage_options,
        signing_key=signing_key,
        retries=retries,
    )
