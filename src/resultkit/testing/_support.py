"""What the contract's tests share: raw access under the Result, threads, expected errors.

The suite looks underneath a Result only through the public
:class:`~resultkit.results.Storage` API of ``result.storage`` (so it works
for any :class:`~resultkit.results.StorageResult`); the one exception is
:meth:`RawAccess.raw_objects`, which lists the files of an fsspec-based
backend so that leftover temporary files are seen.
"""

from __future__ import annotations

import contextlib
import threading
import traceback
from collections.abc import Callable, Iterator, Mapping
from typing import Any, TypeVar

import pytest

from ..results import FSSpecResult, Result, Storage

__all__ = [
    "RawAccess",
    "Workers",
    "expect_error",
    "applies_when",
    "location_of",
    "RECORD_SUFFIX",
    "TEMP_MARKER",
]

#: Names the fsspec-based backends give their own files (a record, a temp file).
RECORD_SUFFIX = ".rkmeta"
TEMP_MARKER = ".rktmp-"

E = TypeVar("E", bound=BaseException)
F = TypeVar("F", bound=Callable[..., Any])


def applies_when(**flags: bool) -> Callable[[F], F]:
    """Mark a test as applying only when the test class's capability flags have these values.

    A test class whose flags differ does not collect the test at all (see
    :class:`~resultkit.testing.ResultContract`).
    """

    def mark(test: F) -> F:
        test.__contract_requires__ = dict(flags)  # type: ignore[attr-defined]
        return test

    return mark


def location_of(result: Result) -> str:
    """The formatted location a Result returned by ``write``, ``read`` or ``format`` holds."""
    location = result.location
    assert isinstance(location, str), (
        f"write, read and format must return a Result with a formatted location; got {location!r}"
    )
    return location


class Caught:
    """The exception :func:`expect_error` caught."""

    value: Any = None


@contextlib.contextmanager
def expect_error(expected: type[E] | tuple[type[E], ...], must: str) -> Iterator[Caught]:
    """Like ``pytest.raises``, but a failure says what the backend must do.

    ``must`` completes "the backend must ...": the failure reads
    ``"<must>; instead <what happened>"``.
    """
    caught = Caught()
    try:
        yield caught
    except expected as exc:
        caught.value = exc
        return
    except Exception as exc:
        pytest.fail(f"{must}; instead it raised {type(exc).__name__}: {exc}", pytrace=True)
    pytest.fail(f"{must}; instead nothing was raised", pytrace=True)


class Workers:
    """Threads whose every exception is collected and reported, never swallowed.

    ``check(must)`` joins them and fails the test when one raised or did not
    finish, with each thread's name and traceback.
    """

    def __init__(self) -> None:
        self.threads: list[threading.Thread] = []
        self.errors: list[tuple[str, BaseException, str]] = []
        self._lock = threading.Lock()

    def start(self, name: str, target: Callable[..., Any], *args: Any) -> None:
        def run() -> None:
            try:
                target(*args)
            except BaseException as exc:
                with self._lock:
                    self.errors.append((name, exc, traceback.format_exc()))

        thread = threading.Thread(target=run, name=name, daemon=True)
        self.threads.append(thread)
        thread.start()

    def check(self, must: str, timeout: float = 300.0) -> None:
        for thread in self.threads:
            thread.join(timeout)
        stuck = [t.name for t in self.threads if t.is_alive()]
        assert not stuck, f"{must}; threads {stuck} did not finish within {timeout:.0f}s"
        if self.errors:
            name, first, tb = self.errors[0]
            others = "".join(
                f"\n--- thread {n}: {type(e).__name__}: {e}" for n, e, _ in self.errors[1:]
            )
            pytest.fail(
                f"{must}; {len(self.errors)} thread(s) raised, the first "
                f"{type(first).__name__}: {first}\n--- thread {name}:\n{tb}{others}",
                pytrace=True,
            )


