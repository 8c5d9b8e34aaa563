"""The byte-level storage under a Result: the public API for writing a backend.

A backend that is not an fsspec filesystem (a SQL table, Redis, an HTTP
store, a vendor SDK) subclasses :class:`Storage` and implements five
methods on *keys* (``/``-separated paths relative to the storage's root,
already checked by the Result) and *metadata* (a small ``str -> str``
mapping stored with the bytes, as S3, GCS and Azure store object metadata):

=================  ==========================================================
``put``            store bytes and metadata as one unit, replacing any old pair
``get``            return ``(bytes, metadata)``, or ``None`` when nothing is there
``head``           return the metadata without the bytes, or ``None``
``delete``         remove the pair; return whether anything was there
``list``           iterate over the keys stored under a prefix
=================  ==========================================================

and optionally ``put_if_absent`` (an atomic create; the contract suite
tests it when :attr:`Storage.supports_put_if_absent` is true),
``open_writer`` / ``open_reader`` (streaming, for large values) and
``exists_many`` (bulk existence checks).

:class:`~resultkit.results.StorageResult` does everything else once, for
every backend: location templating and safety, the integrity record (the
serializer's name, the payload's size and digest, the write time, carried
in the metadata), verification before any byte is deserialized, and the
mapping of errors. A backend therefore cannot get those wrong; what it must
get right is that ``put`` is atomic: a concurrent ``get`` sees the old pair
or the new pair, never a mix. The contract suite
(:class:`resultkit.testing.ResultContract`) checks it.

Example (a complete, if not persistent, backend)::

    class DictStorage(Storage):
        def __init__(self):
            self.objects = {}
            self.root_url = "dict://"

        def put(self, key, data, metadata):
            self.objects[key] = (bytes(data), dict(metadata))

        def get(self, key):
            return self.objects.get(key)

        def head(self, key):
            found = self.objects.get(key)
            return None if found is None else found[1]

        def delete(self, key):
            return self.objects.pop(key, None) is not None

        def list(self, prefix=""):
            return [k for k in self.objects if k.startswith(prefix)]

    result = StorageResult(DictStorage(), location="{name}.pkl")
"""

from __future__ import annotations

import abc
import builtins
import io
from collections.abc import Iterable, Mapping
from typing import Any, BinaryIO, Protocol

from ..errors import ConfigurationError
from ._keymarks import exists_about

__all__ = ["Storage", "StorageWriter", "Metadata"]

#: Metadata stored with a payload: short ``str -> str`` pairs (the integrity record).
Metadata = Mapping[str, str]

_REQUIRED = ("put", "get", "head", "delete", "list")


class StorageWriter(Protocol):
    """A streaming upload: ``write`` the bytes, then ``commit`` them with their metadata.

    Nothing is visible to readers before :meth:`commit`; :meth:`abort`
    throws the bytes away (it is called when serialization fails).
    """

    def write(self, data: Any, /) -> int | None: ...

    def commit(self, metadata: Metadata) -> None: ...

    def abort(self) -> None: ...


class _BufferedWriter:
    """The default :meth:`Storage.open_writer`: collect the bytes, then one ``put``."""

    def __init__(self, storage: Storage, key: str) -> None:
        self._storage = storage
        self._key = key
        self._buffer: io.BytesIO | None = io.BytesIO()

    def write(self, data: Any) -> int:
        assert self._buffer is not None, "write after commit or abort"
        return self._buffer.write(data)

    def commit(self, metadata: Metadata) -> None:
        assert self._buffer is not None, "commit after commit or abort"
        data, self._buffer = self._buffer.getbuffer(), None
        self._storage.put(self._key, data, metadata)

    def abort(self) -> None:
        self._buffer = None


