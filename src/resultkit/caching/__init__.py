"""Output caching: validators, input hashing and cache stores (no knowledge of the engine).

Public names: :func:`input_token` / :func:`inputs_token` (deterministic input
hashes), :class:`OutputCache` (the in-process store), :class:`CacheStore`
(the interface a store implements) and :class:`CacheKey`. The validators'
public home is :mod:`resultkit.cache_validators`.
"""

from .hashing import input_token, inputs_token
from .store import CacheEntry, CacheKey, CacheStore, OutputCache

__all__ = ["input_token", "inputs_token", "OutputCache", "CacheStore", "CacheKey", "CacheEntry"]
