"""``read_many``'s GETs as coroutines on the client's event loop, not a thread each.

On an object store whose client is async underneath (s3fs, gcsfs, adlfs),
each item of a ``read_many`` is:

1. fetched as a coroutine on the client's event loop (the storage's
   ``_get_object_async``, the very request a single ``read`` sends),
   retried on a transient failure by the Result's own policy and its errors
   mapped by the same table (:meth:`LoopLane._retried`);
2. finished in the caller's thread by the very code of a single ``read``,
   with the storage's first GET answered by that response
   (:func:`first_get_given`): ``open_reader``'s handling of it (a torn
   response, a legacy sidecar, no metadata), then ``load_pair``'s size,
   digest and signature checks, and only then the deserializer. Anything
   that makes a read look again (a mismatch, a torn body, a retry) fetches
   afresh, exactly as a read does.

A large object (past the storage's ranged-read threshold) is released on
the loop and read in the caller's thread by a plain ``read`` from the start,
by ranges. A Result whose ``read``, ``_load`` or ``_call`` is its own, and a
storage whose ``_get_object`` or ``open_reader`` overrides the request
(the obstore engine among them), keep a thread an item.
"""

from __future__ import annotations

import contextlib
import functools
from collections.abc import Callable, Iterator, Mapping
from concurrent.futures import Future
from contextvars import ContextVar
from typing import TYPE_CHECKING, Any

from ._asyncbatch import LoopLane
from ._ranged import RangedObject

if TYPE_CHECKING:
    from ._storage_result import StorageResult

__all__ = ["LoopReads", "first_get_given", "first_get"]

Fetched = tuple[bytes | RangedObject, Mapping[str, str]] | None

#: A large object's response, released on the loop: the caller reads it with a plain read.
_READ_AGAIN = object()


class _GivenGet:
    """One GET's response, waiting for the first ``_get_object`` of ``path`` in this context."""

    def __init__(self, storage: Any, path: str, found: Fetched) -> None:
        self.storage, self.path, self.found, self.taken = storage, path, found, False


_GIVEN: ContextVar[_GivenGet | None] = ContextVar("resultkit_first_get_given", default=None)


@contextlib.contextmanager
def first_get_given(storage: Any, path: str, found: Fetched) -> Iterator[None]:
    """Within the block, ``storage``'s first GET of ``path`` in this thread is ``found``.

    Only the first: a read that looks again (torn, changed, retried) sends
    its own requests.

    Example:
        >>> sent = []
        >>> def get(path):
        ...     sent.append(path)
        ...     return None
        >>> storage = object()
        >>> with first_get_given(storage, "bucket/k.pkl", (b"payload", {"rk": "1"})):
        ...     first_get(storage, "bucket/k.pkl", get), first_get(storage, "bucket/k.pkl", get)
        ((b'payload', {'rk': '1'}), None)
        >>> sent  # the second GET was sent
        ['bucket/k.pkl']
    """
    token = _GIVEN.set(_GivenGet(storage, path, found))
    try:
        yield
    finally:
        _GIVEN.reset(token)


def first_get(storage: Any, path: str, get: Callable[[str], Fetched]) -> Fetched:
    """The response handed over by :func:`first_get_given` for ``path``, else ``get(path)``."""
    given = _GIVEN.get()
    if given is None or given.taken or given.storage is not storage or given.path != path:
        return get(path)
    given.taken = True
    return given.found


class LoopReads(LoopLane):
    """The items of one ``read_many`` whose GET goes as a coroutine on the storage's event loop.

    Args:
        result: the Result reading (its serializer, checks, retry policy).
        loop: the client's running event loop (``storage._request_loop()``).
        canonical: each item's canonical location, checked already.
    """

    _own = ("read", "_load", "_call")
    _coroutine = "_get_object_async"
    _overridden = ("_get_object", "open_reader")

    def __init__(self, result: StorageResult, loop: Any, canonical: list[str]) -> None:
        super().__init__(result, loop, canonical)
        self._paths: dict[int, str] = {}

    @classmethod
    def for_batch(cls, result: StorageResult, canonical: list[str]) -> LoopReads | None:
        """The loop lane of ``result``'s storage, or ``None`` (a thread an item).

        See :meth:`LoopLane._loop_for` for when there is none.
        """
        loop = cls._loop_for(result)
        return None if loop is None else cls(result, loop, canonical)

    def start(self, index: int) -> Future[Any]:
        """Send item ``index``'s GET on the loop; the future of its response.

        A failure before the request (a bad ranged-read setting) is the
        future's exception, as a read would raise it.
        """
        storage: Any = self._result.storage
        try:
            location, key = self._result._locate(self._canonical[index], {})
            path = storage.path(key)
            limit = storage._range_limit(path)  # this thread's view (an overtaken read)
        except Exception as exc:
            failed: Future[Any] = Future()
            failed.set_exception(exc)
            return failed
        self._paths[index] = path
        return self._hand_over(functools.partial(self._get, location, path, limit))

    def finish(self, index: int, future: Future[Any]) -> Any:
        """Item ``index``'s Result: a single ``read`` whose first GET is the loop's response."""
        path = self._paths.pop(index, None)
        found = future.result()  # raises the GET's error, mapped as a read maps it
        location = self._canonical[index]
        if found is _READ_AGAIN:
            return self._result.read(location)
        with first_get_given(self._result.storage, path or "", found):
            return self._result.read(location)

    async def _get(self, location: str, path: str, limit: int) -> Any:
        """The item's GET, retried as ``read`` retries it; its response."""
        storage: Any = self._result.storage
        found = await self._retried(
            location, "read", lambda: storage._get_object_async(path, limit)
        )
        if found is not None and isinstance(found[0], RangedObject):
            if found[0].release is not None:
                found[0].release()  # its body's connection, never read
            return _READ_AGAIN
        return found
