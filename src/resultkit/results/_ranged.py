"""Large object-store reads as concurrent ranged GETs straight into the destination buffer.

An object-store backend answers a read's first request (which carries the
record as metadata) with the object's size and version (S3/Azure ETag, GCS
generation). When the size is past the storage's ``ranged_read_from``,
the body is not streamed through one connection: :class:`RangedReader`
fetches ``read_part_size`` byte ranges, ``read_concurrency`` at once, as
coroutines of the client's event loop, each pinned to that version
(``If-Match`` / ``generation=``), and copies each part into its place in
the buffer the serializer allocated. The caller's thread hashes the parts
in order as the contiguous prefix completes, so the digest check is the
same as a sequential read's.

Memory: the destination buffer, plus at most ``read_concurrency`` parts in
flight (each part's response body), plus the bytes the first request
already brought (Azure's first GET). Never a whole-payload bytes object.

An overwrite racing the read makes a pinned range fail (412, or the GCS
generation gone): :class:`ReplacedWhileRead` tells the reader to start over
from a new first request (the new version, with its own record), so the
read returns the old value or the new one, never an error or a mixture.
A Ctrl-C (or any error) cancels the ranges still in flight and waits until
none can write into the buffer; the loop's thread is the client's own, so
no thread is left running.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import io
import threading
from collections.abc import Awaitable, Callable, Collection
from typing import Any, BinaryIO

from ._record import DIGEST_PREFIX, new_hasher

__all__ = [
    "RangedReader",
    "RangedReads",
    "ReplacedWhileRead",
    "RangedObject",
    "check_part_settings",
]

#: Fetch the bytes [start, end) of the pinned version; raises ReplacedWhileRead when it is gone.
FetchRange = Callable[[int, int], Awaitable[bytes]]

#: How long a cancelled read waits for the loop to take the cancellations.
_CANCEL_WAIT = 10.0


class ReplacedWhileRead(Exception):
    """The object was overwritten (or deleted) between two requests of one read: read again."""


class RangedObject:
    """What a backend's first request found: a large object to be read by ranges.

    ``prefix``: the object's first bytes when the first request brought some
    (Azure's first GET), else empty.
    """

    def __init__(
        self,
        size: int,
        fetch: FetchRange,
        prefix: bytes = b"",
        on_replaced: Callable[[], None] = lambda: None,
        release: Callable[[], None] | None = None,
    ) -> None:
        self.size = size
        self.fetch = fetch
        self.prefix = prefix
        #: Frees what the first request holds open (run on the loop) if no range used it.
        self.release = release
        #: Called when a range finds the version gone (before ReplacedWhileRead is raised).
        self.on_replaced = on_replaced


def check_part_settings(part_size: Any, concurrency: Any, threshold: Any) -> None:
    """Refuse settings that would make a ranged read misbehave, with a clear one-line error."""
    from ..errors import ConfigurationError

    for name, value in (
        ("read_part_size", part_size),
        ("read_concurrency", concurrency),
        ("ranged_read_from", threshold),
    ):
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ConfigurationError(f"{name} must be a positive whole number, got {value!r}")


class RangedReader(io.RawIOBase):
    """A stream over a large object whose bytes are fetched by concurrent ranged GETs.

    ``read_hashed(sizes, allocate)`` is the verified read (buffer, size,
    digest; see ``_verify.read_hashed``); ``read()`` serves callers that want
    plain bytes (``verify=False``).

    Example:
        >>> import asyncio, threading
        >>> loop = asyncio.new_event_loop()
        >>> t = threading.Thread(target=loop.run_forever, daemon=True); t.start()
        >>> payload = bytes(range(256)) * 40
        >>> async def fetch(start, end):
        ...     return payload[start:end]
        >>> reader = RangedReader(RangedObject(len(payload), fetch), loop, part_size=1000, concurrency=3)
        >>> data, size, digest = reader.read_hashed({len(payload)}, bytearray)
        >>> bytes(data) == payload, size
        (True, 10240)
        >>> loop.call_soon_threadsafe(loop.stop)
    """

    def __init__(
        self, found: RangedObject, loop: asyncio.AbstractEventLoop, part_size: int, concurrency: int
    ) -> None:
        super().__init__()
        self.size = found.size
        self._found = found
        self._loop = loop
        self._part_size = part_size
        self._concurrency = concurrency
        self._plain: io.BytesIO | None = None

    def readable(self) -> bool:
        return True

    def read_hashed(
        self, sizes: Collection[int], allocate: Callable[[int], Any] = bytearray
    ) -> tuple[Any, int, str]:
        """Fill one buffer from ``allocate(size)`` by ranges and hash it in order.

        ``sizes`` are the sizes the record vouches for; a size it does not
        name (an object and its record cannot disagree, so a damaged record)
        is reported without reading the rest, as a local read does.
        """
        size = self.size
        if size not in sizes:
            return bytearray(), size, "(not read: the size differs from the record's)"
        buf = allocate(size)
        view = memoryview(buf).cast("B")
        try:
            digest = self._fill(view)
        finally:
            view.release()
        return buf, size, digest

    def read(self, size: int | None = -1) -> bytes:
        if self._plain is None:
            buf = bytearray(self.size)
            view = memoryview(buf)
            try:
                self._fill(view, hash_it=False)
            finally:
                view.release()
            self._plain = io.BytesIO(buf)
        return self._plain.read(-1 if size is None else size)

    def readinto(self, b: Any) -> int:
        data = self.read(memoryview(b).nbytes)
        memoryview(b).cast("B")[: len(data)] = data
        return len(data)

    def _fill(self, view: memoryview, hash_it: bool = True) -> str:
        """Fetch every part into ``view``: at most ``concurrency`` in flight; the digest."""
        found, size, step = self._found, self.size, self._part_size
        hasher = new_hasher() if hash_it else None
        prefix = len(found.prefix)
        view[:prefix] = found.prefix
        if hasher is not None:
            hasher.update(view[:prefix])
        starts = list(range(prefix, size, step))
        pending: dict[int, concurrent.futures.Future[None]] = {}
        submitted = 0
        try:
            for index, start in enumerate(starts):
                while submitted < len(starts) and submitted < index + self._concurrency:
                    begin = starts[submitted]
                    end = min(size, begin + step)
                    pending[submitted] = asyncio.run_coroutine_threadsafe(
                        _fetch_into(found.fetch, begin, end, view[begin:end]), self._loop
                    )
                    submitted += 1
                pending.pop(index).result()
                if hasher is not None:  # the contiguous prefix grew by this part
                    hasher.update(view[start : min(size, start + step)])
        except BaseException as exc:
            if isinstance(exc, ReplacedWhileRead):
                found.on_replaced()
            # Nothing may write into the buffer once the caller has it back (or
            # it is freed): cancel what is in flight and wait until it stopped.
            # A cancelled future asks the loop to cancel its task; a no-op queued
            # after those requests runs once every task has taken its
            # cancellation, after which none reaches its copy.
            for future in pending.values():
                future.cancel()
            if pending and not self._loop.is_closed():
                barrier = asyncio.run_coroutine_threadsafe(_barrier(), self._loop)
                concurrent.futures.wait([barrier], timeout=_CANCEL_WAIT)
            raise
        return "" if hasher is None else DIGEST_PREFIX + str(hasher.hexdigest())

    def close(self) -> None:
        self._plain = None
        release, self._found.release = self._found.release, None
        if release is not None and not self._loop.is_closed():
            # On the loop: the response it holds belongs to the loop's connections.
            self._loop.call_soon_threadsafe(release)
        super().close()


async def _barrier() -> None:
    return None


async def _fetch_into(fetch: FetchRange, start: int, end: int, into: memoryview) -> None:
    data = await fetch(start, end)
    if len(data) != end - start:
        # The pinned version cannot change length: a server that ignored the
        # pin (or a cut response). Read the whole object again.
        raise ReplacedWhileRead(f"range {start}-{end} came back with {len(data)} bytes")
    into[:] = data


class RangedReads:
    """The ranged-read settings and helpers of an object-store storage (mixed into it).

    Set them on a Result's storage (``result.storage.read_concurrency = 16``)
    or on a subclass.
    """

    #: Payloads larger than this are read by concurrent ranged GETs (``_ranged.py``).
    #: At 16 MiB one stream takes ~0.2-0.3 s at a connection's usual 50-100 MB/s, so
    #: the ranges' one extra round trip (the first request only tells size and
    #: version) is a few percent of it; below, one GET is as fast and simpler.
    ranged_read_from: int = 16 * 2**20
    #: Bytes per ranged GET: big enough that a request's round trip is small
    #: next to its transfer, small enough that ``read_concurrency`` of them in
    #: flight (the read's extra memory) stay modest.
    read_part_size: int = 8 * 2**20
    #: Ranged GETs in flight at once for one read.
    read_concurrency: int = 8

    def _stream(self, data: bytes | RangedObject) -> BinaryIO:
        if isinstance(data, RangedObject):
            fs: Any = self.fs  # type: ignore[attr-defined]
            reader: Any = RangedReader(data, fs.loop, self.read_part_size, self.read_concurrency)
            return reader
        return io.BytesIO(data)

    def _range_limit(self, path: str) -> int:
        """Above this many bytes, the object at ``path`` is read by ranges (in the caller's thread).

        Not right after this thread's ranged read of ``path`` was overtaken by
        an overwrite: that read starts over with one streamed GET, which sees
        one version whatever the writers do, so a read under a stream of
        overwrites finishes instead of starting over every time.
        """
        check_part_settings(self.read_part_size, self.read_concurrency, self.ranged_read_from)
        overtaken = _overtaken()
        if path in overtaken:
            overtaken.discard(path)
            return _NEVER
        return self.ranged_read_from

    def _ranged_object(
        self,
        path: str,
        size: int,
        fetch: Any,
        prefix: bytes = b"",
        release: Callable[[], None] | None = None,
    ) -> RangedObject:
        """A large object of ``path`` to read by ranges; an overwrite midway marks it."""
        return RangedObject(
            size, fetch, prefix, on_replaced=lambda: _overtaken().add(path), release=release
        )


_THREAD = threading.local()
_NEVER = 2**62


def _overtaken() -> set[str]:
    """Paths whose ranged read in this thread was overtaken by an overwrite."""
    found: set[str] | None = getattr(_THREAD, "overtaken", None)
    if found is None:
        found = _THREAD.overtaken = set()
    return found
