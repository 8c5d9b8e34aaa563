"""The output-cache phase of a task run (``cache_for``, ``cache_validator``, ``cache_key``).

Before the body: hash the inputs and look the task's cache up in the run's
:class:`~resultkit.caching.CacheStore`; after a success: remember the
output there. Entries are keyed per flow and task, or by ``cache_key``
alone, which is shared between flows (Prefect 1's "time travel").
"""

from __future__ import annotations

import functools
import logging
import os
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any

from ..caching import CacheKey, CacheStore, input_token, inputs_token
from ..caching.explain import CacheMiss, explain_miss
from ..caching.fingerprint import CodeFingerprint, code_fingerprint
from ..caching.validators import CODE_INPUT, CacheValidator, indexable, match_on, uses_code
from ..errors import ConfigurationError, UnhashableInputError, warn_user
from ..results import Result
from .state import Cached, State
from .task import FunctionTask, Task
from .transitions import UserCodeError, call_user, name_of

__all__ = ["OutputCaching", "Lookup", "task_code", "refresh_setting"]

logger = logging.getLogger("resultkit")
#: A miss is explained by the closest of this many newest entries of its key.
_EXPLAINED_FROM = 8


@dataclass(frozen=True)
class Lookup:
    """One task run's cache key, the tokens of its inputs and parameters, and its code's
    components (when its validator compares code)."""

    key: CacheKey
    inputs: dict[str, str]
    parameters: dict[str, str]
    code: dict[str, str] = field(default_factory=dict)
    name: str = ""


def task_code(task: Task) -> CodeFingerprint:
    """The code a task's cache compares: its ``code_version``, else the fingerprint of its
    function (``@task``) or of its class (a ``Task`` subclass, all its methods)."""
    if task.code_version is not None:
        token = input_token(f"code_version:{task.code_version}")
        return CodeFingerprint(token, {"code_version": token}, {"code_version": "code"})
    if isinstance(task, FunctionTask):
        return code_fingerprint(task.run)
    # A Task subclass: its class (every method), and what its own __init__ set on it.
    own = {k: v for k, v in vars(task).items() if k not in _task_attributes()}
    return code_fingerprint(type(task), state=own)


@functools.cache
def _task_attributes() -> frozenset[str]:
    """What ``Task.__init__`` sets (settings, not behaviour): left out of a task's code."""
    return frozenset(vars(Task())) | {"default", "required"}  # and a Parameter's


