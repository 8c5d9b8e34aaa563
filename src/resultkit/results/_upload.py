"""Streaming uploads to object stores: one request when small, a bounded stream when large.

A payload and its record must reach an object store as ONE object (the
record in the object's own metadata), published by one request. The digest
is known only once the serializer has finished, so:

* a small payload (up to ``single_request_limit``) is buffered and goes up
  in one PUT that carries the record as metadata;
* a large one is streamed a part at a time into a :class:`LargeUpload` that
  the storage provides, which publishes it with the record at
  :meth:`LargeUpload.commit`: S3 and GCS upload a temporary object (named
  ``.NAME.rktmp-PID-TOKEN``, hidden from ``list``) and copy it server-side
  onto the key with the metadata (:class:`TempObjectUpload`); Azure stages
  blocks and commits the block list with the metadata (``azure.py``).

Memory stays bounded by the limit and one part in flight, never the payload.

``write_many`` on an object store runs each item's write up to its request
in the caller's thread under :func:`holding_small_put`: the writer keeps the
small PUT it would send (:class:`HeldPut`) for the batch to send as a
coroutine on the client's event loop; a payload past the limit goes on as
the streamed upload of a write, from that same serialization (never a second
one: a value serializes once, as in ``write``).
"""

from __future__ import annotations

import contextlib
import io
import os
from collections.abc import Callable, Iterator
from contextvars import ContextVar
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any, Protocol

from ._location import TEMP_MARKER

if TYPE_CHECKING:
    from ._objectstore import ObjectStoreStorage
    from .storage import Metadata

__all__ = [
    "SpillingUpload",
    "LargeUpload",
    "TempObjectUpload",
    "ObjectWriter",
    "HeldPut",
    "holding_small_put",
    "temp_owner_pid",
]


class LargeUpload(Protocol):
    """A streamed upload that publishes its bytes with their metadata at ``commit``."""

    def write(self, data: memoryview, /) -> None: ...

    def commit(self, metadata: dict[str, str]) -> None: ...

    def abort(self) -> None: ...


class SpillingUpload:
    """Buffers up to ``limit`` bytes; past it, streams into a :class:`LargeUpload`.

    ``put_small(bytes, metadata)`` publishes a buffered payload in one
    request; ``start_large()`` opens the streamed upload the first time the
    limit is crossed. Nothing is visible before :meth:`commit`.
    """

    def __init__(
        self,
        limit: int,
        put_small: Callable[[bytes, dict[str, str]], Any],
        start_large: Callable[[], LargeUpload],
    ) -> None:
        self._limit = limit
        self._put_small = put_small
        self._start_large = start_large
        self._buffer: io.BytesIO | None = io.BytesIO()
        self._large: LargeUpload | None = None
        self._done = False

    @property
    def spilled(self) -> bool:
        """Whether the payload outgrew the buffer and streams as a large upload."""
        return self._large is not None

    def write(self, data: Any) -> int:
        assert not self._done, "write after commit or abort"
        view = memoryview(data).cast("B")
        if self._large is None:
            assert self._buffer is not None
            if self._buffer.tell() + view.nbytes <= self._limit:
                return self._buffer.write(view)
            self._large = self._start_large()
            self._large.write(self._buffer.getbuffer())
            self._buffer = None
        # Feed the upload in slices so it flushes a part at a time instead of
        # buffering (and copying) one huge write whole.
        step = max(self._limit, 1)
        for start in range(0, view.nbytes, step):
            self._large.write(view[start : start + step])
        return view.nbytes

    def commit(self, metadata: dict[str, str]) -> None:
        assert not self._done, "commit after commit or abort"
        self._done = True
        if self._large is None:
            assert self._buffer is not None
            data, self._buffer = self._buffer.getvalue(), None
            self._put_small(data, metadata)
        else:
            self._large.commit(metadata)

    def abort(self) -> None:
        self._done = True
        self._buffer = None
        if self._large is not None:
            self._large.abort()


def temp_owner_pid(name: str) -> int | None:
    """The writer's pid in a temporary object's name (``.NAME.rktmp-PID-TOKEN``), if any."""
    _, marker, rest = name.rpartition(TEMP_MARKER)
    if not marker:
        return None
    pid, _, _ = rest.partition("-")
    return int(pid) if pid.isdigit() else None


