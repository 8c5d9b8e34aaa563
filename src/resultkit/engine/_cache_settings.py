"""A task's cache settings, checked: ``cache_for``, the validators, and cache invalidation.

``code_version``: a version string that stands for the task's code in its
cache instead of its fingerprint (as Flyte's ``cache_version``): bump it to
invalidate; alone, it makes the validator ``code_only``.
``target_validator``: e.g. ``cache_validators.code_only``: an existing
target is stale (recomputed and overwritten) when the validator refuses the
record of the code that wrote it. ``refresh_cache``: recompute and
overwrite the cache (or target) on every run. ``cache_ignore``: input names
left out of the cache key (``["verbose"]``).
"""

from __future__ import annotations

import inspect
from collections.abc import Iterable
from datetime import timedelta
from typing import TYPE_CHECKING, Any

from ..caching.validators import CacheValidator, code_only, duration_only
from ..errors import FlowError, warn_user

if TYPE_CHECKING:
    from .task import Task

__all__ = ["cache_settings", "CacheSettings"]


#: (cache_for, cache_validator, code_version, target_validator, refresh_cache, cache_ignore)
CacheSettings = tuple[
    timedelta | None, CacheValidator, str | None, CacheValidator | None, bool, frozenset[str]
]


def cache_settings(
    task: Task,
    cache_for: timedelta | None,
    cache_validator: CacheValidator | None,
    target: Any,
    code_version: str | None,
    target_validator: CacheValidator | None,
    refresh_cache: bool,
    cache_ignore: Iterable[str] | None,
) -> CacheSettings:
    """The settings of ``task``, checked; a bad one is a one-line FlowError."""
    name = task.name
    if cache_for is not None and not isinstance(cache_for, timedelta):
        raise FlowError(f"task {name!r}: cache_for must be a datetime.timedelta")
    if cache_validator is not None and cache_for is None and target is None:
        warn_user(
            f"task {name!r} has a cache_validator but no cache_for: it will not be "
            "cached. Set cache_for=timedelta(...)."
        )
    if code_version is not None and (not isinstance(code_version, str) or not code_version):
        raise FlowError(
            f"task {name!r}: code_version must be a non-empty str, e.g. code_version='2', "
            f"got {code_version!r}"
        )
    if cache_validator is None and code_version is not None:
        cache_validator = code_only
    if target_validator is not None and (target is None or not callable(target_validator)):
        raise FlowError(
            f"task {name!r}: target_validator needs a target and a validator, e.g. "
            "target='{task_name}.pkl', target_validator=cache_validators.code_only"
        )
    if isinstance(cache_ignore, str) or not all(isinstance(n, str) for n in cache_ignore or ()):
        raise FlowError(
            f"task {name!r}: cache_ignore must be a list of input names, e.g. "
            f"cache_ignore=['verbose'], got {cache_ignore!r}"
        )
    ignored = frozenset(cache_ignore or ())
    inputs = set(inspect.signature(task.run).parameters)
    unknown = sorted(ignored - inputs)
    if unknown:
        raise FlowError(
            f"task {name!r}: cache_ignore names {unknown}, which are not inputs of the task; "
            f"its inputs are {sorted(inputs) or 'none'}"
        )
    validator = cache_validator or duration_only
    return cache_for, validator, code_version, target_validator, bool(refresh_cache), ignored
