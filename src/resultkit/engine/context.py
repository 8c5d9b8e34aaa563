"""The run context (template keys, user keys) and the global configuration."""

from __future__ import annotations

import contextlib
import contextvars
import os
import threading
from collections.abc import Iterator, Mapping
from types import MappingProxyType
from typing import Any

from ..caching import CacheStore, OutputCache, ResultCacheStore, as_cache_store
from ..errors import ConfigurationError
from ..results import LocalResult, from_url

__all__ = [
    "Context",
    "context",
    "Config",
    "config",
    "default_cache_store",
    "cache_store_from",
    "MEMORY_CACHE",
    "current_keys",
    "enter_keys",
    "leave_keys",
    "swap_keys",
]

_CURRENT: contextvars.ContextVar[Mapping[str, Any]] = contextvars.ContextVar(
    "resultkit_context", default=MappingProxyType({})
)
#: The setting (``RESULTKIT_CACHE_STORE=memory``, ``config.cache_store = "memory"``,
#: ``Flow(cache_store="memory")``) that keeps output caches in this process only.
MEMORY_CACHE = "memory"
# The process's in-memory output cache store ("memory"). Bounded: see OutputCache.
_MEMORY_STORE = OutputCache()
# Stores built from a URL or folder, by it: one per storage, shared by the runs using it.
_BUILT: dict[str, CacheStore] = {}
_BUILT_LOCK = threading.Lock()


def _built(name: str, make: Any) -> CacheStore:
    with _BUILT_LOCK:
        store = _BUILT.get(name)
        if store is None:
            store = _BUILT[name] = make()
        return store


def cache_store_from(value: Any, what: str) -> CacheStore:
    """The cache store a setting names.

    ``value`` is a :class:`~resultkit.caching.CacheStore` (used as it is), a
    :class:`~resultkit.results.StorageResult` (entries kept on it, see
    :class:`~resultkit.caching.ResultCacheStore`), a URL that
    :func:`~resultkit.results.from_url` takes, or ``"memory"`` (this
    process's :class:`~resultkit.caching.OutputCache`). ``what`` names the
    setting in errors.
    """
    if isinstance(value, str):
        url = value.strip()
        if url == MEMORY_CACHE:
            return _MEMORY_STORE
        if not url:
            raise ConfigurationError(f"{what} is empty; give a URL, a Result or 'memory'")
        return _built(f"url:{url}", lambda: ResultCacheStore(from_url(url)))
    return as_cache_store(value, what)


def default_cache_store() -> CacheStore:
    """The output cache store of flow runs given no ``caches`` key nor ``Flow(cache_store=)``.

    ``config.cache_store`` if set, else the environment variable
    ``RESULTKIT_CACHE_STORE`` (a URL, or ``memory``), else a
    :class:`~resultkit.caching.ResultCacheStore` in the folder ``cache``
    under ``RESULTKIT_HOME`` (default ``~/.resultkit``), which every process
    of the machine shares with no setting. Read when a run starts.
    """
    if config.cache_store is not None:
        return cache_store_from(config.cache_store, "config.cache_store")
    env = os.environ.get("RESULTKIT_CACHE_STORE", "")
    if env.strip():
        return cache_store_from(env, "RESULTKIT_CACHE_STORE")
    folder = home_folder("cache")
    return _built(f"dir:{folder}", lambda: ResultCacheStore(LocalResult(dir=folder)))


#: Folders under the resultkit home made so far, by (name, RESULTKIT_HOME, HOME, cwd).
_HOME_FOLDERS: dict[tuple[str, str | None, str | None, str], str] = {}


