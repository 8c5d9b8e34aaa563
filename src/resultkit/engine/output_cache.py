"""The output-cache phase of a task run (``cache_for``, ``cache_validator``, ``cache_key``).

Before the body: hash the inputs and look the task's cache up in the run's
:class:`~resultkit.caching.CacheStore`; after a success: remember the
output there. Entries are keyed per flow and task, or by ``cache_key``
alone, which is shared between flows (Prefect 1's "time travel").
"""

from __future__ import annotations

import functools
import threading
import warnings
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any

from ..caching import CacheKey, CacheStore, inputs_token
from ..caching.validators import CacheValidator, indexable, match_on
from ..errors import ResultKitWarning, UnhashableInputError
from ..results import Result
from .state import Cached, State
from .task import Task
from .transitions import UserCodeError, call_user, name_of

__all__ = ["OutputCaching", "Lookup"]


@dataclass(frozen=True)
class Lookup:
    """One task run's cache key and the tokens of its inputs and parameters."""

    key: CacheKey
    inputs: dict[str, str]
    parameters: dict[str, str]


def _checked(validator: CacheValidator) -> CacheValidator:
    """``validator``, with its exceptions named as the validator's (not the store's)."""
    what = f"cache validator {name_of(validator)}"

    def checked(state: Any, inputs: Any, parameters: Any) -> bool:
        return bool(call_user(what, validator, state, inputs, parameters))

    match = match_on(validator)
    return indexable(match)(checked) if match is not None else checked


def _entry_parts(entry: Any) -> tuple[Result, dict[str, str], dict[str, str], Any] | None:
    """A store's entry as (value's Result, input tokens, parameters, expiry), or None if not one.

    A :class:`Cached` state (what ``put`` was given) or an object with the
    same attributes, such as a :class:`~resultkit.caching.StoredEntry`.
    """
    result = getattr(entry, "_result", None)
    try:
        inputs = dict(entry.cached_input_tokens)
        parameters = dict(entry.cached_parameters)
        expiration = entry.cached_result_expiration
    except (AttributeError, TypeError, ValueError):
        return None
    return (result, inputs, parameters, expiration) if isinstance(result, Result) else None


class OutputCaching:
    """Output caching for the task runs of one flow run.

    ``result`` is the flow's default Result: with the task's own, it reads
    values a persistent store keeps as checkpoint locations.
    """

    def __init__(
        self,
        store: CacheStore,
        flow_name: str,
        parameters: Mapping[str, Any],
        result: Result | None = None,
    ) -> None:
        self.store = store
        self.flow_name = flow_name
        self.result = result
        self._parameters = parameters
        self._parameter_tokens: dict[str, str] | None = None
        self._lock = threading.Lock()

    def _tokens_of_parameters(self) -> dict[str, str]:
        """The parameters' tokens, hashed once per flow run (they do not change in it)."""
        with self._lock:
            if self._parameter_tokens is None:
                self._parameter_tokens = inputs_token(self._parameters)
            return self._parameter_tokens

    def key_for(self, task: Task, map_index: int | None) -> CacheKey:
        """``cache_key`` is shared between flows; a task's name only within its flow."""
        if task.cache_key is not None:
            return CacheKey(task.cache_key, None, map_index)
        return CacheKey(task.name, self.flow_name, map_index)

    def prepare(
        self, task: Task, inputs: Mapping[str, Any], map_index: int | None, name: str
    ) -> Lookup | None:
        """The lookup of this run, or None when the task is not cached or cannot be."""
        if task.cache_for is None or task.target is not None:
            return None  # with a target, the target is the cache and cache_for its expiry
        try:
            tokens = inputs_token(inputs)
            parameters = self._tokens_of_parameters()
        except UnhashableInputError as exc:
            warnings.warn(
                f"task {name!r}: output caching is off for this run, an input cannot be "
                f"hashed: {exc}",
                ResultKitWarning,
                stacklevel=2,
            )
            return None
        return Lookup(self.key_for(task, map_index), tokens, parameters)

    def get(self, task: Task, lookup: Lookup) -> State | None:
        """The Cached state from the store, or None for a miss."""
        store = self.store
        get: Callable[..., Any] = store.get
        if getattr(store, "accepts_reader", False):  # values may live at checkpoints
            get = functools.partial(get, reader=task.result or self.result)
        entry = call_user(
            f"cache store {type(store).__name__}.get",
            get,
            lookup.key,
            lookup.inputs,
            lookup.parameters,
            _checked(task.cache_validator),
        )
        if entry is None:
            return None
        parts = _entry_parts(entry)
        if parts is None:
            raise UserCodeError(
                f"cache store {type(store).__name__}.get",
                TypeError(f"it returned a {type(entry).__name__}; return what put() was given"),
            )
        result, inputs, parameters, expiration = parts
        return Cached(
            f"from the output cache {lookup.key.label!r}",
            result,
            input_tokens=inputs,
            cached_parameters=parameters,
            cached_result_expiration=expiration,
        )

    def put(self, task: Task, lookup: Lookup, state: State) -> None:
        """Remember a successful run's output for ``cache_for``."""
        assert task.cache_for is not None
        entry = Cached(
            "cached output",
            state._result,
            input_tokens=lookup.inputs,
            cached_parameters=lookup.parameters,
            cached_result_expiration=datetime.now(timezone.utc) + task.cache_for,
        )
        call_user(f"cache store {type(self.store).__name__}.put", self.store.put, lookup.key, entry)
