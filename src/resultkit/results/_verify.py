"""Checks of a stored pair: its record parsed, its payload read whole and hashed.

Nothing here deserializes: the Result hands bytes to its serializer only
after these checks pass.
"""

from __future__ import annotations

import io
import os
import stat
from collections.abc import Callable, Collection
from typing import Any, BinaryIO

from ..errors import ResultCorruptError, SerializerMismatchError
from ..serializers import Serializer
from ._errors import SinkError, causes
from ._hashalong import HASH_ALONG_FROM, ChunkHasher, read_file_along
from ._record import DIGEST_PREFIX, Record, new_hasher, parsed_record, previous_record
from .storage import Metadata

__all__ = [
    "parse_record",
    "check_serializer",
    "read_hashed",
    "read_unverified",
    "corrupt_error",
    "find_sink_error",
    "matching_record",
]

# Above this, a payload's buffer grows as it is read instead of being
# allocated from the size its record claims (a damaged record could claim TBs).
_PREALLOCATE_LIMIT = 1 << 30


def parse_record(location: str, metadata: Metadata) -> Record:
    if not metadata:
        raise ResultCorruptError(
            f"the payload at {location} has no integrity record: it was not written by "
            "resultkit, or its write was interrupted. Write it again, adopt it "
            "(result.adopt(location), or `resultkit adopt`) if you trust it, or read it "
            "with a Result made with verify=False (e.g. LocalResult(dir=..., verify=False)).",
            location=location,
        )
    try:
        return parsed_record(metadata)
    except (ValueError, RecursionError) as exc:
        raise ResultCorruptError(
            f"the integrity record of {location} is unreadable ({exc}); write it again",
            location=location,
        ) from exc


def check_serializer(location: str, record: Record, serializer: Serializer) -> None:
    if record.serializer != serializer.name:
        raise SerializerMismatchError(
            f"the payload at {location} was written with serializer "
            f"{record.serializer!r} but is being read with {serializer.name!r}; "
            "read it with a Result configured with the serializer that wrote it",
            location=location,
            written_by=record.serializer,
            reading_with=serializer.name,
        )


def matching_record(metadata: Metadata, record: Record, size: int, digest: str) -> Record | None:
    """The record that vouches for a payload of ``size`` and ``digest``: its own,
    or the one it replaced (named in it while a publish is under way), else None."""
    if (size, digest) == (record.size, record.digest):
        return record
    prev = previous_record(metadata)
    if prev is not None and (size, digest) == (prev.size, prev.digest):
        return prev
    return None


def find_sink_error(exc: BaseException) -> SinkError | None:
    return next((seen for seen in causes(exc, 8) if isinstance(seen, SinkError)), None)


def _fstat(stream: BinaryIO) -> os.stat_result | None:
    """The stream's file status (one ``fstat``), or None for streams that are not files."""
    known = getattr(stream, "stat", None)  # the local storage's reader has it already
    if isinstance(known, os.stat_result):
        return known
    try:
        return os.fstat(stream.fileno())
    except (AttributeError, OSError, ValueError, io.UnsupportedOperation):
        return None


def _remaining(stream: BinaryIO) -> int | None:
    """What is left in a seekable stream (a buffer) without reading it, else None."""
    try:
        here = stream.tell()
        end = stream.seek(0, io.SEEK_END)
        stream.seek(here)
        return int(end) - int(here)
    except (AttributeError, OSError, ValueError, io.UnsupportedOperation):
        return None


#: Files up to this size are read with one call into a bytes object.
_SMALL = 1 << 16
#: Bytes read per step (then hashed while they are still in the CPU cache).
_CHUNK = 1 << 20
#: Bytes read per step when the digest is taken on another thread (a huge page).
_ALONG_CHUNK = 2 << 20