class RawAccess:
    """Hooks to look underneath the Result (to damage a payload, list what is stored).

    They use ``result.storage`` (the public :class:`~resultkit.results.Storage`
    API), so any :class:`~resultkit.results.StorageResult` backend works
    unchanged. Override them only for a Result that has no storage.
    """

    def storage_of(self, result: Result) -> Storage:
        """The Storage under ``result``."""
        storage = getattr(result, "storage", None)
        assert isinstance(storage, Storage), (
            "the contract suite tests StorageResult backends: the `result` fixture must "
            "return a resultkit.results.StorageResult (whose .storage is a Storage), or the "
            f"test class must override the raw_* hooks; got {type(result).__name__}"
        )
        return storage

    def raw_key(self, result: Result, location: Any) -> str:
        """The storage key of a location (relative, or a canonical URL of this Result)."""
        location = str(location)
        if "://" not in location:
            return location
        key = self.storage_of(result).key_of(location)
        assert key is not None, (
            f"Storage.key_of must return the key of every URL Storage.url made; got None "
            f"for {location!r}"
        )
        return key

    def raw_get(self, result: Result, location: Any) -> tuple[bytes, dict[str, str]] | None:
        """The stored payload and metadata, exactly as the storage returns them."""
        found = self.storage_of(result).get(self.raw_key(result, location))
        if found is None:
            return None
        data, metadata = found
        return bytes(data), dict(metadata)

    def raw_read(self, result: Result, location: Any) -> bytes:
        """The payload's bytes."""
        found = self.raw_get(result, location)
        assert found is not None, (
            f"Storage.get must return the pair stored at {location}; it returned None"
        )
        return found[0]

    def raw_write(
        self,
        result: Result,
        location: Any,
        data: bytes,
        metadata: Mapping[str, str] | None = None,
    ) -> None:
        """Replace the stored pair by exactly ``data`` and ``metadata`` (default: the old metadata).

        The old pair is deleted first, so that nothing of it (a storage may
        keep the record a put replaces) vouches for the new one.
        """
        if metadata is None:
            found = self.raw_get(result, location)
            metadata = found[1] if found is not None else {}
        metadata = dict(metadata)
        storage, key = self.storage_of(result), self.raw_key(result, location)
        if getattr(self, "supports_delete", True):
            storage.delete(key)
            gone = storage.get(key)
            assert gone is None, (
                "after delete, get must return None (the pair gone, not cached); it returned "
                f"{len(gone[0])} bytes with {dict(gone[1])}"
            )
        storage.put(key, data, metadata)
        back = self.raw_get(result, location)
        assert back is not None and back[0] == bytes(data), (
            "get must return the bytes last put (no stale cache); put "
            f"{len(data)} bytes, got {back and len(back[0])}"
        )
        assert metadata.items() <= back[1].items(), (
            "get must return the metadata last put with its bytes (no stale cache); put "
            f"{metadata}, got {back[1]}"
        )

    def raw_delete(self, result: Result, location: Any) -> bool:
        """Remove the stored pair."""
        return bool(self.storage_of(result).delete(self.raw_key(result, location)))

    def raw_list(self, result: Result) -> list[str]:
        """Every key stored under the result's root, sorted."""
        return sorted(self.storage_of(result).list(""))

    def raw_objects(self, result: Result) -> list[str]:
        """Every object under the root, the backend's own files included (relative names).

        For an fsspec-based backend these are the files (payloads, ``.rkmeta``
        records and any temporary file left behind); for any other backend
        the keys of :meth:`raw_list`.
        """
        if not isinstance(result, FSSpecResult):
            return self.raw_list(result)
        fs = result.fs
        root = str(getattr(result.storage, "root", "")).rstrip("/")
        fs.invalidate_cache()
        try:
            found = [str(p) for p in fs.find(root)]
        except FileNotFoundError:
            return []
        names = []
        for name in found:
            name = name.split("://", 1)[1] if "://" in name else name
            if root and name.startswith(root + "/"):
                name = name[len(root) + 1 :]
            names.append(name.lstrip("/") if not root else name)
        return sorted(names)
