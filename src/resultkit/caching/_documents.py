"""Reading and writing a ResultCacheStore's JSON documents, failures as misses."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from datetime import datetime
from typing import Any

from ..errors import ResultError, StorageError, warn_user
from ..results import StorageResult
from ._layout import _MAX_PER_DIGEST, _identity, _match_of, _parse_name, _tag
from .store import expired_at
from .validators import MatchOn

logger = logging.getLogger("resultkit")


class Documents:
    """JSON documents under a Result's root; a failure to read one is a warned miss."""

    result: StorageResult
    _docs: StorageResult
    _matches: dict[str, MatchOn]

    def _entry(self, doc: Mapping[str, Any] | None) -> Any: ...

    def _list(self, prefix: str) -> list[str]:
        try:
            return list(self.result.storage.list(prefix))
        except Exception as exc:
            raise StorageError(
                f"could not list {self.result.root_url}/{prefix}: {type(exc).__name__}: {exc}",
                location=prefix,
            ) from exc

    def _read(self, key: str) -> dict[str, Any] | None:
        """The JSON object at ``key``, or None when it is absent (or unreadable: warned)."""
        try:
            doc = self._docs.read(key).value
        except FileNotFoundError:
            return None
        except ResultError as exc:
            self._warn("read", key, exc)
            return None
        return doc if isinstance(doc, dict) else None

    def _exists(self, key: str) -> bool:
        try:
            return self._docs.exists(key)
        except ResultError as exc:
            self._warn("check", key, exc)
            return True  # as if indexed: a miss, never a listing per lookup on a sick storage

    def _write(self, doc: Mapping[str, Any], key: str) -> None:
        self._docs.write(dict(doc), key)

    def _drop(self, slot: str, name: str) -> None:
        """Delete an entry, its value and its last-hit marker (best effort: another
        process may have done it)."""
        self._delete(f"{slot}/entries/{name}")
        self._delete(f"{slot}/values/{name.removesuffix('.json')}.val")
        self._delete(f"{slot}/hits/{name}")

    def _delete(self, key: str) -> None:
        try:
            self._docs.delete(key)
        except ResultError as exc:
            logger.info("Output cache: could not delete %s: %s", key, exc)

    def _warn(self, action: str, where: str, exc: BaseException) -> None:
        warn_user(
            f"output cache store at {self.result.root_url}: could not {action} {where}: {exc}; "
            "treated as a miss"
        )

    def _index_docs(self, key: str) -> list[dict[str, Any]]:
        return self._docs_in(self._read(key))

    @staticmethod
    def _docs_in(index: Mapping[str, Any] | None) -> list[dict[str, Any]]:
        docs = index.get("entries") if index is not None else None
        return [d for d in docs if isinstance(d, dict)] if isinstance(docs, list) else []

    def _entry_names(self, slot: str) -> list[tuple[str, tuple[datetime | None, str]]]:
        """The slot's entry names with their expiry and identity, newest first."""
        found = []
        for key in self._list(f"{slot}/entries/"):
            name = key.rpartition("/")[2]
            parsed = _parse_name(name)
            if parsed is not None:
                found.append((name, parsed))
        found.sort(reverse=True)
        return found

    def _live(self, docs: list[dict[str, Any]], now: datetime) -> list[dict[str, Any]]:
        """``docs`` (newest first) without the expired, damaged and replaced ones."""
        kept: dict[str, dict[str, Any]] = {}
        for doc in docs:
            entry = self._entry(doc)
            if entry is not None and not expired_at(entry.cached_result_expiration, now):
                kept.setdefault(_identity(entry), doc)  # the newest of identical runs
        return list(kept.values())[:_MAX_PER_DIGEST]

    def _tags(self, slot: str) -> list[tuple[str, MatchOn]]:
        """The indexes the slot keeps."""
        found = []
        for key in self._list(f"{slot}/tags/"):
            tag = key.rpartition("/")[2].removesuffix(".json")
            match = self._matches.get(tag)
            if match is None:
                match = _match_of(self._read(key))
                if match is None or _tag(match) != tag:
                    continue  # damaged or foreign: its index is not kept
                self._matches[tag] = match
            found.append((tag, match))
        return found
