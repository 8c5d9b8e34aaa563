"""Single-flight locks on a Result's own storage: one run computes a target, others wait.

A lock is a small object created with the storage's atomic create
(``put_if_absent``: ``O_EXCL`` locally, ``If-None-Match: *`` on S3 and Azure,
``ifGenerationMatch=0`` on GCS), so no server of ours is needed: the storage
the results live on is the coordination point.

Locks live under ``.rklocks/<target key>/`` (see ``StorageResult.lock_prefix``) as numbered *epochs*. The holder
of the newest epoch holds the lock while its lease runs; a heartbeat thread
renews the lease. When a holder dies, its lease runs out and the next
contender creates the following epoch, which exactly one contender can
create. A holder that lost its lease (it was stopped for longer than the
lease) notices at its next renewal; its run finishes anyway, and since every
publish is atomic the worst case is the same value written twice, never a
mixed one. Lease times compare wall clocks: machines sharing a storage need
clocks within a fraction of the lease.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import socket
import threading
import time
import uuid
from typing import Any

from ..errors import StorageError
from ..results import StorageResult
from ..results._localsafety import pid_alive, process_space
from ..results._location import LOCKS_FOLDER

__all__ = ["SingleFlightLock", "DEFAULT_LEASE", "lock_holders", "remove_stale_lock"]
#: Seconds a lock is held without a heartbeat before another run may take it over.
DEFAULT_LEASE = 30.0

logger = logging.getLogger("resultkit")


def _owner() -> str:
    # host:pid:process-space:nonce. The process space (machine and PID namespace)
    # lets a contender there see at once that a holder's process is gone.
    return f"{socket.gethostname()}:{os.getpid()}:{process_space()}:{uuid.uuid4().hex[:8]}"


def _dead_here(owner: Any) -> bool:
    """Whether ``owner`` was a process of this machine and PID namespace that no longer exists."""
    parts = str(owner).split(":")
    if len(parts) != 4 or not parts[1].isdigit() or parts[2] != process_space():
        return False
    return not pid_alive(int(parts[1]))


class SingleFlightLock:
    """A lease-based lock named after a location of ``result``.

    Example:
        >>> lock = SingleFlightLock(MemoryResult(), "report.pkl", lease=5)   # doctest: +SKIP
        >>> if lock.acquire():
        ...     try: ...compute and write report.pkl...
        ...     finally: lock.release()
    """

    def __init__(self, result: StorageResult, location: str, lease: float = DEFAULT_LEASE) -> None:
        if lease <= 0:
            raise ValueError(f"a lock lease must be positive, got {lease!r}")
        self.result = result
        self.storage = result.storage
        self.location = str(location)
        self.lease = float(lease)
        self.owner = _owner()
        self._prefix = result.lock_prefix(location)
        self._epoch: int | None = None
        self._stop = threading.Event()
        self._heartbeat: threading.Thread | None = None
        #: Set when a renewal found that another run took the lock over.
        self.lost = False

    # -- the lock ----------------------------------------------------------------
    def _key(self, epoch: int) -> str:
        return f"{self._prefix}{epoch:010d}"

    def _body(self) -> bytes:
        return json.dumps(
            {"owner": self.owner, "expires": time.time() + self.lease, "lease": self.lease}
        ).encode()

    def _epochs(self) -> list[int]:
        try:
            keys = list(self.storage.list(self._prefix))
        except StorageError:
            raise
        except Exception as exc:
            raise StorageError(
                f"could not list the single-flight locks of {self.location}: "
                f"{type(exc).__name__}: {exc}",
                location=self.location,
            ) from exc
        found = []
        for key in keys:
            tail = key.rsplit("/", 1)[-1]
            if tail.isdigit():
                found.append(int(tail))
        return sorted(found)

    def holder(self) -> dict[str, Any] | None:
        """The live holder's lock document (owner, expires), or None when nobody holds it."""
        epochs = self._epochs()
        if not epochs:
            return None
        found = self.storage.get(self._key(epochs[-1]))
        if found is None:
            return None  # released since the listing
        try:
            doc = json.loads(bytes(found[0]))
            expires = float(doc["expires"])
        except (ValueError, KeyError, TypeError):
            return None  # a damaged lock holds nothing
        if expires <= time.time() or _dead_here(doc.get("owner")):
            return None  # its lease ran out, or its process is gone (killed): take it over
        return dict(doc)

    def acquire(self) -> bool:
        """Take the lock if nobody holds it (or the holder's lease ran out); whether it did."""
        try:
            epochs = self._epochs()
            if epochs and self.holder() is not None:
                return False
            epoch = epochs[-1] + 1 if epochs else 0
            if not self.storage.put_if_absent(self._key(epoch), self._body(), {}):
                return False  # another contender created this epoch first
        except StorageError:
            raise
        except Exception as exc:
            raise StorageError(
                f"could not take the single-flight lock of {self.location}: "
                f"{type(exc).__name__}: {exc}",
                location=self.location,
            ) from exc
        if self._rival(epoch):
            # A contender that listed no epoch (the holder had just released) made a
            # lower one meanwhile: two epochs are live, so neither may hold. Back off.
            with contextlib.suppress(Exception):
                self.storage.delete(self._key(epoch))
            return False
        self._epoch = epoch
        for old in epochs:  # the dead holders' epochs
            with contextlib.suppress(Exception):  # best effort: a leftover holds nothing
                self.storage.delete(self._key(old))
        self._stop.clear()
        self._heartbeat = threading.Thread(
            target=self._renew_loop, name=f"resultkit-lease {self.location}", daemon=True
        )
        self._heartbeat.start()
        return True

    def _rival(self, mine: int) -> bool:
        """Whether an epoch other than ``mine`` is held by a live lease."""
        try:
            others = [e for e in self._epochs() if e != mine]
        except StorageError:
            return False  # cannot tell: the atomic create alone decides
        for epoch in others:
            found = self.storage.get(self._key(epoch))
            if found is None:
                continue
            try:
                doc = json.loads(bytes(found[0]))
                if float(doc["expires"]) > time.time() and not _dead_here(doc.get("owner")):
                    return True
            except (ValueError, KeyError, TypeError):
                continue
        return False

    def _renew_loop(self) -> None:
        assert self._epoch is not None
        while not self._stop.wait(self.lease / 3):
            try:
                if self.storage.exists(self._key(self._epoch + 1)):
                    self.lost = True  # taken over: our lease had run out
                    return
                self.storage.put(self._key(self._epoch), self._body(), {})
            except Exception:  # a failed renewal is retried at the next beat
                continue

    def release(self) -> None:
        """Give the lock up (a no-op when not held)."""
        if self.lost:
            logger.warning(
                "single-flight lock of %s was taken over while held (this run was stopped "
                "longer than the %gs lease): another run computed it too",
                self.location,
                self.lease,
            )
        self._stop.set()
        if self._heartbeat is not None:
            self._heartbeat.join()
            self._heartbeat = None
        if self._epoch is not None:
            epoch, self._epoch = self._epoch, None
            with contextlib.suppress(Exception):  # else the lease runs out by itself
                self.storage.delete(self._key(epoch))

    def wait(self, timeout: float | None = None) -> bool:
        """Wait until nobody holds the lock; whether that happened before ``timeout``."""
        deadline = None if timeout is None else time.monotonic() + timeout
        delay = 0.02
        while self.holder() is not None:
            if deadline is not None and time.monotonic() >= deadline:
                return False
            time.sleep(delay)  # polling backoff; the answer comes from the storage
            delay = min(delay * 1.5, 0.5)
        return True

    def __enter__(self) -> SingleFlightLock:
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()