def refresh_setting(value: Any) -> bool | frozenset[str]:
    """``flow.run(refresh=...)`` as ``True`` (every task), ``False``, or the task names
    to refresh; ``RESULTKIT_REFRESH=1`` refreshes every task."""
    env = os.environ.get("RESULTKIT_REFRESH", "").strip().lower()
    if env in ("1", "true", "yes", "on"):
        return True
    if env not in ("", "0", "false", "no", "off"):
        raise ConfigurationError(f"RESULTKIT_REFRESH={env!r} is not a boolean; use 1 or 0")
    if value is None or isinstance(value, bool):
        return bool(value)
    if isinstance(value, Task | str):
        value = [value]
    try:
        names = frozenset(v.name if isinstance(v, Task) else v for v in value)
    except TypeError:
        names = frozenset([None])
    if not all(isinstance(n, str) for n in names):
        raise ConfigurationError(
            f"flow.run(refresh={value!r}): give True, False, or tasks (or task names) to "
            "recompute, e.g. refresh=[clean]"
        )
    return names


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
        refresh: Any = None,
    ) -> None:
        #: True, or the names of the tasks that recompute and overwrite their cache.
        self.refresh = refresh_setting(refresh)
        self.store = store
        self.flow_name = flow_name
        self.result = result
        self._parameters = parameters
        self._parameter_tokens: dict[str, str] | None = None
        self._lock = threading.Lock()

    def __getstate__(self) -> dict[str, Any]:
        # Sent to remote (Dask) workers with the task runs: the lock is made anew there.
        state = dict(self.__dict__)
        state.pop("_lock", None)
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
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

    def refreshing(self, task: Task) -> bool:
        """Whether this run recomputes ``task`` whatever its cache or target holds."""
        if task.refresh_cache or self.refresh is True:
            return True
        return bool(self.refresh) and task.name in self.refresh  # type: ignore[operator]

    def prepare(
        self, task: Task, inputs: Mapping[str, Any], map_index: int | None, name: str
    ) -> Lookup | None:
        """The lookup of this run, or None when the task is not cached or cannot be."""
        if task.cache_for is None or task.target is not None:
            return None  # with a target, the target is the cache and cache_for its expiry
        try:
            ignored = task.cache_ignore
            tokens = inputs_token({k: v for k, v in inputs.items() if k not in ignored})
            parameters = self._tokens_of_parameters()
        except UnhashableInputError as exc:
            warn_user(
                f"task {name!r}: output caching is off for this run, an input cannot be "
                f"hashed: {exc}"
            )
            return None
        code: dict[str, str] = {}
        if task.code_version is not None or uses_code(task.cache_validator):
            fingerprint = task_code(task)
            tokens[CODE_INPUT] = fingerprint.token
            code = dict(fingerprint.components)
        return Lookup(self.key_for(task, map_index), tokens, parameters, code, name)

    def get(
        self, task: Task, lookup: Lookup, misses: list[CacheMiss] | None = None
    ) -> State | None:
        """The Cached state from the store, or None for a miss.

        With ``misses``, a miss is explained: logged in one INFO line and its
        :class:`CacheMiss` appended (a lookup made again, under a lock, is not).
        """
        if self.refreshing(task):
            self._missed(lookup, "refresh requested", (), misses)
            return None
        store = self.store
        get: Callable[..., Any] = store.get
        why: list[str] = []
        if getattr(store, "accepts_reader", False):  # values may live at checkpoints
            get = functools.partial(get, reader=task.result or self.result)
        if getattr(store, "explains_misses", False):
            get = functools.partial(get, why=why)
        entry = call_user(
            f"cache store {type(store).__name__}.get",
            get,
            lookup.key,
            lookup.inputs,
            lookup.parameters,
            _checked(task.cache_validator),
        )
        if entry is None:
            self._explain(lookup, why, misses, task.cache_validator)
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

    def _explain(
        self,
        lookup: Lookup,
        why: list[str],
        misses: list[CacheMiss] | None,
        validator: CacheValidator,
    ) -> None:
        """Why the store had nothing valid: its own reason, else the newest entry's difference."""
        if misses is None:
            return
        if why:
            self._missed(lookup, why[-1], (), misses)
            return
        recent = getattr(self.store, "recent", None)
        try:
            latest = recent(lookup.key, _EXPLAINED_FROM) if recent is not None else []
        except Exception:  # noqa: BLE001 - an explanation never fails a task
            logger.debug("could not read the newest entry of %s", lookup.key, exc_info=True)
            latest = []
        if recent is None:
            self._missed(lookup, "no valid entry (the store does not list its entries)", (), misses)
            return
        reason, changed = explain_miss(
            latest, lookup.inputs, lookup.parameters, lookup.code, match=match_on(validator)
        )
        self._missed(lookup, reason, changed, misses)

    def _missed(
        self,
        lookup: Lookup,
        reason: str,
        changed: tuple[str, ...],
        misses: list[CacheMiss] | None,
    ) -> None:
        if misses is None:
            return  # not asked: a second lookup of a miss already explained
        miss = CacheMiss("cache", lookup.key.label, reason, changed)
        logger.info("Task '%s': cache miss (output cache %r): %s", lookup.name, miss.where, reason)
        misses.append(miss)

    # -- targets judged by code (``target_validator=``) ---------------------------------------
    def _target_lookup(self, task: Task, target: str) -> Lookup:
        code = task_code(task)
        return Lookup(
            CacheKey(f"target {target}", None),
            {CODE_INPUT: code.token},
            self._tokens_of_parameters(),
            dict(code.components),
        )

    def check_target(self, task: Task, target: str) -> tuple[str, tuple[str, ...]] | None:
        """None when ``task.target_validator`` accepts the code record of an existing
        target, else the reason it is stale (and what changed)."""
        try:
            lookup = self._target_lookup(task, target)
        except UnhashableInputError as exc:
            return f"a parameter cannot be hashed ({exc})", ()
        recent = getattr(self.store, "recent", None)
        latest = recent(lookup.key, 1) if recent is not None else []
        if not latest:
            return "no code record for the target (written before target_validator was set)", ()
        validator = task.target_validator
        assert validator is not None
        what = f"target validator {name_of(validator)}"
        if call_user(what, validator, latest[0], lookup.inputs, lookup.parameters):
            return None
        return explain_miss(latest[0], lookup.inputs, lookup.parameters, lookup.code)

    def remember_target(self, task: Task, target: str, state: State) -> None:
        """Record the code that wrote ``target`` (for ``target_validator``)."""
        try:
            lookup = self._target_lookup(task, target)
        except UnhashableInputError:
            return  # the next check finds no record: a miss, never a wrong hit
        entry = Cached(
            "target code",
            state._result,
            input_tokens=lookup.inputs,
            cached_parameters=lookup.parameters,
        )
        entry.cached_code = dict(lookup.code)  # type: ignore[attr-defined]
        call_user(f"cache store {type(self.store).__name__}.put", self.store.put, lookup.key, entry)

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
        entry.cached_code = dict(lookup.code)  # type: ignore[attr-defined]
        call_user(f"cache store {type(self.store).__name__}.put", self.store.put, lookup.key, entry)
