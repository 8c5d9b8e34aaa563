"""The fsspec client under a storage: resolved by protocol, built once, lazily, shared.

A Result is copied for every ``format``, ``write`` and ``read``; the copies
share one storage and so one client, built on first use under a lock (never
one per copy). A lazily built client is dropped when the storage is pickled
(it holds sockets and threads) and rebuilt on the worker.
"""

from __future__ import annotations

import contextlib
import importlib
import os
import threading
import weakref
from typing import Any

import fsspec
from fsspec.spec import AbstractFileSystem

from ..errors import ConfigurationError

__all__ = ["LazyFileSystem", "filesystem_class_for"]

#: The pip extra that installs each protocol's filesystem.
_EXTRAS = {
    "s3": "s3",
    "s3a": "s3",
    "gs": "gcs",
    "gcs": "gcs",
    "az": "azure",
    "abfs": "azure",
    "abfss": "azure",
    "adl": "azure",
}


def filesystem_class_for(
    protocol: str, filesystem_class: str | None, extra: str
) -> type[AbstractFileSystem]:
    """The filesystem class for ``protocol`` (or ``"module:Class"``), naming the pip extra."""
    try:
        if filesystem_class is None:
            return fsspec.get_filesystem_class(protocol)
        module, _, name = filesystem_class.partition(":")
        cls: type[AbstractFileSystem] = getattr(importlib.import_module(module), name)
        return cls
    except ImportError as exc:
        extra = extra or _EXTRAS.get(protocol, "")
        hint = f"pip install 'resultkit[{extra}]'" if extra else str(exc)
        raise ConfigurationError(
            f"storage {protocol!r} needs a package that is not installed: {hint}"
        ) from exc
    except ValueError as exc:
        raise ConfigurationError(f"no fsspec filesystem for protocol {protocol!r}: {exc}") from exc


class LazyFileSystem:
    """Holds an fsspec filesystem, or what it takes to build it on first use."""

    _fs: AbstractFileSystem | None
    #: The process that built ``_fs`` (a forked child builds its own).
    _fs_pid: int = -1
    _fs_lock: threading.Lock
    _lazy: bool
    protocol: str
    _filesystem_class_name: str | None
    _extra: str
    _storage_options: dict[str, Any]

    # -- the filesystem client: built once, lazily, shared by every copy -----------------
    @property
    def fs(self) -> AbstractFileSystem:
        """The fsspec filesystem, built on first use (never pickled when lazy).

        A process forked after the client was built builds its own: the
        parent's sockets, threads and event loop are not the child's (an
        async client used there fails or hangs).
        """
        fs = self._fs
        if fs is None or (self._lazy and self._fs_pid != os.getpid()):
            if fs is not None:
                # A forked child: the parent's lock may have been held at the fork.
                self._fs_lock = threading.Lock()
                self._fs = None
                _leave_to_parent(fs)
            with self._fs_lock:
                if self._fs is None:
                    cls = filesystem_class_for(
                        self.protocol, self._filesystem_class_name, self._extra
                    )
                    self._fs = self._build_filesystem(cls, dict(self._storage_options))
                    self._fs_pid = os.getpid()
                fs = self._fs
        return fs

    def _build_filesystem(
        self, cls: type[AbstractFileSystem], options: dict[str, Any]
    ) -> AbstractFileSystem:
        """Build the client; backends resolve credentials here, at first use."""
        return cls(**options)

    def __getstate__(self) -> dict[str, Any]:
        state = self.__dict__.copy()
        state.pop("_fs_lock", None)
        if state.get("_lazy"):
            state["_fs"] = None  # clients hold sockets and threads: rebuild on the worker
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self._fs_lock = threading.Lock()


#: Clients a forked child inherited and replaced: kept, never closed here (see below).
_INHERITED: list[Any] = []


def _leave_to_parent(fs: Any) -> None:
    """Keep a client inherited by a forked child out of the child's hands for good.

    Closing it here (when it is collected, or at exit through the finalizer
    s3fs registers) would unregister its sockets from the event loop's
    ``epoll``, which parent and child share: the parent's next request on
    those connections would wait for its timeout (15 s here). So the child
    keeps it, and drops its finalizers.
    """
    _INHERITED.append(fs)
    with contextlib.suppress(Exception):  # best effort: the registry is CPython's
        for finalizer in list(weakref.finalize._registry):  # type: ignore[attr-defined]
            found = finalizer.peek()
            if found is not None and found[0] is fs:
                finalizer.detach()
