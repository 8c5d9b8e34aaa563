"""Output caching: validators, input hashing and cache stores (no knowledge of the engine).

Public names: :func:`input_token` / :func:`inputs_token` (deterministic input
hashes), :class:`OutputCache` (the in-process store), :class:`ResultCacheStore`
(a persistent store on any Result backend, shared between processes;
:meth:`ResultCacheStore.entries` lists it as :class:`CacheEntryInfo`),
:class:`CacheStore` (the interface a store implements) and :class:`CacheKey`.
:func:`code_fingerprint` tokens a task's code (:mod:`.fingerprint`);
:class:`CacheMiss` says why a cache missed and :func:`compare_last_entries`
shows a key's two newest entries side by side (:mod:`.explain`).
:func:`readable_location` says where a Result's value can be read by another
process (the one rule the cache store, the run records and Dask share).
The validators' public home is :mod:`resultkit.cache_validators`.
"""

from ._inventory import HIT_MARK_INTERVAL, CacheEntryInfo
from ._layout import readable_location
from .explain import CacheMiss, KeyComparison, compare_last_entries
from .fingerprint import CodeFingerprint, code_fingerprint
from .hashing import input_token, inputs_token
from .result_store import ResultCacheStore, StoredEntry, as_cache_store
from .store import CacheEntry, CacheKey, CacheStore, OutputCache

__all__ = [
    "input_token",
    "inputs_token",
    "OutputCache",
    "ResultCacheStore",
    "StoredEntry",
    "as_cache_store",
    "CacheStore",
    "CacheKey",
    "CacheEntry",
    "CacheEntryInfo",
    "HIT_MARK_INTERVAL",
    "CacheMiss",
    "KeyComparison",
    "compare_last_entries",
    "CodeFingerprint",
    "code_fingerprint",
    "readable_location",
]
