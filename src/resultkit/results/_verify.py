"""Checks of a stored pair: its record parsed, its payload read whole and hashed.

Nothing here deserializes: the Result hands bytes to its serializer only
after these checks pass.
"""

from __future__ import annotations

from typing import BinaryIO

from ..errors import ResultCorruptError, SerializerMismatchError
from ..serializers import Serializer
from ._errors import SinkError
from ._record import Record, previous_record
from .storage import Metadata

__all__ = [
    "parse_record",
    "check_serializer",
    "read_hashed",
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
            "(result.adopt(location)) if you trust it, or read it with verify=False.",
            location=location,
        )
    try:
        return Record.from_metadata(metadata)
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
    seen: BaseException | None = exc
    for _ in range(8):
        if seen is None:
            return None
        if isinstance(seen, SinkError):
            return seen
        seen = seen.__cause__ or seen.__context__
    return None


def read_hashed(stream: BinaryIO, expected: int) -> tuple[bytearray, int, str]:
    """Read a whole payload into one buffer and hash it: (data, size, digest)."""
    size = expected if expected <= _PREALLOCATE_LIMIT else 0
    buf = bytearray(size)
    view = memoryview(buf)
    filled = 0
    readinto = getattr(stream, "readinto", None)
    while filled < size:
        if readinto is not None:
            n = readinto(view[filled:])
        else:
            chunk = stream.read(size - filled)
            n = len(chunk)
            view[filled : filled + n] = chunk
        if not n:
            break
        filled += n
    view.release()
    if filled < size:
        del buf[filled:]
    rest = stream.read()
    if rest:
        buf += rest
    return buf, len(buf), Record.digest_of(buf)


def corrupt_error(location: str, record: Record, size: int, digest: str) -> ResultCorruptError:
    return ResultCorruptError(
        f"the payload at {location} does not match its integrity record "
        f"(expected {record.size} bytes with digest {record.digest}, "
        f"found {size} bytes with {digest}). It was changed or damaged "
        "after it was written; write it again.",
        location=location,
    )