class Storage(abc.ABC):
    """Byte-level storage of ``(bytes, metadata)`` pairs under string keys.

    Implement :meth:`put`, :meth:`get`, :meth:`head`, :meth:`delete` and
    :meth:`list`, and set :attr:`root_url`. A class missing one of them
    cannot be constructed; the error names what to implement.

    Raise ``PermissionError`` for refused access and any other exception for
    failures (they become :class:`~resultkit.errors.StorageAccessError` and
    :class:`~resultkit.errors.StorageError` naming the location); report
    "nothing there" by returning ``None`` / ``False``, never by raising.
    """

    #: The URL every canonical location of this storage starts with
    #: (``root_url + "/" + key``), e.g. ``"sqlite:///data/results.db"``.
    root_url: str = ""

    #: Whether ``put`` stores bytes and metadata as one atomic unit. A
    #: storage that keeps them in two objects sets it to ``False``: a reader
    #: that finds a mismatched pair then reads again before calling it corrupt.
    atomic_pairs: bool = True

    #: Items of a ``write_many`` / ``read_many`` in flight at once by default.
    #: Each is a thread waiting on its request; object stores raise it (their
    #: requests are coroutines on one event loop, so many cost little).
    batch_concurrency: int = 8

    def __new__(cls, *args: Any, **kwargs: Any) -> Any:
        missing = sorted(getattr(cls, "__abstractmethods__", ()))
        if missing:
            raise ConfigurationError(
                f"{cls.__name__} cannot be used: it must implement "
                f"{', '.join(missing)} (see resultkit.results.Storage: put, get, head, "
                "delete and list are required)"
            )
        return super().__new__(cls)

    # -- required ----------------------------------------------------------------
    @abc.abstractmethod
    def put(self, key: str, data: bytes | bytearray | memoryview, metadata: Metadata) -> None:
        """Store ``data`` with ``metadata`` under ``key``, replacing any old pair atomically."""

    @abc.abstractmethod
    def get(self, key: str) -> tuple[bytes | bytearray | memoryview, Metadata] | None:
        """Return the bytes and metadata stored under ``key`` (one consistent pair), or ``None``.

        The metadata must hold every key ``put`` stored, unchanged; a storage
        may add keys of its own (resultkit's file storages add ``previous``).
        """

    @abc.abstractmethod
    def head(self, key: str) -> Metadata | None:
        """Return the metadata stored under ``key`` without its bytes, or ``None``.

        Same rule as :meth:`get`: the keys put come back unchanged, others may be added.
        """

    @abc.abstractmethod
    def delete(self, key: str) -> bool:
        """Remove the pair stored under ``key``; return whether anything was there."""

    @abc.abstractmethod
    def list(self, prefix: str = "") -> Iterable[str]:
        """Iterate over the keys stored under ``prefix``, at any depth.

        ``prefix`` is ``""`` (every key) or a folder ending in ``/`` (``"a/"``
        lists ``a/x`` and ``a/b/y``, never ``a-other/z``).
        """

    # -- optional ----------------------------------------------------------------
    def put_if_absent(
        self, key: str, data: bytes | bytearray | memoryview, metadata: Metadata
    ) -> bool:
        """Store the pair only if nothing is stored under ``key``; return whether it did.

        The check and the create must be one atomic operation (``O_EXCL``,
        ``If-None-Match: *``, ``INSERT`` on a primary key...): of many
        concurrent callers exactly one gets ``True``. Optional: storages that
        cannot do it leave it unimplemented.
        """
        raise NotImplementedError(
            f"{type(self).__name__} has no atomic create (put_if_absent); implement it to "
            "enable single-flight locks on this storage"
        )

    @property
    def supports_put_if_absent(self) -> bool:
        """Whether this storage implements :meth:`put_if_absent`."""
        return type(self).put_if_absent is not Storage.put_if_absent

    def exists(self, key: str) -> bool:
        """Whether something is stored under ``key`` (default: :meth:`head`)."""
        return self.head(key) is not None

    def exists_many(self, keys: builtins.list[str]) -> builtins.list[bool]:
        """:meth:`exists` for many keys; override to answer in bulk (a failure is marked
        with its key, so the error names that key's location)."""
        return [exists_about(k, self.exists) for k in keys]

    def open_writer(self, key: str) -> StorageWriter:
        """A streaming writer for ``key``; the default buffers and calls :meth:`put`."""
        return _BufferedWriter(self, key)

    def open_reader(self, key: str) -> tuple[BinaryIO, Metadata] | None:
        """A readable stream of the bytes under ``key`` and their metadata, or ``None``.

        The stream and the metadata must belong together. The default wraps
        :meth:`get`; storages of large values override it to stream.
        """
        found = self.get(key)
        if found is None:
            return None
        data, metadata = found
        return io.BytesIO(data), metadata

    def url(self, key: str) -> str:
        """The canonical URL of ``key``."""
        root = self.root_url
        return f"{root}{key}" if root.endswith("/") else f"{root}/{key}"

    def key_of(self, url: str) -> str | None:
        """The key of a canonical URL of this storage, or ``None`` when it is not one."""
        root = self.root_url if self.root_url.endswith("/") else self.root_url + "/"
        return url[len(root) :] if url.startswith(root) else None

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.root_url!r})"
