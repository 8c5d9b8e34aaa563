"""The integrity record stored with each payload, and the hashing stream.

Mechanism (documented in the README): every payload ``P`` has a small
record (a JSON sidecar ``P.rkmeta`` on file storages, the object's own
metadata on S3, GCS and Azure) holding the format version, the serializer's
name, the payload's size and digest (XXH3-128, written as ``xxh3_128:<hex>``;
15 GB/s, so checking costs little next to the I/O), and the UTC time of the
write. The
payload itself is exactly the serializer's bytes, so other tools can read it
(``pandas.read_parquet`` on a parquet target). A read checks the size and
digest before deserializing anything.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import Any

import xxhash

from ._errors import SinkError
from ._hashalong import hash_while

__all__ = [
    "Record",
    "HashingWriter",
    "metadata_to_bytes",
    "metadata_from_bytes",
    "with_previous",
    "final_sidecar",
    "previous_record",
    "SidecarMetadata",
    "sidecar_metadata",
    "parsed_record",
    "PREVIOUS_KEY",
    "RECORD_VERSION",
    "DIGEST_PREFIX",
    "new_hasher",
]

RECORD_VERSION = 1
# A record written before this, or later than now plus this skew, is damaged.
_EARLIEST = datetime(2000, 1, 1, tzinfo=timezone.utc)
_CLOCK_SKEW = timedelta(days=1)
#: The payload digest's algorithm, written before the hex digest.
DIGEST_PREFIX = "xxh3_128:"


def new_hasher() -> Any:
    return xxhash.xxh3_128()


@dataclass(frozen=True)
class Record:
    """What is known about a stored payload without reading it."""

    serializer: str
    digest: str
    size: int
    written_at: datetime = field(default_factory=lambda: datetime.now(timezone.utc))
    version: int = RECORD_VERSION
    #: HMAC-SHA256 of the record for its location, with a signing key (hex), or "".
    signature: str = ""
    #: Which key made ``signature`` (a short fingerprint of it, never the key).
    key_id: str = ""

    def to_metadata(self) -> dict[str, str]:
        """The record as storage metadata (``str -> str``, as object stores keep it)."""
        meta = {
            "digest": self.digest,
            "serializer": self.serializer,
            "size": str(self.size),
            "version": str(self.version),
            "written_at": self.written_at.isoformat(),
        }
        if self.signature:
            meta["signature"] = self.signature
            meta["key_id"] = self.key_id
        return meta

    @classmethod
    def from_metadata(cls, meta: Any) -> Record:
        """Parse a record from storage metadata; ``ValueError`` when it is not one."""
        if not isinstance(meta, dict):
            meta = dict(meta)
        try:
            version = int(meta["version"])
            if version != RECORD_VERSION:
                raise ValueError(f"record version {version}; this resultkit reads {RECORD_VERSION}")
            size = int(meta["size"])
            written_at = datetime.fromisoformat(str(meta["written_at"]))
            digest = str(meta["digest"])
            serializer = str(meta["serializer"])
        except KeyError as exc:
            raise ValueError(f"the record has no {exc.args[0]!r}") from None
        except (TypeError, OverflowError) as exc:
            raise ValueError(str(exc)) from exc
        if size < 0 or not digest.startswith(DIGEST_PREFIX):
            raise ValueError(f"size {size} or digest {digest[:40]!r} is not valid")
        if written_at.tzinfo is None:
            raise ValueError("written_at has no time zone")
        if not _EARLIEST <= written_at <= datetime.now(timezone.utc) + _CLOCK_SKEW:
            raise ValueError(f"written_at {written_at.isoformat()} is not a plausible time")
        signature = str(meta.get("signature", ""))
        return cls(
            serializer, digest, size, written_at, version, signature, str(meta.get("key_id", ""))
        )

    def to_bytes(self) -> bytes:
        """The record as the JSON document of a sidecar file (``P.rkmeta``)."""
        return json.dumps(self.to_metadata(), sort_keys=True).encode("utf-8")

    @classmethod
    def from_bytes(cls, data: bytes) -> Record:
        """Parse a sidecar record; raises ``ValueError`` when it is not one."""
        return cls.from_metadata(metadata_from_bytes(data))

    @staticmethod
    def digest_of(data: bytes | bytearray | memoryview) -> str:
        return DIGEST_PREFIX + xxhash.xxh3_128(data).hexdigest()

    @staticmethod
    def digest_of_stream(stream: Any) -> str:
        """The digest of everything left in a binary stream, read in chunks."""
        hasher = xxhash.xxh3_128()
        while chunk := stream.read(1 << 20):
            hasher.update(chunk)
        return DIGEST_PREFIX + hasher.hexdigest()


def metadata_to_bytes(metadata: Any) -> bytes:
    """Metadata as a sidecar document (JSON, sorted keys)."""
    return json.dumps(dict(metadata), sort_keys=True).encode("utf-8")


def metadata_from_bytes(data: bytes | bytearray | memoryview) -> dict[str, str]:
    """Parse a sidecar document; ``ValueError`` when it is not a flat JSON object."""
    try:
        obj = json.loads(bytes(data).decode("utf-8"))
    except (UnicodeDecodeError, RecursionError) as exc:
        raise ValueError(f"not a record: {type(exc).__name__}") from None
    if not isinstance(obj, dict):
        raise ValueError("not a record: not a JSON object")
    return {str(k): str(v) for k, v in obj.items()}


class SidecarMetadata(dict[str, str]):
    """Metadata parsed from a sidecar's bytes, shared by every read that finds the
    same bytes (so read-only), with its :class:`Record` parsed once."""

    __slots__ = ("record",)
    record: Record

    def _read_only(self, *args: Any, **kwargs: Any) -> Any:
        raise TypeError("stored metadata is read-only; copy it with dict(metadata)")

    __setitem__ = __delitem__ = clear = pop = popitem = setdefault = update = _read_only
    __ior__ = _read_only


_SIDECARS: dict[bytes, SidecarMetadata] = {}


def sidecar_metadata(raw: bytes) -> SidecarMetadata:
    """:func:`metadata_from_bytes`, remembered for the last few thousand sidecars read."""
    found = _SIDECARS.get(raw)
    if found is None:
        found = SidecarMetadata(metadata_from_bytes(raw))
        if len(_SIDECARS) >= 4096:
            _SIDECARS.clear()
        _SIDECARS[raw] = found
    return found


def parsed_record(metadata: Any) -> Record:
    """``Record.from_metadata``, once per shared sidecar (``ValueError`` when it is not one)."""
    if isinstance(metadata, SidecarMetadata):
        try:
            return metadata.record
        except AttributeError:
            record = Record.from_metadata(metadata)
            metadata.record = record
            return record
    return Record.from_metadata(metadata)


#: Metadata key of the record a publish replaces (a JSON document).
PREVIOUS_KEY = "previous"


def with_previous(
    metadata: Any,
    current_sidecar: bytes | None,
    payload_size: Callable[[], int | None],
    payload_digest: Callable[[], str | None],
) -> bytes:
    """The sidecar that goes in first for a new publish: its record, plus the
    record that vouches for the payload on disk now.

    Payload and record are two files (or objects). This record goes into place
    *before* the new payload and names both payloads, so a crash or a reader
    between the two steps finds a record that vouches for whichever payload
    is there. After the payload, :func:`final_sidecar` (no ``previous``) takes
    its place. A sidecar that still names a ``previous`` is the mark of an
    interrupted publish: which of its two records matches the payload on disk
    is then decided by size and, only if both sizes agree, by its digest.
    """
    doc = dict(metadata)
    vouching = _vouching(current_sidecar, payload_size, payload_digest)
    if vouching:
        doc[PREVIOUS_KEY] = json.dumps(vouching, sort_keys=True)
    return metadata_to_bytes(doc)


def final_sidecar(metadata: Any) -> bytes:
    """The sidecar of a completed publish: its record alone."""
    doc = dict(metadata)
    doc.pop(PREVIOUS_KEY, None)
    return metadata_to_bytes(doc)


def _vouching(
    sidecar: bytes | None,
    payload_size: Callable[[], int | None],
    payload_digest: Callable[[], str | None],
) -> dict[str, str]:
    """The record (as metadata) that matches the payload on disk, or {} for none."""
    if sidecar is None:
        return {}
    try:
        current = metadata_from_bytes(sidecar)
    except ValueError:
        return {}
    previous = current.pop(PREVIOUS_KEY, None)
    if not previous:
        return current  # the last publish completed: its record is the payload's
    try:
        candidates = [current, metadata_from_bytes(str(previous).encode("utf-8"))]
    except ValueError:
        candidates = [current]
    size = payload_size()
    fitting = [c for c in candidates if c.get("size") == str(size)]
    if len(fitting) > 1:  # both sizes agree: only the bytes can tell
        digest = payload_digest()
        fitting = [c for c in fitting if c.get("digest") == digest]
    return fitting[0] if fitting else {}


def previous_record(metadata: Any) -> Record | None:
    """The record a publish replaced, if the metadata names one that parses."""
    raw = metadata.get(PREVIOUS_KEY) if metadata else None
    if not raw:
        return None
    try:
        return Record.from_bytes(str(raw).encode("utf-8"))
    except ValueError:
        return None


class HashingWriter:
    """Wraps a binary stream, hashing and counting every byte written through it."""

    def __init__(self, raw: Any) -> None:
        self._raw = raw
        self._hash = new_hasher()
        self.size = 0

    def write(self, data: Any) -> int:
        view = memoryview(data)
        if not view.contiguous:
            view = memoryview(view.tobytes())
        try:
            # A large view is hashed on another core while it is written.
            hash_while(self._hash, view, lambda: self._raw.write(view))
        except Exception as exc:  # the storage failed, not the serializer
            raise SinkError(exc) from exc
        self.size += view.nbytes
        return view.nbytes

    def flush(self) -> None:
        self._raw.flush()

    def writable(self) -> bool:
        return True

    @property
    def closed(self) -> bool:
        return False

    def hexdigest(self) -> str:
        return DIGEST_PREFIX + str(self._hash.hexdigest())
