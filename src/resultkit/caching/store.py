"""Output cache stores: where ``cache_for`` outputs are kept between task runs.

:class:`CacheStore` is the interface the runner uses (``get`` and ``put``);
:class:`OutputCache` is the in-process implementation: bounded (least
recently used entries go first), expired entries dropped when met, keyed
per flow and task (or per ``cache_key``), and looked up by the tokens the
validator compares, so a warm hit costs the same with 10 entries or 10,000.
A store on a Result backend (shared between processes) can implement the
same interface: :class:`~resultkit.caching.ResultCacheStore` does, and
selects through :func:`first_valid` too, so expiry and validators behave
the same in every store.
"""

from __future__ import annotations

import itertools
import threading
from collections import OrderedDict
from collections.abc import Hashable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any, NamedTuple, Protocol, TypeVar, runtime_checkable

from ..errors import ConfigurationError
from .validators import CacheValidator, MatchOn, match_on

__all__ = [
    "CacheKey",
    "CacheEntry",
    "CacheStore",
    "OutputCache",
    "first_valid",
    "lookup_plan",
    "is_expired",
    "expired_at",
    "expired_reason",
]


class CacheKey(NamedTuple):
    """Which cache an output belongs to.

    ``name`` is the task's ``cache_key`` or its name; ``flow`` is the flow's
    name, or ``None`` for a ``cache_key`` (shared between flows: Prefect 1's
    "time travel"); ``map_index`` keeps mapped children apart.
    """

    name: str
    flow: str | None = None
    map_index: int | None = None

    @property
    def label(self) -> str:
        """How messages name this cache: ``'clean'``, ``'clean[2]'``."""
        return self.name if self.map_index is None else f"{self.name}[{self.map_index}]"


class CacheEntry(Protocol):
    """What a store keeps: a cached state with the tokens of the run that made it.

    The runner puts :class:`~resultkit.states.Cached` states; a store may
    return any object with these attributes and ``_result`` (the
    :class:`~resultkit.results.Result` holding the value), as
    :class:`~resultkit.caching.ResultCacheStore` does.
    """

    cached_input_tokens: Mapping[str, str]
    cached_parameters: Mapping[str, str]
    cached_result_expiration: datetime | None


@runtime_checkable
class CacheStore(Protocol):
    """The interface of an output cache store."""

    def get(
        self,
        key: CacheKey,
        inputs: Mapping[str, str],
        parameters: Mapping[str, str],
        validator: CacheValidator,
    ) -> Any | None:
        """The newest entry under ``key`` that ``validator`` accepts, or ``None``.

        Exceptions raised by ``validator`` must propagate unchanged. A store
        whose class sets ``accepts_reader = True`` is also given
        ``reader=``: the Result the task writes with (or ``None``), to read
        values that live at the task's checkpoint rather than in the store.
        """
        ...

    def put(self, key: CacheKey, entry: Any) -> None:
        """Keep ``entry`` (a :class:`CacheEntry`) under ``key``."""
        ...


@dataclass
class _Slot:
    """The entries of one key, oldest first, and their indexes by compared tokens."""

    entries: dict[int, Any] = field(default_factory=dict)
    # (input tokens, parameter tokens) -> entry id: an identical newer run replaces it.
    identities: dict[Hashable, int] = field(default_factory=dict)
    indexes: dict[MatchOn, dict[Hashable, dict[int, Any]]] = field(default_factory=dict)


_IDENTITY = (MatchOn("inputs"), MatchOn("parameters"))


def _identity(entry: Any) -> Hashable:
    return (_IDENTITY[0].entry_digest(entry), _IDENTITY[1].entry_digest(entry))


def expired_reason(expiration: datetime | None) -> str:
    """How a miss names an expiry: ``expired at 2026-11-25 17:00:00 UTC``."""
    return "expired" if expiration is None else f"expired at {expiration:%Y-%m-%d %H:%M:%S %Z}"


def is_expired(entry: Any, now: datetime) -> bool:
    """Whether ``entry`` (anything with ``cached_result_expiration``) has expired at ``now``."""
    return expired_at(getattr(entry, "cached_result_expiration", None), now)


def expired_at(expiration: datetime | None, now: datetime) -> bool:
    """Whether an entry expiring at ``expiration`` (``None``: never) has expired at ``now``."""
    return expiration is not None and expiration <= now


def lookup_plan(validator: CacheValidator) -> tuple[bool, MatchOn | None]:
    """How a store looks ``validator``'s entries up: (whether to look at all, the index).

    The index is ``None`` when the validator declares nothing (a store calls
    it on each entry of the key, newest first) and ``MatchOn("expiry")`` when
    any unexpired entry will do (the newest wins).
    """
    match = match_on(validator)
    return (match is None or match.kind != "never"), match


K = TypeVar("K")


def first_valid(
    candidates: Iterable[tuple[K, Any]],
    inputs: Mapping[str, str],
    parameters: Mapping[str, str],
    validator: CacheValidator,
    expired: list[K],
) -> tuple[K, Any] | None:
    """The first ``(id, entry)`` of ``candidates`` (newest first) that ``validator`` accepts.

    Expired entries are never offered to the validator; their ids are
    appended to ``expired`` for the caller to drop (also when the validator
    raises, which propagates unchanged). Every store selects through this
    function, so expiry and validators behave the same in all of them.
    """
    now = datetime.now(timezone.utc)
    for entry_id, entry in candidates:
        if is_expired(entry, now):
            expired.append(entry_id)
        elif validator(entry, inputs, parameters):
            return entry_id, entry
    return None


