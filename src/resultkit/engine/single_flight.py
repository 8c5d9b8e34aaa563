"""Single flight: of the runs that miss one target or cache entry at once, one computes.

The others wait for its lock and read what it wrote; if the holder failed
(nothing written), the next waiter computes. The lock lives on the storage
of the result itself (see :class:`~resultkit.caching.locks.SingleFlightLock`):
the target's Result, or the cache store's, where it is named after the
cache key and the tokens of the inputs and parameters, so runs of other
inputs under one ``cache_key`` never wait for each other.
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Callable

from ..caching import ResultCacheStore
from ..caching.locks import SingleFlightLock
from ..errors import StorageError
from ..results import FormattedLocation, Result, StorageResult
from .context import config
from .output_cache import Lookup, OutputCaching
from .state import State
from .task import Task

__all__ = ["target_flight", "cache_flight"]

logger = logging.getLogger("resultkit")

Flight = tuple[SingleFlightLock | None, State | None]


def _compute_once(
    result: StorageResult, name: str, look_again: Callable[[], State | None], waiting: str
) -> Flight:
    lock = SingleFlightLock(result, name, lease=config.lock_lease)
    while True:
        if lock.acquire():
            try:
                hit = look_again()  # the previous holder may have written it just before
            except BaseException:
                lock.release()
                raise
            if hit is not None:
                lock.release()
                return None, hit
            return lock, None
        logger.info(waiting)
        lock.wait()
        hit = look_again()
        if hit is not None:
            return None, hit


def target_flight(
    task: Task,
    result: Result,
    target: FormattedLocation,
    look_again: Callable[[], State | None],
    name: str,
) -> Flight:
    """After a target miss: the lock to compute under, or the state another run made."""
    if not task.single_flight or not isinstance(result, StorageResult):
        return None, None
    if not result.storage.supports_put_if_absent:
        return None, None
    waiting = f"Task '{name}': waiting for another run computing {target}"
    try:
        return _compute_once(result, target, look_again, waiting)
    except StorageError as exc:  # as for caches: compute without the lock, saying so
        logger.warning("Task '%s': no single-flight lock for %s (%s)", name, target, exc)
        return None, None


def _lock_name(lookup: Lookup) -> str:
    ident = json.dumps(
        [lookup.key.label, lookup.inputs, lookup.parameters], sort_keys=True, default=str
    )
    return f"cache-{hashlib.sha256(ident.encode()).hexdigest()[:40]}"


def cache_flight(
    caching: OutputCaching,
    task: Task,
    lookup: Lookup,
    name: str,
    look_again: Callable[[], State | None],
) -> Flight:
    """After a cache miss: the lock to compute under, or the state another run cached.

    A store that is not on a storage with atomic create (an in-memory
    ``OutputCache``) gives no lock: the run computes.
    """
    store = caching.store
    if not task.single_flight or not isinstance(store, ResultCacheStore):
        return None, None
    if not store.result.storage.supports_put_if_absent:
        return None, None
    waiting = f"Task '{name}': waiting for another run computing its cached output"
    try:
        return _compute_once(store.result, _lock_name(lookup), look_again, waiting)
    except StorageError as exc:  # the cache never fails a task: compute without the lock
        logger.warning("Task '%s': no single-flight lock on the cache store (%s)", name, exc)
        return None, None