class TempObjectUpload:
    """A large payload streamed to a temporary object, then copied onto its key.

    The temporary object ``folder/.NAME.rktmp-PID-TOKEN`` is uploaded with
    the filesystem's own streamed writer (S3 multipart, GCS resumable), and
    is invisible until complete. :meth:`commit` then asks the server to copy
    it onto the key *with* the record as metadata (one atomic request: a
    reader sees the old object or the new one, each with its own record),
    deletes it, and sweeps this key's temporary objects that dead writers
    left (older than ``storage.stale_temp_age``). A crash before the copy
    leaves the old value; one after it leaves a temporary object that the
    next large write of the key (or ``resultkit gc``) removes.
    """

    def __init__(self, storage: ObjectStoreStorage, path: str) -> None:
        self._storage = storage
        self._path = path
        self._tmp = storage._temp_names(path)[0]
        self._file: Any = storage.fs.open(self._tmp, "wb")
        self._size = 0
        self._closed = False  # the upload is complete or discarded
        self._temp_exists = False

    def write(self, data: memoryview) -> None:
        self._file.write(data)
        self._size += data.nbytes

    def commit(self, metadata: dict[str, str]) -> None:
        storage = self._storage
        self._closed = True
        self._file.close()  # completes the upload: the temporary object exists
        self._temp_exists = True
        try:
            storage._copy_object(self._tmp, self._path, metadata, self._size)
        finally:
            self._remove_temp()
        with contextlib.suppress(Exception):  # best effort: never fails a publish
            storage._sweep_temps(self._path)

    def abort(self) -> None:
        if not self._closed:
            # Abort the multipart/resumable upload instead of completing it
            # (closing an fsspec file, even at garbage collection, would
            # publish what was written so far).
            self._closed = True
            with contextlib.suppress(Exception):
                self._file.discard()
            self._file.closed = True
        self._remove_temp()

    def _remove_temp(self) -> None:
        if self._temp_exists:
            self._temp_exists = False
            with contextlib.suppress(Exception):
                self._storage.fs.rm_file(self._tmp)


def is_stale_temp(name: str, modified: datetime | None, max_age_s: float) -> bool:
    """Whether a temporary object was left by a writer that is gone.

    Age decides (``modified`` older than ``max_age_s``): object stores are
    shared by machines, so a pid says nothing about another host's writer.
    This process's own temporary objects (a sibling thread's upload) are
    never stale.
    """
    if TEMP_MARKER not in name or temp_owner_pid(name) == os.getpid():
        return False
    if modified is None:
        return False
    if modified.tzinfo is None:
        modified = modified.replace(tzinfo=timezone.utc)
    return (datetime.now(timezone.utc) - modified).total_seconds() > max_age_s


@dataclass
class HeldPut:
    """The one request of a small write, kept for the caller to send (``write_many``)."""

    storage: ObjectStoreStorage
    path: str = ""
    data: bytes = b""
    metadata: dict[str, str] = field(default_factory=dict)
    held: bool = False  # the writer committed: path, data and metadata are set
    streamed: bool = False  # the payload was too large: the writer streamed and published it
    opened: bool = False  # a writer under this hold exists already

    def hold(self, path: str, data: bytes, metadata: dict[str, str]) -> None:
        self.path, self.data, self.metadata, self.held = path, data, metadata, True

    def stream_large(self, path: str) -> LargeUpload:
        """The payload outgrew one request: stream it as ``write`` does, right here.

        Not a restart elsewhere: the serializer is mid-way through the value,
        and a value that serializes once only (a generator of chunks, a
        stream) would lose what it has written already.
        """
        self.streamed = True
        return self.storage._start_large_upload(path)


_HOLDING: ContextVar[HeldPut | None] = ContextVar("resultkit_holding_small_put", default=None)


@contextlib.contextmanager
def holding_small_put(storage: ObjectStoreStorage) -> Iterator[HeldPut]:
    """Within the block, a write to ``storage`` in this thread keeps its PUT instead of sending it.

    Everything before the request runs as in any write (serializing,
    hashing, the record, its metadata); a payload past the limit is streamed
    and published by the writer as in any write (``held.streamed``). Only the
    block's first writer holds its request: a second one (a ``_store`` that
    writes two objects) sends its own, so no object is ever lost to a hold.
    """
    held = HeldPut(storage)
    token = _HOLDING.set(held)
    try:
        yield held
    finally:
        _HOLDING.reset(token)


class ObjectWriter:
    """``open_writer`` of an object store: one PUT when small, a streamed upload when large."""

    def __init__(self, storage: ObjectStoreStorage, path: str) -> None:
        self._storage = storage
        held = _HOLDING.get()
        if held is not None and held.storage is storage and not held.opened:  # write_many sends it
            held.opened = True
            self._upload = SpillingUpload(
                storage.single_request_limit,
                lambda data, metadata: held.hold(path, data, metadata),
                lambda: held.stream_large(path),
            )
            return
        self._upload = SpillingUpload(
            storage.single_request_limit,
            lambda data, metadata: storage._put_object(path, data, metadata),
            lambda: storage._start_large_upload(path),
        )

    def write(self, data: Any) -> int:
        return self._upload.write(data)

    def commit(self, metadata: Metadata) -> None:
        self._upload.commit(self._storage._encode(metadata))

    def abort(self) -> None:
        self._upload.abort()
