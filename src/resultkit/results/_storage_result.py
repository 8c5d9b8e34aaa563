"""StorageResult: a Result over any :class:`~resultkit.results.Storage`.

Everything a backend must not get wrong lives here, once: location safety
(its methods in ``_locating.py``), the integrity record, verification before
deserializing, and error mapping.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any, TypeVar

from ..errors import (
    ConfigurationError,
    ResultError,
    ResultNotFoundError,
    SerializationError,
    StorageAccessError,
    StorageError,
)
from ..serializers import Serializer
from ._base import Result
from ._batch import BatchOperations
from ._errors import failed_key, is_transient, map_storage_errors, translate
from ._locating import Locating
from ._location import (
    LocationTemplate,
)
from ._pairs import load_pair, store_pair
from ._record import Record
from ._signing import SigningKeys
from ._verify import (
    parse_record,
)
from .retry import RetryPolicy
from .storage import Storage

__all__ = ["StorageResult"]

R = TypeVar("R", bound="StorageResult")
T = TypeVar("T")


class StorageResult(Locating, BatchOperations, Result):
    """A Result stored on a :class:`~resultkit.results.Storage`.

    Args:
        storage: where the bytes go (one instance, shared by every copy of this Result).
        location: the location template (str or callable); default: a unique name.
        serializer: default :class:`~resultkit.serializers.PickleSerializer`.
        value: the value held (as Prefect 1's ``Result(value)``).
        verify: check the integrity record on read (default). ``False`` reads
            payloads written by other tools, which have no record.
        signing_key: a secret key (or a list: the first signs, all verify) to
            sign every record with HMAC-SHA256 and refuse, before
            deserializing, any unsigned, tampered, swapped or relocated pair.
            Default: the environment variable ``RESULTKIT_SIGNING_KEY``.
        retries: a :class:`~resultkit.results.RetryPolicy` (or a number of
            attempts) for transient storage failures; default 4 attempts with
            a jittered backoff from 0.1 s. Access denied and not found are
            never retried.

    Example:
        >>> from resultkit.results import MemoryResult
        >>> r = MemoryResult(location="{x}.pkl")
        >>> r.write(41, x="doc").read().value
        41
    """

    _implements_storage = True

    def __init__(
        self,
        storage: Storage,
        location: LocationTemplate | None = None,
        serializer: Serializer | None = None,
        *,
        value: Any = None,
        verify: bool = True,
        signing_key: str | bytes | Sequence[str | bytes] | None = None,
        retries: RetryPolicy | int | None = None,
    ) -> None:
        if not isinstance(storage, Storage):
            raise ConfigurationError(
                f"StorageResult needs a resultkit.results.Storage, got {type(storage).__name__}"
            )
        if not isinstance(storage.root_url, str) or "://" not in storage.root_url:
            raise ConfigurationError(
                f"{type(storage).__name__} has no root_url: set self.root_url to the URL its "
                f"locations start with (e.g. 'sqlite:///data/results.db'), got "
                f"{storage.root_url!r}"
            )
        super().__init__(value=value, location=location, serializer=serializer)
        self.storage = storage
        self.verify = verify
        #: Keys that sign and verify records (``signing_key=`` or RESULTKIT_SIGNING_KEY).
        self.signing = SigningKeys.from_argument(signing_key)
        if self.signing is not None and not verify:
            raise ConfigurationError(
                f"{type(self).__name__}(verify=False) reads payloads without checking them, so "
                "it cannot honour a signing key (signing_key= or RESULTKIT_SIGNING_KEY): drop "
                "one of the two"
            )
        #: How transient storage failures (5xx, resets, timeouts) are retried.
        self.retries = RetryPolicy.coerce(retries)
        self._located = {}  # see Locating

    # -- operations ----------------------------------------------------------------
    def write(self: R, value: Any, location: LocationTemplate | None = None, **kwargs: Any) -> R:
        """Store ``value`` and return a new Result holding it and its canonical location.

        The write is atomic: a concurrent reader sees the old payload, the new
        one, or nothing. A write that fails leaves the old value in place.
        ``self`` is not changed.
        """
        loc, key = self._locate(location, kwargs)
        return self._written(loc, value, self._call(loc, "write", self._store, loc, key, value))

    def _written(self: R, location: str, value: Any, record: Record) -> R:
        """What a write returns: a copy holding ``value``, its canonical location and record."""
        new = self.copy()
        new.location = location
        new.value = value
        new.record = record
        return new

    def read(self: R, location: LocationTemplate | None = None, **kwargs: Any) -> R:
        """Load the value stored at ``location`` and return a new Result holding it.

        No byte reaches the serializer before its size and digest match the
        record. Raises :class:`~resultkit.errors.ResultNotFoundError`,
        :class:`~resultkit.errors.ResultCorruptError` or
        :class:`~resultkit.errors.SerializerMismatchError`; never returns a
        value that does not match what was written.
        """
        if location is None and self.location is None:
            self._needs_location(location, "read")  # raises, saying what to pass
        loc, key = self._locate(location, kwargs)
        new = self.copy()
        new.location = loc
        new.value, new.record = self._call(loc, "read", self._load, loc, key)
        return new

    def read_bytes(
        self, location: LocationTemplate | None = None, **kwargs: Any
    ) -> tuple[bytes, Record]:
        """The stored payload's bytes, verified against its record, and the record.

        Nothing is deserialized, so any serializer's payload can be read (the
        ``resultkit`` command uses it to verify and copy results).
        """
        canonical = self._canonical_location(self._needs_location(location, "read"), kwargs)
        reader = self.copy()
        reader.verify = True
        with map_storage_errors(canonical, "read"):
            data, record = reader._load(canonical, self._key(canonical), raw=True)
        assert record is not None
        return bytes(data), record

    def adopt(self: R, location: LocationTemplate | None = None, **kwargs: Any) -> R:
        """Give a payload written by another tool (a Prefect 1 target) an integrity record.

        The payload is deserialized once with this Result's serializer; only
        if that succeeds is its record written (the bytes stay as they are),
        after which it reads like any other result. Adopting a payload that
        already has a record changes nothing. Only adopt payloads you trust:
        deserializing (unpickling) runs code of the payload's choosing.

        Example:
            >>> r = LocalResult(dir=prefect1_results_dir)            # doctest: +SKIP
            >>> r.adopt("monday/extract.txt").value                  # doctest: +SKIP
        """
        new = self.copy()
        new.location = self._canonical_location(self._needs_location(location, "adopt"), kwargs)
        key = self._key(new.location)
        with map_storage_errors(new.location, "adopt"):
            found = self.storage.get(key)
            if found is None:
                raise ResultNotFoundError(
                    f"nothing is stored at {new.location}", location=new.location
                )
            data, metadata = found
            if metadata:  # already ours: verify it like any read
                return self.read(new.location)
            new.value = self._deserialize(new.location, data)
            record = Record(self.serializer.name, Record.digest_of(data), len(data))
            if self.signing is not None:
                record = self.signing.sign(record, key)
            self.storage.put(key, data, record.to_metadata())
        new.record = record
        return new

    def _needs_location(
        self, location: LocationTemplate | None, action: str
    ) -> LocationTemplate | None:
        if location is None and self.location is None:
            raise ResultError(
                f"{action}() needs a location: pass one (result.{action}('name.pkl')) or set "
                f"location= on the {type(self).__name__}; a write without one picks a unique "
                "name, which the returned Result's .location holds"
            )
        return location

    def exists(self, location: LocationTemplate | None = None, **kwargs: Any) -> bool:
        """Return whether something is stored at ``location``; never downloads it."""
        canonical, key = self._locate(self._needs_location(location, "exists"), kwargs)
        return bool(self._call(canonical, "check", lambda: self.storage.exists(key)))

    def exists_many(self, locations: Sequence[LocationTemplate]) -> list[bool]:
        """``exists`` for many (already formatted) locations at once, answered in bulk."""
        located = [self._locate(loc, {}) for loc in locations]
        if not located:
            return []
        keys = [key for _, key in located]
        # A storage marks a key's failure with its key: the error names that location.
        where = {key: canonical for canonical, key in reversed(located)}
        return list(self._call(located[0][0], "check", self.storage.exists_many, keys, where=where))

    def stat(self, location: LocationTemplate | None = None, **kwargs: Any) -> Record | None:
        """The integrity record stored at ``location`` without reading the value.

        ``None`` when nothing is stored there; :class:`ResultCorruptError` when a
        payload is there without a readable record.
        """
        canonical = self._canonical_location(self._needs_location(location, "stat"), kwargs)
        key = self._key(canonical)
        metadata = self._call(canonical, "check", lambda: self.storage.head(key))
        if metadata is None:
            return None
        return parse_record(canonical, metadata)

    def delete(self, location: LocationTemplate | None = None, **kwargs: Any) -> bool:
        """Remove the value stored at ``location``; return whether anything was there."""
        canonical = self._canonical_location(self._needs_location(location, "delete"), kwargs)
        key = self._key(canonical)
        return bool(self._call(canonical, "delete", lambda: self.storage.delete(key)))

    def put_if_absent(
        self, data: bytes, location: LocationTemplate | None = None, **kwargs: Any
    ) -> bool:
        """Store raw ``data`` at ``location`` only if nothing is there; return whether it did.

        The check and the create are one atomic operation on the storage
        (local: a hard link of the whole marker, S3 ``If-None-Match: *``, GCS
        ``ifGenerationMatch=0``, Azure ``If-None-Match: *``), so of many concurrent
        callers exactly one gets ``True``: the primitive for single-flight locks.
        ``data`` (bytes) is a marker, not a value; it carries no integrity record.
        """
        canonical = self._canonical_location(location, kwargs)
        if not isinstance(data, (bytes, bytearray, memoryview)):
            raise ConfigurationError(
                f"put_if_absent at {canonical} stores raw bytes, not "
                f"{type(data).__name__!r} data: pass bytes (e.g. 'owner'.encode(), or "
                "pickle.dumps(value) for a value)"
            )
        with map_storage_errors(canonical, "create"):
            return bool(self.storage.put_if_absent(self._key(canonical), bytes(data), {}))

    # -- write and read, once for every backend ------------------------------------
    def _call(
        self,
        location: str,
        action: str,
        fn: Callable[..., T],
        *args: Any,
        where: Mapping[str, str] | None = None,
    ) -> T:
        """Run ``fn(*args)``, a storage operation: errors mapped to resultkit's, transient
        ones retried. ``where``: key -> location, for an error the storage marked with a
        key (a call about many keys): it names that location, not ``location``."""
        delays = None  # made at the first failure: most calls succeed at once
        while True:
            try:
                return fn(*args)
            except Exception as exc:
                named = where.get(failed_key(exc) or "", location) if where else location
                delays, delay = self._retry_after(named, action, exc, delays)
                time.sleep(delay)

    def _retry_after(
        self, location: str, action: str, exc: Exception, delays: Iterator[float] | None
    ) -> tuple[Iterator[float], float]:
        """After a failed try: the retry delays (made at the first) and the wait before the
        next try; or raises ``exc`` as resultkit's error when it is not to be tried again.

        Shared by :meth:`_call` and ``write_many``'s requests on the event loop
        (``_asyncbatch.py``), which wait with ``asyncio.sleep``.
        """
        error = translate(location, action, exc)
        if (
            isinstance(error, StorageError)
            and not isinstance(error, StorageAccessError)
            and is_transient(exc)
        ):
            if delays is None:
                delays = self.retries.delays()
            delay = next(delays, None)
            if delay is not None:
                return delays, delay
        if error is exc:
            raise exc
        raise error from exc

    def _store(self, location: str, key: str, value: Any) -> Record:
        return store_pair(self, location, key, value)

    def _load(self, location: str, key: str, raw: bool = False) -> tuple[Any, Record | None]:
        if self.verify:
            small_pair = getattr(self.storage, "small_pair", None)
            pair = small_pair(key) if small_pair is not None else None
            if pair is not None:
                data, record = pair
                if self._accepts(record, key, data, raw):
                    return (data if raw else self._deserialize(location, data)), record
        # Anything but a settled small pair that checks out, the general path
        # reads again from the start and says what is wrong.
        return load_pair(self, location, key, raw)

    def _accepts(self, record: Record, key: str, data: bytes, raw: bool) -> bool:
        """Whether ``data`` is the payload ``record`` names, with the serializer and
        signature a read needs: every check of the general path's success."""
        if len(data) != record.size or Record.digest_of(data) != record.digest:
            return False
        if not raw and record.serializer != self.serializer.name:
            return False
        if self.signing is not None:
            try:
                self.signing.check(record, key, "")
            except ResultError:
                return False
        return True

    def _deserialize(self, location: str, data: Any) -> Any:
        try:
            return self.serializer.deserialize(data)
        except SerializationError as exc:
            if exc.location is None:
                exc.location = location
            raise

    def _config_key(self) -> Any:
        return (self.root_url, self.verify, self.signing)

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}(root={self.root_url!r}, location={self._location_repr()!r}, "
            f"serializer={self.serializer.name!r})"
        )