def home_folder(name: str) -> str:
    """The absolute folder ``name`` under ``RESULTKIT_HOME`` (default ``~/.resultkit``).

    Worked out once per value of the variables it depends on (every run
    start asks for two; joining, expanding and resolving the path was a
    tenth of the fixed cost of a run).

    Example:
        >>> home_folder("runs").endswith("runs")
        True
    """
    environ = os.environ
    home = environ.get("RESULTKIT_HOME")
    # A relative home is relative to the working folder; "~" to HOME.
    relative = home is not None and home != "" and not os.path.isabs(os.path.expanduser(home))
    made = (name, home, environ.get("HOME"), os.getcwd() if relative else "")
    folder = _HOME_FOLDERS.get(made)
    if folder is None:
        base = home or os.path.join("~", ".resultkit")
        folder = os.path.abspath(os.path.expanduser(os.path.join(base, name)))
        if len(_HOME_FOLDERS) >= 64:
            _HOME_FOLDERS.clear()
        _HOME_FOLDERS[made] = folder
    return folder


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
        """The ``caches`` key, else the default output cache store (:func:`default_cache_store`).

        A :class:`~resultkit.caching.CacheStore`: by default a
        :class:`~resultkit.caching.ResultCacheStore` under ``RESULTKIT_HOME``.
        Give a run its own with ``flow.run(caches=OutputCache())`` or
        ``with context(caches=...)``, a flow with ``Flow(cache_store=...)``.
        """
        caches = _CURRENT.get().get("caches")
        return caches if caches is not None else default_cache_store()

    def to_dict(self) -> dict[str, Any]:
        return dict(_CURRENT.get())

    def __repr__(self) -> str:
        return f"<resultkit context {sorted(_CURRENT.get())}>"


context = Context()


def current_keys() -> Mapping[str, Any]:
    """The current context's keys (read-only: never change the mapping returned)."""
    return _CURRENT.get()


def enter_keys(*mappings: Mapping[str, Any]) -> contextvars.Token[Mapping[str, Any]]:
    """``with context(*mappings)``'s entry, without a generator: the runner's per-task
    context costs less. Pair every call with :func:`leave_keys` in a ``finally``."""
    merged = dict(_CURRENT.get())
    for mapping in mappings:
        merged.update(mapping)
    return _CURRENT.set(merged)


def swap_keys(mapping: Mapping[str, Any]) -> contextvars.Token[Mapping[str, Any]]:
    """Make ``mapping`` (read-only, whole) the current context; undo with :func:`leave_keys`."""
    return _CURRENT.set(mapping)


def leave_keys(token: contextvars.Token[Mapping[str, Any]]) -> None:
    """Restore the context :func:`enter_keys` replaced."""
    _CURRENT.reset(token)


def _env_flag(name: str, default: bool) -> bool:
    raw = os.environ.get(name)
    if raw is None or raw.strip() == "":
        return default
    value = raw.strip().lower()
    if value in ("1", "true", "yes", "on"):
        return True
    if value in ("0", "false", "no", "off"):
        return False
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

    ``cache_store`` (default ``None``): the output cache store of flows that
    set none: a Result (entries kept on it), a URL, ``"memory"`` or a
    :class:`~resultkit.caching.CacheStore`. ``None`` uses the environment
    variable ``RESULTKIT_CACHE_STORE`` (a URL or ``memory``), else the folder
    ``cache`` under ``RESULTKIT_HOME`` (see :func:`default_cache_store`).

    ``batch_writes`` (default ``True``, environment ``RESULTKIT_BATCH_WRITES``):
    whether the children of a mapped task run in process (``LocalExecutor``,
    ``ThreadExecutor``) write their checkpoints and targets on an object store
    together, one ``write_many`` per chunk of up to 64 children (or 64 MB),
    instead of one request after another. ``False`` writes each child as it
    finishes.

    ``run_store`` (default ``None``): where flow runs record what they
    finished, for ``flow.resume(run_id)``: a Result, a URL or ``"off"``.
    ``None`` uses the environment variable ``RESULTKIT_RUN_STORE``, else the
    folder ``runs`` under ``RESULTKIT_HOME``.
    """

    def __init__(self) -> None:
        self.checkpointing: bool = _env_flag("RESULTKIT_CHECKPOINTING", True)
        self.lock_lease: float = _env_seconds("RESULTKIT_LOCK_LEASE", 30.0)
        self.batch_writes: bool = _env_flag("RESULTKIT_BATCH_WRITES", True)
        self.cache_store: Any = None
        self.run_store: Any = None

    def __repr__(self) -> str:
        return (
            f"Config(checkpointing={self.checkpointing}, lock_lease={self.lock_lease}, "
            f"batch_writes={self.batch_writes}, "
            f"cache_store={self.cache_store!r}, run_store={self.run_store!r})"
        )


config = Config()
