"""Locks around a publish: per key within a process, per folder across processes (local)."""

from __future__ import annotations

import contextlib
import os
import threading
import weakref
from collections.abc import Iterator
from typing import Any

__all__ = ["publish_lock", "folder_lock"]

_publish_locks: weakref.WeakValueDictionary[str, Any] = weakref.WeakValueDictionary()
_publish_locks_guard = threading.Lock()


def publish_lock(key: str) -> Any:
    """The in-process lock that orders writers of one location (payload, then record)."""
    with _publish_locks_guard:
        lock = _publish_locks.get(key)
        if lock is None:
            lock = threading.Lock()
            _publish_locks[key] = lock
        return lock


@contextlib.contextmanager
def folder_lock(directory: str, shared: bool = False) -> Iterator[None]:
    """Lock a local folder (POSIX flock): writers exclusively while they publish a
    payload and its record, readers shared while they pick up the pair.

    Each call opens its own descriptor, so the lock also orders threads of one
    process.
    """
    try:
        import fcntl
    except ImportError:  # pragma: no cover - Windows: in-process lock only
        yield
        return
    fd = os.open(directory, os.O_RDONLY)
    try:
        fcntl.flock(fd, fcntl.LOCK_SH if shared else fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)  # closing releases the lock
