"""A persistent output cache store on any Result backend, shared between processes and machines.

:class:`ResultCacheStore` keeps ``cache_for`` / ``cache_key`` entries
through a :class:`~resultkit.results.StorageResult` (a folder, a bucket...),
so every process that uses the same storage shares them. Every object is
written and read with the Result API: atomic, verified on read, signed when
the Result has a signing key. Layout, under the Result's root::

    v1/<slot>/entries/<created>_<expires>_<identity>.json  one entry per put (JSON)
    v1/<slot>/values/<created>_<expires>_<identity>.val    its value, if it has no checkpoint
    v1/<slot>/tags/<tag>.json                  an index the slot keeps (what it compares)
    v1/<slot>/index/<tag>/<digest>.json        the live entries with those tokens, newest first
    v1/<slot>/hits/<created>_<expires>_<identity>.json  its last hit (see _inventory)

``<slot>`` is ``<label>-<hash of (name, flow, map_index)>``, one per
:class:`~resultkit.caching.CacheKey`. Times are UTC ``YYYYmmddTHHMMSSffffffZ``
(``never`` for no expiry) and ``<identity>`` hashes the input and parameter
tokens, so names sort by age and tell an entry's expiry and identity
without a read. An entry is a JSON object: the key, the input and parameter
tokens, ``created``, ``expires`` and where the value is: ``{"location":
<URL>}`` when the task's value was checkpointed (never a second copy), else
``{"stored": <key of the value under this root>}``.

Lookups follow :func:`~resultkit.caching.validators.match_on`, as in
:class:`~resultkit.caching.OutputCache`: a built-in validator compares
tokens, so the entries to try are read straight from
``index/<tag>/<digest of the tokens>.json`` (a hit is one read of the index
and one of the value). A slot builds an index the first time a lookup needs
it (``tags/<tag>.json`` records it) and every later put keeps it up to date.
A validator that declares nothing is called on the slot's entries, listed
newest first. As in memory, a put replaces the entries made from identical
tokens; expired entries are misses and are deleted when met (and, for their
slot, at each put); so is an entry whose value has gone. Concurrent puts
can at worst leave a valid entry out of an index: a miss, never a wrong hit.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterator, Mapping
from datetime import datetime, timezone
from typing import Any

from ..errors import ConfigurationError, ResultError, warn_user
from ..results import ConstantResult, Result, StorageResult
from ..serializers import JSONSerializer
from ._inventory import Inventory
from ._layout import (
    LAYOUT,
    StoredEntry,
    _hash,
    _identity,
    _parse_name,
    _stamp,
    _tag,
    readable_location,
)
from .store import (
    CacheKey,
    CacheStore,
    OutputCache,
    expired_at,
    expired_reason,
    first_valid,
    lookup_plan,
)
from .validators import CacheValidator, MatchOn

__all__ = ["ResultCacheStore", "StoredEntry", "as_cache_store"]

logger = logging.getLogger("resultkit")


class ResultCacheStore(Inventory):
    """An output cache store on a Result backend, shared by every process that uses it.

    Args:
        result: where entries (and the values that have no checkpoint) are
            kept: a :class:`~resultkit.results.StorageResult` such as
            ``LocalResult(dir=...)`` or ``S3Result(bucket=..., prefix=...)``.
            Its serializer writes those values; entries are JSON. Its
            signing key, if any, signs every entry and value.
        front: an :class:`~resultkit.caching.OutputCache` to serve repeated
            hits of this process from memory (read-through). Off by default:
            a hit from memory does not see entries or values deleted by
            another process since.

    A checkpointed value is read back with the Result of the task looking it
    up (given by the runner), or this store's Result when it is under this
    root; a value neither can read, or that is gone, is a miss. Storage
    failures are misses too (and a put that fails only warns): the cache
    never fails a task.

    Example:
        >>> from resultkit.results import LocalResult
        >>> store = ResultCacheStore(LocalResult(dir="/shared/cache"))   # doctest: +SKIP
        >>> flow.run(caches=store)                                        # doctest: +SKIP
    """

    #: The runner passes ``reader=`` (the task's Result) to :meth:`get`.
    accepts_reader = True
    #: ... and ``why=`` (a list the store appends the reasons of its own misses to).
    explains_misses = True

    def __init__(self, result: StorageResult, *, front: OutputCache | None = None) -> None:
        if not isinstance(result, StorageResult):
            raise ConfigurationError(
                "ResultCacheStore needs a StorageResult to keep entries on (LocalResult, "
                f"S3Result, from_url(...)...), got {type(result).__name__}"
            )
        if front is not None and not isinstance(front, OutputCache):
            raise ConfigurationError(
                f"ResultCacheStore(front=...) must be an OutputCache, got {type(front).__name__}"
            )
        self.result = result
        self.front = front
        self._values = result.copy()
        self._values.location = None
        self._values.value = None
        self._docs = self._values.copy()
        self._docs.serializer = JSONSerializer()
        self._matches: dict[str, MatchOn] = {}  # tag -> what it compares (a tag never changes)
        self._init_inventory()

    def __getstate__(self) -> dict[str, Any]:
        # Sent to remote (Dask) workers with the task runs: locks are made anew there.
        state = dict(self.__dict__)
        state.pop("_marks_lock", None)
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self._init_inventory()

    # -- the CacheStore interface -----------------------------------------------------
    def get(
        self,
        key: CacheKey,
        inputs: Mapping[str, str],
        parameters: Mapping[str, str],
        validator: CacheValidator,
        reader: Result | None = None,
        why: list[str] | None = None,
    ) -> Any | None:
        """The newest unexpired entry under ``key`` that ``validator`` accepts, with its value.

        A valid entry whose value has gone (deleted by a lifecycle rule, say)
        is a miss, not an error: the entry is deleted and, when ``why`` is
        given, a reason appended to it.
        """
        usable, match = lookup_plan(validator)
        if not usable:
            return None
        if self.front is not None:
            hit = self.front.get(key, inputs, parameters, validator)
            if hit is not None:
                return hit
        slot = self._slot(key)
        if match is None:
            candidates = self._scan(slot)
        else:
            candidates = self._indexed(slot, match, match.digest(inputs, parameters), why)
        gone: list[str] = []
        try:
            while True:  # past entries whose value has gone, to the next candidate
                met = len(gone)
                found = first_valid(candidates, inputs, parameters, validator, gone)
                if found is None:
                    if why is not None and len(gone) > met:  # the newest expired one met
                        parsed = _parse_name(gone[met])
                        why.append(expired_reason(parsed[0] if parsed else None))
                    return None
                entry = found[1]
                if self._load(entry, reader, gone, why):
                    self._mark_hit(slot, entry.name)
                    if self.front is not None:
                        self.front.put(key, entry)
                    return entry
        finally:
            for name in gone:
                self._drop(slot, name)

    def put(self, key: CacheKey, entry: Any) -> None:
        """Keep ``entry``: its tokens and expiry, and its value's location (or the value)."""
        if self.front is not None:
            self.front.put(key, entry)
        try:
            self._put(key, entry)
        except ResultError as exc:
            warn_user(
                f"output cache {key.label!r}: could not keep the output in the cache store at "
                f"{self.result.root_url}: {exc}; the next run computes it again"
            )

    # -- maintenance --------------------------------------------------------------------
    def clear(self) -> None:
        """Delete every entry, value and index of this store."""
        if self.front is not None:
            self.front.clear()
        for key in self._list(f"{LAYOUT}/"):
            self._delete(key)

    def __len__(self) -> int:
        """How many entries the store holds (expired ones not yet deleted included)."""
        return sum(1 for key in self._list(f"{LAYOUT}/") if "/entries/" in key)

    def __repr__(self) -> str:
        return f"ResultCacheStore({self.result.root_url!r})"

    # -- layout ---------------------------------------------------------------------------
    @staticmethod
    def _slot(key: CacheKey) -> str:
        label = re.sub(r"[^A-Za-z0-9_-]+", "-", key.label).strip("-")[:40] or "task"
        return f"{LAYOUT}/{label}-{_hash([key.name, key.flow, key.map_index])}"

    @staticmethod
    def _index_key(slot: str, tag: str, digest: Any) -> str:
        return f"{slot}/index/{tag}/{_hash(digest)}.json"

    # -- lookups --------------------------------------------------------------------------
    def _scan(self, slot: str) -> Iterator[tuple[str, StoredEntry]]:
        """The slot's unexpired entries, newest first, each read when reached."""
        now = datetime.now(timezone.utc)
        try:
            names = self._entry_names(slot)
        except ResultError as exc:
            self._warn("list the entries of", slot, exc)
            return
        for name, (expires, _) in names:
            if expired_at(expires, now):
                continue  # first_valid would refuse it: not worth a read
            entry = self._entry(self._read(f"{slot}/entries/{name}"))
            if entry is not None:
                yield name, entry

    def _indexed(
        self, slot: str, match: MatchOn, digest: Any, why: list[str] | None = None
    ) -> Iterator[tuple[str, StoredEntry]]:
        """The live entries whose tokens ``match`` compares equal to ``digest``: one read."""
        tag = _tag(match)
        found = self._read(self._index_key(slot, tag, digest))
        if found is None and not self._exists(f"{slot}/tags/{tag}.json"):
            try:
                built = self._build_index(slot, match, tag)
                if not built and why is not None:
                    why.append("no entry")  # the slot's listing, made anyway, was empty
                docs = built.get(_hash(digest), [])
            except ResultError as exc:
                self._warn("index", slot, exc)
                docs = []
        else:
            docs = self._docs_in(found)
        for doc in docs:
            entry = self._entry(doc)
            if entry is not None:
                yield entry.name, entry

    def _build_index(self, slot: str, match: MatchOn, tag: str) -> dict[str, list[dict[str, Any]]]:
        """Index the slot's entries for ``match`` (its first lookup): digest -> entries.

        The tag is written first, so an entry put meanwhile is either seen by
        the listing below or indexed by its own put.
        """
        names = None if match.names is None else sorted(set(match.names))
        self._write({"kind": match.kind, "names": names}, f"{slot}/tags/{tag}.json")
        self._matches[tag] = match
        found: dict[str, list[dict[str, Any]]] = {}
        for _, entry in self._scan(slot):  # newest first
            found.setdefault(_hash(match.entry_digest(entry)), []).append(_indexed_doc(entry.doc))
        now = datetime.now(timezone.utc)
        for digest, docs in found.items():
            found[digest] = self._live(docs, now)
            self._write({"entries": found[digest]}, f"{slot}/index/{tag}/{digest}.json")
        return found

    def _entry(self, doc: Mapping[str, Any] | None) -> StoredEntry | None:
        if doc is None:
            return None
        try:
            return StoredEntry(doc)
        except (KeyError, TypeError, ValueError) as exc:
            self._warn("use an entry", str(doc.get("name", "?")), exc)
            return None

    # -- puts -------------------------------------------------------------------------------
    def _put(self, key: CacheKey, entry: Any) -> None:
        slot = self._slot(key)
        now = datetime.now(timezone.utc)
        expires = entry.cached_result_expiration
        if expires is not None and expires.tzinfo is None:
            expires = expires.replace(tzinfo=timezone.utc)
        identity = _identity(entry)
        name = f"{_stamp(now)}_{_stamp(expires)}_{identity}.json"
        location = readable_location(getattr(entry, "_result", None))
        if location is not None:
            value = {"location": location}
        else:
            stored = f"{slot}/values/{name.removesuffix('.json')}.val"
            self._values.write(getattr(entry, "_result", ConstantResult(None)).value, stored)
            value = {"stored": stored}
        doc = {
            "key": {"name": key.name, "flow": key.flow, "map_index": key.map_index},
            "inputs": dict(entry.cached_input_tokens),
            "parameters": dict(entry.cached_parameters),
            "code": dict(getattr(entry, "cached_code", None) or {}),
            "created": now,
            "expires": expires,
            "name": name,
            "value": value,
        }
        self._write(doc, f"{slot}/entries/{name}")
        for tag, match in self._tags(slot):  # listed after the entry is written: see _build_index
            index = self._index_key(slot, tag, match.entry_digest(entry))
            docs = [_indexed_doc(doc), *self._index_docs(index)]
            self._write({"entries": self._live(docs, now)}, index)
        for old, (old_expires, old_identity) in self._entry_names(slot):
            if expired_at(old_expires, now) or (old_identity == identity and old < name):
                self._drop(slot, old)  # expired, or replaced by this one


def _indexed_doc(doc: Mapping[str, Any]) -> dict[str, Any]:
    """An entry as an index lists it: without its code components, which only explain
    misses (read from the entry itself), so a hit's one read stays small."""
    return {k: v for k, v in doc.items() if k != "code"}


def as_cache_store(value: Any, what: str) -> CacheStore:
    """``value`` as a cache store: a CacheStore as it is, a StorageResult in a ResultCacheStore.

    ``what`` names the setting in the error for anything else.
    """
    if isinstance(value, StorageResult):
        return ResultCacheStore(value)
    if isinstance(value, CacheStore) and not isinstance(value, Result):
        return value
    raise ConfigurationError(
        f"{what} must be a cache store: a Result to keep entries on (LocalResult(dir=...), "
        "S3Result(...)), a URL, 'memory', or a CacheStore (get/put) such as "
        f"resultkit.caching.OutputCache(); got {type(value).__name__}"
    )
