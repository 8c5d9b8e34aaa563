"""Locks around a publish: per key within a process, per folder across processes (local)."""

from __future__ import annotations

import contextlib
import os
import threading
import time
import weakref
from collections.abc import Iterator
from typing import Any

from ..errors import StorageError
from ._location import short

__all__ = ["publish_lock", "folder_lock", "FOLDER_LOCK_TIMEOUT"]

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


#: Seconds a writer waits for another writer's publish in the same folder.
FOLDER_LOCK_TIMEOUT = 60.0


# Descriptors of folder locks open in this process. A forked child closes
# its copies: a flock belongs to the open file, so a child that kept one
# would hold the parent's lock (a writer's, or a reader's shared one) for as
# long as it lives, and every writer of the folder would time out. Closing a
# copy never unlocks the parent's (LOCK_UN would).
_held_folder_fds: set[int] = set()


def _close_inherited_locks() -> None:
    for fd in list(_held_folder_fds):
        with contextlib.suppress(OSError):
            os.close(fd)
    _held_folder_fds.clear()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_close_inherited_locks)


@contextlib.contextmanager
def folder_lock(
    directory: str, timeout: float | None = None, shared: bool = False
) -> Iterator[None]:
    """Lock a local folder (POSIX flock) while a writer publishes a record and its payload.

    Writers take it, only for the two renames. Readers do not, but one that
    keeps seeing a pair change under it takes it ``shared`` (many readers at
    once, no writer) to read once in peace.
    Each call opens its own descriptor, so it also orders threads of one
    process. A lock that cannot be had within ``timeout`` (a writer stopped
    mid-publish) is a :class:`~resultkit.errors.StorageError` naming the folder.
    """
    try:
        import fcntl
    except ImportError:  # pragma: no cover - Windows: in-process lock only
        yield
        return
    limit = FOLDER_LOCK_TIMEOUT if timeout is None else timeout
    fd = os.open(directory, os.O_RDONLY)
    _held_folder_fds.add(fd)
    try:
        deadline = time.monotonic() + limit
        delay = 0.001
        while True:
            try:
                fcntl.flock(fd, (fcntl.LOCK_SH if shared else fcntl.LOCK_EX) | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() >= deadline:
                    raise StorageError(
                        f"could not publish in {short(directory)}: another writer has held its "
                        f"folder lock for over {limit:g} s (a writer stopped mid-publish?). "
                        "Stop or resume that process, then write again.",
                        location=directory,
                    ) from None
                time.sleep(delay)  # backoff while another writer renames
                delay = min(delay * 2, 0.05)
        yield
    finally:
        if fd in _held_folder_fds:  # not if this is a child that closed it at the fork
            _held_folder_fds.discard(fd)
            os.close(fd)  # closing releases the lock
