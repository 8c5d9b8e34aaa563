"""MemoryResult: results held in this process's memory (fsspec's memory filesystem)."""

from __future__ import annotations

from typing import Any

from ..serializers import Serializer
from ._fsspec import FSSpecResult
from ._location import LocationTemplate

__all__ = ["MemoryResult"]


class MemoryResult(FSSpecResult):
    """Results kept in memory, shared by every MemoryResult of the process with the same root.

    Values are serialized and checksummed exactly as on disk, so a
    MemoryResult behaves like any other backend (useful in tests). The store
    is per process: a MemoryResult shipped to another process sees that
    process's (empty) store.

    Example:
        >>> r = MemoryResult(root="/doc-example", location="{x}.pkl")
        >>> r.write("hi", x=1).location
        'memory:///doc-example/1.pkl'
    """

    default_protocol = "memory"

    def __init__(
        self,
        location: LocationTemplate | None = None,
        serializer: Serializer | None = None,
        *,
        root: str = "/resultkit",
        value: Any = None,
        verify: bool = True,
        signing_key: Any = None,
        retries: Any = None,
    ) -> None:
        super().__init__(
            "memory",
            root,
            location=location,
            serializer=serializer,
            value=value,
            verify=verify,
            signing_key=signing_key,
            retries=retries,
        )
