"""Writing and reading one pair (payload and record), once for every backend.

:func:`store_pair` streams the serializer's bytes into the storage while
hashing them and commits them with their record; :func:`load_pair` reads a
payload whole, checks it against its record (and signature) and only then
deserializes it.
"""

from __future__ import annotations

import contextlib
import time
from typing import TYPE_CHECKING, Any

from ..errors import ResultCorruptError, ResultNotFoundError, StorageError
from ._errors import translate
from ._ranged import ReplacedWhileRead
from ._record import HashingWriter, Record, previous_record
from ._verify import (
    check_serializer,
    corrupt_error,
    find_sink_error,
    matching_record,
    parse_record,
    read_hashed,
    read_unverified,
)

if TYPE_CHECKING:
    from ._storage_result import StorageResult

__all__ = ["store_pair", "load_pair"]

# Reads of a pair that keeps changing under concurrent writers before giving up.
_MAX_READ_ATTEMPTS = 12
# Reads that saw it change before the rest hold writers off where the storage can.
_QUIET_AFTER = 3


def store_pair(result: StorageResult, location: str, key: str, value: Any) -> Record:
    writer = result.storage.open_writer(key)
    hashing = HashingWriter(writer)
    try:
        result.serializer.dump(value, hashing)
        record = Record(result.serializer.name, hashing.hexdigest(), hashing.size)
        if result.signing is not None:
            record = result.signing.sign(record, key)
        writer.commit(record.to_metadata())
    except BaseException as exc:
        with contextlib.suppress(Exception):  # the first error is the one to report
            writer.abort()
        sink = find_sink_error(exc)
        if sink is not None:  # the storage failed while the serializer streamed
            raise translate(location, "write", sink) from sink.cause
        raise
    return record


def load_pair(
    result: StorageResult, location: str, key: str, raw: bool = False
) -> tuple[Any, Record | None]:
    """Read, verify and deserialize the pair at ``key`` (``raw``: return the bytes).

    A storage with two objects per pair (``atomic_pairs`` false) may be
    read between a writer's two steps; the record it puts first vouches
    for the old and the new payload, and a reader that still finds a
    mismatch reads again. It reports damage only when two reads in a row
    see the very same mismatch: evidence, not a timeout. After
    ``_QUIET_AFTER`` changing reads, a storage that can hold writers off
    (``quiet_reads``: a local folder's shared lock) does so for the rest: a
    writer overwriting in a tight loop cannot starve a reader.
    """
    with contextlib.ExitStack() as quiet:
        return _load_pair(result, location, key, raw, quiet)


def _load_pair(
    result: StorageResult, location: str, key: str, raw: bool, quiet: contextlib.ExitStack
) -> tuple[Any, Record | None]:
    seen: object = None
    for attempt in range(_MAX_READ_ATTEMPTS):
        if attempt:
            time.sleep(min(0.001 * 2**attempt, 0.05))  # let a concurrent publish finish
        if attempt == _QUIET_AFTER:
            _hold_writers_off(result, key, quiet)
        opened = result.storage.open_reader(key)
        if opened is None:
            raise ResultNotFoundError(f"nothing is stored at {location}", location=location)
        stream, metadata = opened
        try:
            if not result.verify:
                try:
                    payload = read_unverified(stream, result.serializer.allocate)
                except ReplacedWhileRead:
                    continue  # overwritten between two ranged GETs: read the new version
                return result._deserialize(location, payload), None
            if not metadata and not result.storage.atomic_pairs:
                stream.close()  # maybe between a delete's or a publish's two steps
                problem: object = ("no record",)
                if problem == seen:
                    parse_record(location, metadata)  # raises: no integrity record
                seen = problem
                continue
            record = parse_record(location, metadata)
            prev = previous_record(metadata)
            sizes = {record.size} if prev is None else {record.size, prev.size}
            allocate = bytearray if raw else result.serializer.allocate
            # A large object-store read fills the buffer by concurrent ranged GETs.
            ranged = getattr(stream, "read_hashed", None)
            try:
                if ranged is not None:
                    data, size, digest = ranged(sizes, allocate)
                else:
                    data, size, digest = read_hashed(stream, sizes, allocate)
            except ReplacedWhileRead:
                continue  # overwritten between two ranged GETs: read the new version
        finally:
            stream.close()
        matched = matching_record(metadata, record, size, digest)
        if matched is not None:
            if result.signing is not None:
                result.signing.check(matched, key, location)
            if not raw:
                check_serializer(location, matched, result.serializer)
            return (data if raw else result._deserialize(location, data)), matched
        problem = (tuple(sorted(metadata.items())), size, digest)
        if result.storage.atomic_pairs or problem == seen:
            raise corrupt_error(location, record, size, digest)
        seen = problem
    raise ResultCorruptError(
        f"the payload at {location} kept changing while it was read "
        f"({_MAX_READ_ATTEMPTS} reads); too many concurrent writers of one location",
        location=location,
    )


def _hold_writers_off(result: StorageResult, key: str, quiet: contextlib.ExitStack) -> None:
    hold = getattr(result.storage, "quiet_reads", None)
    if hold is None:
        return
    # A lock that cannot be had (a stopped writer, a folder gone) leaves the
    # read as it was: unlocked, with its remaining attempts.
    with contextlib.suppress(OSError, StorageError):
        quiet.enter_context(hold(key))