def read_hashed(
    stream: BinaryIO, sizes: Collection[int], allocate: Callable[[int], Any] = bytearray
) -> tuple[Any, int, str]:
    """Read a whole payload into one buffer and hash it on the way: (data, size, digest).

    ``sizes`` are the sizes a record vouches for (its own, and the one it
    replaces while a publish is under way). Never reads more than the largest
    and one byte more: a payload longer than its record says is damaged
    whatever follows (a damaged record, or a
    payload swapped for a device that never ends, cannot make a read
    allocate or hash without bound). A payload whose size is known up front
    and differs is reported without reading it. ``allocate(n)`` makes the
    writable buffer the bytes are read into (a serializer's own, so it can
    use the verified bytes in place).
    """
    st = _fstat(stream)
    actual = st.st_size if st is not None else _remaining(stream)
    if actual is not None and actual not in sizes and st is not None:
        # Not read, so not hashed: the file's identity stands in for its digest
        # (a reader that sees "the same" mismatch twice must see the same file).
        file_id = f"{st.st_dev}:{st.st_ino}:{st.st_mtime_ns}"
        return bytearray(), actual, f"(not read: the size differs; file {file_id})"
    expected: int = actual if actual is not None and actual in sizes else max(sizes)
    if expected > _PREALLOCATE_LIMIT:
        return _read_growing(stream, expected)
    if expected <= _SMALL and st is not None:  # a small file: one read, one digest
        data = stream.read(expected + 1)
        if len(data) == expected:
            return data, expected, Record.digest_of(data)
        if len(data) > expected:
            return data, expected + 1, "(more bytes than the record says)"
        return data, len(data), Record.digest_of(data)  # shorter: damaged or being replaced
    buf = allocate(expected)
    view = memoryview(buf).cast("B")
    hasher = new_hasher()
    readinto = getattr(stream, "readinto", None)
    filled = 0
    regular = st is not None and stat.S_ISREG(st.st_mode)
    fd = _fileno(stream) if regular and expected >= HASH_ALONG_FROM else None
    read_in_place = -1  # -1: not read by threads (not a local file, or no thread to be had)
    if fd is not None:  # a local file: read in place by two threads, hashed here
        offset = stream.tell()
        read_in_place = read_file_along(fd, offset, view, hasher)
        if read_in_place >= 0:
            filled = read_in_place
            stream.seek(offset + filled)  # pread moved nothing: the checks below go on from here
    if read_in_place < 0 and readinto is not None and expected >= HASH_ALONG_FROM:
        with ChunkHasher(hasher) as along:
            filled = _read_along(readinto, view, expected, along)
            along.close()
    while filled < expected:
        part = view[filled : min(expected, filled + _CHUNK)]
        if readinto is not None:
            n = readinto(part) or 0
        else:
            chunk = stream.read(len(part))
            n = len(chunk)
            part[:n] = chunk
        if not n:
            break
        hasher.update(part[:n])
        filled += n
    if filled < expected:  # shorter than any record says: damaged, or being replaced
        short = bytearray(view[:filled])
        view.release()
        return short, filled, DIGEST_PREFIX + str(hasher.hexdigest())
    view.release()
    if stream.read(1):
        return buf, expected + 1, "(more bytes than the record says)"
    return buf, expected, DIGEST_PREFIX + str(hasher.hexdigest())


def read_unverified(stream: BinaryIO, allocate: Callable[[int], Any]) -> Any:
    """The whole payload, unchecked (``verify=False``), in a buffer from ``allocate``.

    A large local file is read straight into the serializer's buffer, as a
    verified read is (no bytes object to copy out of band arrays from);
    anything else is one ``read``.
    """
    st = _fstat(stream)
    readinto = getattr(stream, "readinto", None)
    if st is None or readinto is None or not stat.S_ISREG(st.st_mode) or st.st_size <= _SMALL:
        return stream.read()
    size = st.st_size - stream.tell()
    buf = allocate(size)
    view = memoryview(buf).cast("B")
    filled = 0
    try:
        while filled < size:
            n = readinto(view[filled:]) or 0
            if not n:
                break
            filled += n
        if filled < size:  # cut short since: what there is
            return bytes(view[:filled])
    finally:
        view.release()
    rest = stream.read()
    return buf if not rest else bytes(buf) + rest  # grown since: all of it


def _fileno(stream: Any) -> int | None:
    try:
        return int(stream.fileno()) if hasattr(os, "preadv") else None
    except (AttributeError, OSError, ValueError, io.UnsupportedOperation):
        return None


def _read_along(
    readinto: Callable[[Any], Any], view: memoryview, size: int, along: ChunkHasher
) -> int:
    """Read ``size`` bytes straight into ``view``, handing each step to ``along``; the count.

    The kernel copies into the destination (huge pages where the serializer
    allocated them) while the previous step is hashed on the other core.
    """
    filled = 0
    while filled < size:
        n = readinto(view[filled : min(size, filled + _ALONG_CHUNK)]) or 0
        if not n:
            break
        along.add(view[filled : filled + n])
        filled += n
    return filled


def _read_growing(stream: BinaryIO, expected: int) -> tuple[bytearray, int, str]:
    """A record claiming over ``_PREALLOCATE_LIMIT``: the buffer grows as bytes come."""
    buf = bytearray()
    while len(buf) < expected:
        chunk = stream.read(min(1 << 24, expected - len(buf)))
        if not chunk:
            break
        buf += chunk
    if len(buf) == expected and stream.read(1):
        return buf, expected + 1, "(more bytes than the record says)"
    return buf, len(buf), Record.digest_of(buf)


def corrupt_error(location: str, record: Record, size: int, digest: str) -> ResultCorruptError:
    if digest.startswith("("):  # not hashed: say why, without the file's identity
        found = f"{size} bytes {digest.split('; file ')[0].rstrip(')')})"
    else:
        found = f"{size} bytes with digest {digest}"
    return ResultCorruptError(
        f"the payload at {location} does not match its integrity record "
        f"(expected {record.size} bytes with digest {record.digest}, "
        f"found {found}). It was changed or damaged "
        "after it was written; write it again.",
        location=location,
    )
