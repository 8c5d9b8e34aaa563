"""The run context (template keys, user keys) and the global configuration."""

from __future__ import annotations

import contextlib
import contextvars
import os
from collections.abc import Iterator, Mapping
from types import MappingProxyType
from typing import Any

from ..caching import OutputCache

__all__ = ["Context", "context", "Config", "config", "default_cache_store"]

_CURRENT: contextvars.ContextVar[Mapping[str, Any]] = contextvars.ContextVar(
    "resultkit_context", default=MappingProxyType({})
)
# The process's output cache store, shared by every flow run that does not
# bring its own (Prefect 1's "time travel" between runs). Bounded: see OutputCache.
_DEFAULT_CACHE_STORE = OutputCache()


def default_cache_store() -> OutputCache:
    """The output cache store of flow runs given no ``caches`` key."""
    return _DEFAULT_CACHE_STORE


class Context(Mapping[str, Any]):
    """Read-only view of the current run's keys, plus ``with context(key=...)``.

    During a task run it holds the template keys (``date``, ``today``,
    ``task_name``, ``flow_name``, ``parameters``...). Keys read as attributes
    or items::

        from resultkit import context
        with context(region="eu"):
            flow.run()          # tasks see context.region and "{region}" in targets

    Each thread and task gets its own copy (``contextvars``).
    """

    @contextlib.contextmanager
    def __call__(self, *args: Mapping[str, Any], **kwargs: Any) -> Iterator[Context]:
        merged = dict(_CURRENT.get())
        for mapping in args:
            merged.update(mapping)
        merged.update(kwargs)
        token = _CURRENT.set(merged)
        try:
            yield self
        finally:
            _CURRENT.reset(token)

    def __getitem__(self, key: str) -> Any:
        return _CURRENT.get()[key]

    def __iter__(self) -> Iterator[str]:
        return iter(_CURRENT.get())

    def __len__(self) -> int:
        return len(_CURRENT.get())

    def __getattr__(self, key: str) -> Any:
        if key.startswith("__"):
            raise AttributeError(key)
        try:
            return _CURRENT.get()[key]
        except KeyError:
            raise AttributeError(
                f"context has no key {key!r}; keys now: {sorted(_CURRENT.get())}"
            ) from None

    @property
    def caches(self) -> Any:
        """The output cache store in use: the ``caches`` key, else the process's.

        A :class:`~resultkit.caching.CacheStore` (by default a bounded
        :class:`~resultkit.caching.OutputCache`); give a run its own with
        ``flow.run(caches=OutputCache(...))`` or ``with context(caches=...)``.
        """
        caches = _CURRENT.get().get("caches")
        return caches if caches is not None else _DEFAULT_CACHE_STORE

    def to_dict(self) -> dict[str, Any]:
        return dict(_CURRENT.get())

    def __repr__(self) -> str:
        return f"<resultkit context {sorted(_CURRENT.get())}>"


context = Context()


def _env_flag(name: str, default: bool) -> bool:
    raw = os.environ.get(name)
    if raw is None or raw.strip() == "":
        return default
    value = raw.strip().lower()
    if value in ("1", "true", "yes", "on"):
        return True
    if value in ("0", "false", "no", "off"):
        return False
    from ..errors import ConfigurationError

    raise ConfigurationError(f"{name}={raw!r} is not a boolean; use true or false")


def _env_seconds(name: str, default: float) -> float:
    raw = os.environ.get(name)
    if raw is None or not raw.strip():
        return default
    try:
        value = float(raw)
    except ValueError:
        value = -1.0
    if value <= 0:
        from ..errors import ConfigurationError

        raise ConfigurationError(f"{name}={raw!r} is not a number of seconds > 0; e.g. {name}=30")
    return value


class Config:
    """Global settings. Attributes can be changed at run time.

    ``checkpointing`` (default ``True``, environment ``RESULTKIT_CHECKPOINTING``):
    whether tasks with ``checkpoint=None`` write their result. Turning it off
    also stops tasks that ask for ``checkpoint=True`` or a ``target`` from
    writing, and warns once for each such task: it never happens silently.

    ``lock_lease`` (seconds, default 30, environment ``RESULTKIT_LOCK_LEASE``):
    how long a single-flight lock outlives a holder that stopped renewing it
    (killed, or cut off) before another run takes it over.
    """

    def __init__(self) -> None:
        self.checkpointing: bool = _env_flag("RESULTKIT_CHECKPOINTING", True)
        self.lock_lease: float = _env_seconds("RESULTKIT_LOCK_LEASE", 30.0)

    def __repr__(self) -> str:
        return f"Config(checkpointing={self.checkpointing}, lock_lease={self.lock_lease})"


config = Config()