class OutputCache:
    """An in-process, thread-safe output cache store.

    Args:
        max_entries: how many entries to keep in all; beyond it the least
            recently used entry is dropped.

    Lookups with the built-in validators use an index on the tokens they
    compare; a validator without that declaration
    (:func:`~resultkit.caching.validators.indexable`) is called on each entry
    of the key, newest first.

    Example:
        >>> store = OutputCache(max_entries=1000)
        >>> flow.run(caches=store)      # doctest: +SKIP
    """

    def __init__(self, max_entries: int = 10_000) -> None:
        if not isinstance(max_entries, int) or isinstance(max_entries, bool) or max_entries < 1:
            raise ConfigurationError(
                f"OutputCache(max_entries={max_entries!r}): max_entries must be an int >= 1"
            )
        self.max_entries = max_entries
        # Reentrant: a validator runs under the lock and may itself look at the store.
        self._lock = threading.RLock()
        self._lru: OrderedDict[int, CacheKey] = OrderedDict()  # entry id -> key, LRU first
        self._slots: dict[CacheKey, _Slot] = {}
        self._ids = itertools.count()

    #: :meth:`get` takes ``why=``: a list it appends the reason of an expiry miss to.
    explains_misses = True

    def get(
        self,
        key: CacheKey,
        inputs: Mapping[str, str],
        parameters: Mapping[str, str],
        validator: CacheValidator,
        why: list[str] | None = None,
    ) -> Any | None:
        """The newest unexpired entry under ``key`` that ``validator`` accepts, or ``None``."""
        usable, match = lookup_plan(validator)
        if not usable:
            return None
        with self._lock:
            slot = self._slots.get(key)
            if slot is None:
                return None
            if match is None or match.kind == "expiry":
                candidates = slot.entries  # scanned newest first; expiry: the newest wins
            else:
                candidates = self._index(slot, match).get(match.digest(inputs, parameters), {})
            expired: list[int] = []
            try:
                found = first_valid(
                    reversed(candidates.items()), inputs, parameters, validator, expired
                )
                if found is None:
                    if expired and why is not None:  # the newest expired one met
                        entry = slot.entries[expired[0]]
                        why.append(expired_reason(entry.cached_result_expiration))
                    return None
                self._lru.move_to_end(found[0])
                return found[1]
            finally:
                for entry_id in expired:  # after the loop: the candidates must not change in it
                    self._remove(entry_id)

    def put(self, key: CacheKey, entry: Any) -> None:
        """Keep ``entry`` under ``key``, replacing one made from identical tokens."""
        with self._lock:
            slot = self._slots.setdefault(key, _Slot())
            identity = _identity(entry)
            previous = slot.identities.get(identity)
            if previous is not None:
                self._remove(previous)
                slot = self._slots.setdefault(key, slot)
            entry_id = next(self._ids)
            slot.entries[entry_id] = entry
            slot.identities[identity] = entry_id
            for match, index in slot.indexes.items():
                index.setdefault(match.entry_digest(entry), {})[entry_id] = entry
            self._lru[entry_id] = key
            while len(self._lru) > self.max_entries:
                self._remove(next(iter(self._lru)))

    def prune(self) -> int:
        """Drop every expired entry now; returns how many were dropped."""
        now = datetime.now(timezone.utc)
        with self._lock:
            expired = [
                entry_id
                for slot in self._slots.values()
                for entry_id, entry in slot.entries.items()
                if is_expired(entry, now)
            ]
            for entry_id in expired:
                self._remove(entry_id)
        return len(expired)

    def clear(self) -> None:
        """Drop every entry."""
        with self._lock:
            self._lru.clear()
            self._slots.clear()

    def __getstate__(self) -> dict[str, Any]:
        # A copy sent to another process (a Dask worker) starts with its own lock.
        with self._lock:
            state = dict(self.__dict__)
        state.pop("_lock", None)
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self._lock = threading.RLock()

    def recent(self, key: CacheKey, n: int = 2) -> list[Any]:
        """The ``n`` newest entries under ``key`` (expired ones included), newest first."""
        with self._lock:
            slot = self._slots.get(key)
            return [] if slot is None else list(reversed(slot.entries.values()))[:n]

    def keys(self) -> list[CacheKey]:
        """The keys that hold at least one entry."""
        with self._lock:
            return list(self._slots)

    def __len__(self) -> int:
        return len(self._lru)

    def __repr__(self) -> str:
        return f"OutputCache({len(self)} of max_entries={self.max_entries})"

    # -- internals (called under the lock) -------------------------------------------------
    def _index(self, slot: _Slot, match: MatchOn) -> dict[Hashable, dict[int, Any]]:
        """The slot's index for ``match``, built on first use and kept up to date after."""
        index = slot.indexes.get(match)
        if index is None:
            index = {}
            for entry_id, entry in slot.entries.items():  # oldest first, like the slot
                index.setdefault(match.entry_digest(entry), {})[entry_id] = entry
            slot.indexes[match] = index
        return index

    def _remove(self, entry_id: int) -> None:
        key = self._lru.pop(entry_id, None)
        if key is None:
            return
        slot = self._slots[key]
        entry = slot.entries.pop(entry_id)
        identity = _identity(entry)
        if slot.identities.get(identity) == entry_id:
            del slot.identities[identity]
        for match, index in slot.indexes.items():
            digest = match.entry_digest(entry)
            bucket = index.get(digest)
            if bucket is not None:
                bucket.pop(entry_id, None)
                if not bucket:
                    del index[digest]
        if not slot.entries:
            del self._slots[key]
