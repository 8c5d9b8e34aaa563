"""A ResultCacheStore's inventory: what it holds (for ``resultkit gc``), removal, last-hit
marks, and reading an entry's value (a value that has gone is a miss).

Every entry carries its write time (``created``, in its name and document)
and, once it has been hit, a last-hit marker ``<slot>/hits/<entry stem>.json``
(``{"last_hit": <UTC time>}``). Object stores have no access time, so the
marker is what "least recently used" is judged by. A hit writes it at most
once: only when this process has not marked that entry within the last
:data:`HIT_MARK_INTERVAL` (one hour), so a hot entry costs one small write
per process per hour, and a failure to write it is only logged. The marker
is therefore precise to about an hour, which is what a size or age cap needs.
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path
from urllib.parse import urlparse
from urllib.request import url2pathname

from ..errors import ResultError, warn_user
from ..results import FormattedLocation, Result, StorageResult
from ._documents import Documents
from ._layout import LAYOUT, StoredEntry, _hash, _parse_name
from .store import CacheKey, expired_at

__all__ = ["CacheEntryInfo", "Inventory", "HIT_MARK_INTERVAL"]

logger = logging.getLogger("resultkit")

#: A hit rewrites an entry's last-hit marker only when this process's last mark is older.
HIT_MARK_INTERVAL = timedelta(hours=1)


@dataclass(frozen=True)
class CacheEntryInfo:
    """One entry of a :class:`~resultkit.caching.ResultCacheStore`, as its inventory lists it.

    Attributes:
        slot: the folder of its cache key under the store's root (``v1/<label>-<hash>``).
        key: the :class:`~resultkit.caching.CacheKey` it belongs to.
        name: its file name in ``<slot>/entries/``.
        created: when it was written (UTC).
        expires: when it expires (UTC), ``None`` for never.
        last_hit: when a lookup last used it (UTC, to within an hour), ``None`` if never.
        value_kind: ``"location"`` (the task's checkpoint, which the entry
            only points to) or ``"stored"`` (a copy kept under this store).
        value_at: the checkpoint's URL, or the stored copy's key under the store's root.
        value_present: whether the value still exists, when the listing was
            asked to check (``entries(check_values=True)``) and can tell: a
            value under this store or on a local disk. ``None`` otherwise
            (a checkpoint in another bucket).
    """

    slot: str
    key: CacheKey
    name: str
    created: datetime
    expires: datetime | None
    last_hit: datetime | None
    value_kind: str
    value_at: str
    value_present: bool | None = None

    @property
    def label(self) -> str:
        """How messages name its cache key: ``'clean'``, ``'clean[2]'``."""
        return self.key.label


def _hit_key(slot: str, name: str) -> str:
    return f"{slot}/hits/{name.removesuffix('.json')}.json"


class Inventory(Documents):
    """Listing, removal, last-hit marking and value reading of a ResultCacheStore's entries."""

    _values: StorageResult  # the store's Result for values it keeps itself
    _marks: dict[str, datetime]
    _marks_lock: threading.Lock

    @staticmethod
    def _slot(key: CacheKey) -> str:
        raise NotImplementedError

    def _init_inventory(self) -> None:
        self._marks = {}  # hit key -> when this process last wrote it
        self._marks_lock = threading.Lock()

    def entries(self, *, check_values: bool = False) -> list[CacheEntryInfo]:
        """Every entry of the store (expired ones not yet deleted included), oldest first.

        One listing of the store, one read per entry and one per last-hit
        marker; with ``check_values=True`` also one existence check per value.

        Example:
            >>> store = ResultCacheStore(LocalResult(dir="cache"))           # doctest: +SKIP
            >>> for info in store.entries():                                  # doctest: +SKIP
            ...     print(info.label, info.created, info.last_hit, info.value_at)
        """
        keys = self._list(f"{LAYOUT}/")
        hits = {k for k in keys if "/hits/" in k}
        found: list[CacheEntryInfo] = []
        for key in keys:
            slot, _, rest = key.rpartition("/entries/")
            name = rest
            if not slot or "/" in name or _parse_name(name) is None:
                continue
            entry = self._entry(self._read(key))
            if entry is None:
                continue
            hit_key = _hit_key(slot, name)
            found.append(
                CacheEntryInfo(
                    slot=slot,
                    key=_key_of(entry),
                    name=name,
                    created=entry.created,
                    expires=entry.cached_result_expiration,
                    last_hit=self._last_hit(hit_key) if hit_key in hits else None,
                    value_kind=entry._where,
                    value_at=entry._at,
                    value_present=self._value_present(entry) if check_values else None,
                )
            )
        found.sort(key=lambda info: (info.created, info.slot, info.name))
        return found

    def remove(self, info: CacheEntryInfo) -> None:
        """Delete an entry: its document, its index references, its last-hit marker and
        its stored value copy. A checkpoint it only points to (``value_kind ==
        "location"``) is never deleted: it belongs to the task's Result.

        Example:
            >>> old = [i for i in store.entries() if i.last_hit is None]     # doctest: +SKIP
            >>> for info in old:                                              # doctest: +SKIP
            ...     store.remove(info)
        """
        doc = self._read(f"{info.slot}/entries/{info.name}")
        entry = self._entry(doc) if doc is not None else None
        if entry is not None:
            self._unindex(info.slot, entry)
        self._drop(info.slot, info.name)
        with self._marks_lock:
            self._marks.pop(_hit_key(info.slot, info.name), None)
        front = getattr(self, "front", None)
        if front is not None:
            front.clear()  # it may hold this entry; the store is the truth

    def recent(self, key: CacheKey, n: int = 2) -> list[StoredEntry]:
        """The ``n`` newest entries under ``key`` (expired ones included), newest first."""
        slot = self._slot(key)
        try:
            names = self._entry_names(slot)
        except ResultError:
            return []
        found = []
        for name, _ in names:
            entry = self._entry(self._read(f"{slot}/entries/{name}"))
            if entry is not None:
                found.append(entry)
            if len(found) >= n:
                break
        return found

    def prune(self) -> int:
        """Delete every expired entry (with its value) and index; how many entries."""
        now = datetime.now(timezone.utc)
        dropped = 0
        for key in self._list(f"{LAYOUT}/"):
            slot, _, rest = key[len(LAYOUT) + 1 :].partition("/")
            folder, _, name = rest.partition("/")
            parsed = _parse_name(name) if folder == "entries" else None
            if parsed is not None and expired_at(parsed[0], now):
                self._drop(f"{LAYOUT}/{slot}", name)
                dropped += 1
            elif folder == "index" and not self._live(self._index_docs(key), now):
                self._delete(key)
        return dropped

    # -- values -------------------------------------------------------------------------
    def _load(
        self, entry: StoredEntry, reader: Result | None, gone: list[str], why: list[str] | None
    ) -> bool:
        """Read the entry's value into it; a value that has gone adds the entry to ``gone``."""
        if entry._where == "stored":
            source: Result | None = self._values
        else:
            source = next(
                (
                    r
                    for r in (reader, self._values)
                    if r is not None
                    and (not isinstance(r, StorageResult) or r.storage.key_of(entry._at))
                ),
                None,
            )
        if source is None:
            warn_user(
                f"output cache: the cached value at {entry._at} is not under the task's Result "
                f"nor this store ({self.result.root_url}); a miss"
            )
            return False
        try:
            entry._result = source.read(FormattedLocation(entry._at))
        except FileNotFoundError:  # ResultNotFoundError too: deleted behind our back
            logger.info("Output cache: the value at %s has gone; a miss", entry._at)
            gone.append(entry.name)
            if why is not None:
                why.append(f"the cached value at {entry._at} has gone (its entry is deleted)")
            return False
        except (ResultError, OSError) as exc:
            self._warn("read the cached value", entry._at, exc)
            return False
        return True

    # -- last-hit markers ------------------------------------------------------------------
    def _mark_hit(self, slot: str, name: str) -> None:
        """Record a hit, at most one small write per entry per process per interval."""
        key = _hit_key(slot, name)
        now = datetime.now(timezone.utc)
        with self._marks_lock:
            last = self._marks.get(key)
            if last is not None and now - last < HIT_MARK_INTERVAL:
                return
            self._marks[key] = now
        try:
            self._write({"last_hit": now}, key)
        except ResultError as exc:
            logger.info("Output cache: could not mark a hit at %s: %s", key, exc)

    def _last_hit(self, key: str) -> datetime | None:
        doc = self._read(key)
        when = doc.get("last_hit") if doc is not None else None
        return when if isinstance(when, datetime) else None

    def _value_present(self, entry: StoredEntry) -> bool | None:
        """Whether the value exists: under this store or on a local disk; else unknown (None)."""
        try:
            if entry._where == "stored":
                return bool(self._docs.exists(entry._at))
            key = self.result.storage.key_of(entry._at)
            if key is not None:
                return bool(self.result.storage.exists(key))
        except (ResultError, OSError, ValueError):
            return False
        if entry._at.startswith("file://"):  # a local checkpoint: a stat is cheap
            return Path(url2pathname(urlparse(entry._at).path)).is_file()
        return None  # another bucket: its credentials are the task's, not this store's

    def _unindex(self, slot: str, entry: StoredEntry) -> None:
        """Take ``entry`` out of every index of its slot that lists it."""
        for tag, match in self._tags(slot):
            index = f"{slot}/index/{tag}/{_hash(match.entry_digest(entry))}.json"
            docs = self._index_docs(index)
            kept = [d for d in docs if d.get("name") != entry.name]
            if len(kept) == len(docs):
                continue
            if kept:
                self._write({"entries": kept}, index)
            else:
                self._delete(index)


def _key_of(entry: StoredEntry) -> CacheKey:
    key = entry.doc.get("key")
    if not isinstance(key, dict):
        return CacheKey(entry.name)
    index = key.get("map_index")
    return CacheKey(
        str(key.get("name")),
        None if key.get("flow") is None else str(key.get("flow")),
        index if isinstance(index, int) else None,
    )
