"""Cache validators: decide whether a cached state may be reused.

A validator is called as ``validator(state, inputs, parameters)`` where
``state`` is a cached state (it has ``cached_input_tokens``, ``cached_parameters``
and ``cached_result_expiration``), ``inputs`` maps each input name to its
token (see :mod:`resultkit.caching.hashing`) and ``parameters`` maps the
flow's parameter names to their tokens. It returns ``True`` to reuse.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from datetime import datetime, timezone
from typing import Any

__all__ = [
    "never_use",
    "duration_only",
    "all_inputs",
    "all_parameters",
    "partial_inputs_only",
    "partial_parameters_only",
    "CacheValidator",
]

CacheValidator = Callable[[Any, Mapping[str, str], Mapping[str, str]], bool]


def never_use(state: Any, inputs: Mapping[str, str], parameters: Mapping[str, str]) -> bool:
    """Never reuse a cache."""
    return False


def duration_only(state: Any, inputs: Mapping[str, str], parameters: Mapping[str, str]) -> bool:
    """Reuse while the cache has not expired (``cache_for`` after it was made)."""
    expiration = getattr(state, "cached_result_expiration", None)
    return expiration is None or expiration > datetime.now(timezone.utc)


def all_inputs(state: Any, inputs: Mapping[str, str], parameters: Mapping[str, str]) -> bool:
    """Reuse while unexpired and every input equals the cached run's."""
    return duration_only(state, inputs, parameters) and dict(
        state.cached_input_tokens or {}
    ) == dict(inputs)


def all_parameters(state: Any, inputs: Mapping[str, str], parameters: Mapping[str, str]) -> bool:
    """Reuse while unexpired and the flow ran with the same parameters."""
    return duration_only(state, inputs, parameters) and dict(state.cached_parameters or {}) == dict(
        parameters
    )


def partial_inputs_only(validate_on: Iterable[str] | None = None) -> CacheValidator:
    """Reuse while unexpired and the named inputs equal the cached run's.

    Example:
        ``Task(cache_for=timedelta(hours=1), cache_validator=partial_inputs_only(["x"]))``
    """
    names = list(validate_on or [])

    def partial_inputs_validator(
        state: Any, inputs: Mapping[str, str], parameters: Mapping[str, str]
    ) -> bool:
        if not duration_only(state, inputs, parameters):
            return False
        cached = state.cached_input_tokens or {}
        return all(cached.get(n) == inputs.get(n) for n in names)

    return partial_inputs_validator


def partial_parameters_only(validate_on: Iterable[str] | None = None) -> CacheValidator:
    """Reuse while unexpired and the named parameters equal the cached run's."""
    names = list(validate_on or [])

    def partial_parameters_validator(
        state: Any, inputs: Mapping[str, str], parameters: Mapping[str, str]
    ) -> bool:
        if not duration_only(state, inputs, parameters):
            return False
        cached = state.cached_parameters or {}
        return all(cached.get(n) == parameters.get(n) for n in names)

    return partial_parameters_validator
