"""The layout of a ResultCacheStore's objects: names, slots, entries (see result_store)."""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Mapping
from datetime import datetime, timezone
from typing import Any

from ..results import ConstantResult, Result
from .validators import MatchOn

#: The version folder of the layout: another layout would use another folder.
LAYOUT = "v1"
_TIME = "%Y%m%dT%H%M%S%fZ"
_NEVER = "never"
_NAME = re.compile(r"^(\d{8}T\d{12}Z)_(\d{8}T\d{12}Z|never)_([0-9a-f]{16})\.json$")
#: At most this many entries per index document (the live ones with equal tokens).
_MAX_PER_DIGEST = 32
_KINDS = ("expiry", "inputs", "parameters")


def _hash(value: Any, size: int = 32) -> str:
    text = json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=True)
    return hashlib.sha256(text.encode()).hexdigest()[:size]


def _tag(match: MatchOn) -> str:
    """The folder name of an index: what it compares (names in any order are one index)."""
    if match.names is None:
        return match.kind
    return f"{match.kind}-{_hash(sorted(set(match.names)), 16)}"


def _stamp(when: datetime | None) -> str:
    return _NEVER if when is None else when.astimezone(timezone.utc).strftime(_TIME)


def _parse_name(name: str) -> tuple[datetime | None, str] | None:
    """The expiry and identity an entry's file name carries, or None if it is not one."""
    found = _NAME.match(name)
    if found is None:
        return None
    stamp = found.group(2)
    expires = (
        None if stamp == _NEVER else datetime.strptime(stamp, _TIME).replace(tzinfo=timezone.utc)
    )
    return expires, found.group(3)


def _match_of(doc: Mapping[str, Any] | None) -> MatchOn | None:
    """What a slot's ``tags/<tag>.json`` says its index compares, or None if unreadable."""
    kind = doc.get("kind") if doc is not None else None
    names = doc.get("names") if doc is not None else None
    if kind not in _KINDS or not (names is None or isinstance(names, list)):
        return None
    return MatchOn(kind, None if names is None else tuple(str(n) for n in names))


def _identity(entry: Any) -> str:
    """What makes two entries the same run (equal input and parameter tokens)."""
    return _hash([entry.cached_input_tokens, entry.cached_parameters], 16)


def readable_location(result: Any) -> str | None:
    """Where ``result``'s value is stored, if another process can read it there; else None.

    None for anything that is not a stored Result: a constant, a value not
    written (no location), or one in a process's memory (``memory://``).
    The runner's records, the cache store and the Dask executor all keep a
    pointer instead of a copy by this one rule.

    Example:
        >>> from resultkit.results import ConstantResult, MemoryResult
        >>> readable_location(ConstantResult(1)), readable_location(MemoryResult().write(1, "a"))
        (None, None)
    """
    if not isinstance(result, Result) or isinstance(result, ConstantResult):
        return None
    location = result.location
    if not isinstance(location, str) or location.startswith("memory:"):
        return None  # not written, or in one process's memory: keep a copy
    return str(location)


class StoredEntry:
    """An entry read from a :class:`ResultCacheStore` (what validators are given).

    It has the attributes of a cached state that validators compare
    (``cached_input_tokens``, ``cached_parameters``, ``cached_result_expiration``);
    ``_result`` holds the value's Result once the store has read it, which
    it does only for the entry it returns.
    """

    def __init__(self, doc: Mapping[str, Any]) -> None:
        expires = doc["expires"]
        created = doc["created"]
        if not isinstance(expires, datetime | None) or not isinstance(created, datetime):
            raise TypeError("created and expires must be datetimes")
        self.cached_input_tokens: dict[str, str] = _tokens(doc["inputs"])
        self.cached_parameters: dict[str, str] = _tokens(doc["parameters"])
        self.cached_result_expiration: datetime | None = expires
        self.created: datetime = created
        #: The task's code components when it was made (code validators), path -> token.
        self.cached_code: dict[str, str] = _tokens(doc.get("code") or {})
        #: The entry's file name in its slot's ``entries/`` folder.
        self.name = str(doc["name"])
        value = doc["value"]
        if not isinstance(value, dict) or len(value) != 1:
            raise TypeError("value must name one location")
        ((self._where, self._at),) = value.items()
        if self._where not in ("location", "stored") or not isinstance(self._at, str):
            raise TypeError("value must be a location or a stored key")
        self._result: Result | None = None
        #: The entry as stored (copied into indexes).
        self.doc = dict(doc)

    @property
    def result(self) -> Any:
        """The value, once read (``None`` before)."""
        return None if self._result is None else self._result.value

    def __repr__(self) -> str:
        return f"<StoredEntry {self.name} ({self._where}: {self._at})>"


def _tokens(value: Any) -> dict[str, str]:
    if not isinstance(value, dict) or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in value.items()
    ):
        raise TypeError("tokens must map names to strings")
    return dict(value)