def lock_holders(result: StorageResult) -> dict[str, dict[str, Any] | None]:
    """Every single-flight lock under ``result``'s root: target key -> its live holder.

    The value is the holder's lock document (``owner``, ``expires``) while its
    lease runs, ``None`` for a stale lock (the holder died or released it
    without removing it): :func:`remove_stale_lock` may remove those.

    Example:
        >>> from resultkit.results import MemoryResult
        >>> r = MemoryResult()
        >>> lock = SingleFlightLock(r, "report.pkl", lease=60)
        >>> lock.acquire()
        True
        >>> sorted(lock_holders(r))
        ['report.pkl']
        >>> lock.release()
    """
    prefix = f"{LOCKS_FOLDER}/"
    try:
        keys = list(result.storage.list(prefix))
    except StorageError:
        raise
    except Exception as exc:
        raise StorageError(
            f"could not list the single-flight locks under {result.root_url}: "
            f"{type(exc).__name__}: {exc}",
            location=result.root_url,
        ) from exc
    targets = set()
    for key in keys:
        target, _, epoch = key[len(prefix) :].rpartition("/")
        if target and epoch.isdigit():
            targets.add(target)
    return {target: SingleFlightLock(result, target).holder() for target in sorted(targets)}


def remove_stale_lock(result: StorageResult, location: str) -> int:
    """Delete the epochs of ``location``'s lock if nobody holds it; how many were deleted.

    A lock whose newest epoch's lease still runs is held by a live run and is
    left alone (0). Only the epochs listed before the check are deleted, so a
    contender that takes the lock meanwhile (a higher epoch) keeps it.
    """
    lock = SingleFlightLock(result, location)
    epochs = lock._epochs()
    if not epochs or lock.holder() is not None:
        return 0
    removed = 0
    for epoch in epochs:
        if result.storage.delete(lock._key(epoch)):
            removed += 1
    return removed
