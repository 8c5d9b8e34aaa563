"""The integrity record stored beside each payload, and the hashing stream.

Mechanism (documented in the README): every payload ``P`` has a small JSON
record ``P.rkmeta`` beside it holding the format version, the serializer's
name, the payload's size and digest (XXH3-128, written as ``xxh3_128:<hex>``;
15 GB/s, so checking costs little next to the I/O), and the UTC time of the
write. The
payload itself is exactly the serializer's bytes, so other tools can read it
(``pandas.read_parquet`` on a parquet target). A read checks the size and
digest before deserializing anything.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any

import xxhash

__all__ = ["Record", "HashingWriter", "RECORD_VERSION", "DIGEST_PREFIX", "new_hasher"]

RECORD_VERSION = 1
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

    def to_bytes(self) -> bytes:
        data = {
            "digest": self.digest,
            "serializer": self.serializer,
            "size": self.size,
            "version": self.version,
            "written_at": self.written_at.isoformat(),
        }
        return json.dumps(data, sort_keys=True).encode("utf-8")

    @classmethod
    def from_bytes(cls, data: bytes) -> Record:
        """Parse a record; raises ``ValueError`` when it is not one."""
        obj = json.loads(bytes(data).decode("utf-8"))
        if not isinstance(obj, dict) or obj.get("version") != RECORD_VERSION:
            raise ValueError(f"not a resultkit record of version {RECORD_VERSION}")
        return cls(
            serializer=str(obj["serializer"]),
            digest=str(obj["digest"]),
            size=int(obj["size"]),
            written_at=datetime.fromisoformat(obj["written_at"]),
            version=int(obj["version"]),
        )

    @staticmethod
    def digest_of(data: bytes | bytearray | memoryview) -> str:
        return DIGEST_PREFIX + xxhash.xxh3_128(data).hexdigest()


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
        self._hash.update(view)
        self._raw.write(view)
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
