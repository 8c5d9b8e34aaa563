"""``write_many``'s small items as coroutines on the client's event loop, not a thread each.

On an object store whose client is async underneath (s3fs, gcsfs, adlfs),
each item of a ``write_many`` is:

1. prepared in the caller's thread by the very code of a single ``write``
   (locate, serialize, hash, the record and its metadata), with the
   storage's writer keeping its one PUT instead of sending it
   (:func:`~resultkit.results._upload.holding_small_put`);
2. sent as a coroutine on the client's event loop (the storage's
   ``_put_object_async``, the same request ``write`` sends), retried on a
   transient failure by the Result's own policy (``_retry_after``, waiting
   with ``asyncio.sleep``) and its errors mapped by the same table.

The caller's thread keeps preparing the next items while the loop sends
the earlier ones; :func:`~resultkit.results._batch.run_batch` keeps at most
``concurrency`` items in flight, so memory stays bounded as on the thread
path. Why not a thread an item: each such thread wakes to serialize, then
blocks in fsspec's ``sync()`` on the loop, and the threads' hand-offs and
their contention for the GIL cost client CPU on every item, the bound of a
batch when client, network and server share a few cores (``benchmarks/``).

A payload past ``single_request_limit`` is streamed from the caller's
thread as ``write`` streams it, by the serialization already under way (a
restart would serialize the value twice, and a value that serializes once
only, a generator of chunks, would lose its head); the batch's later items
then run on threads, where large items upload side by side. A Result whose
``write``, ``_store`` or ``_call`` is its own, and a storage whose
``_put_object`` or ``open_writer`` overrides the request, keep a thread an
item: their code runs for every item as in a write. When the batch stops (KeyboardInterrupt), :meth:`LoopWrites.stop`
cancels every coroutine still running and returns only once each has ended:
no request of the batch outlives the call.

:class:`LoopLane` is the machinery both batches' lanes share (hand-over,
retries, cancelling); ``read_many``'s lane is ``_asyncreads.LoopReads``.
"""

from __future__ import annotations

import asyncio
import functools
import threading
from collections.abc import Awaitable, Callable, Coroutine, Iterable
from concurrent.futures import FIRST_COMPLETED, Future, wait
from typing import TYPE_CHECKING, Any, TypeVar

from ..errors import ConfigurationError
from ._upload import HeldPut, holding_small_put

if TYPE_CHECKING:
    from ._storage_result import StorageResult

__all__ = [
    "INTERRUPT_CHECK",
    "LoopLane",
    "LoopWrites",
    "first_done",
    "pass_outcome",
    "refuse_the_clients_own_loop",
    "sends_its_async_request",
]

#: Seconds between two looks at a pending interrupt while a batch waits. A signal
#: (Ctrl-C) wakes a blocked wait at once; ``_thread.interrupt_main()`` (a stop
#: button, a watchdog thread) wakes none, so waits are made in slices of this.
INTERRUPT_CHECK = 0.5


def pass_outcome(task: asyncio.Task[Any], done: Future[Any]) -> None:
    """Give ``done`` (waited on by a thread) the outcome of the loop's finished ``task``."""
    if task.cancelled():
        done.set_exception(asyncio.CancelledError())
    elif task.exception() is not None:
        done.set_exception(task.exception())
    else:
        done.set_result(task.result())


def first_done(pending: Iterable[Future[Any]]) -> set[Future[Any]]:
    """The futures of ``pending`` that are done, once at least one is (waiting in slices
    of :data:`INTERRUPT_CHECK` seconds, so that any interrupt is seen)."""
    while True:
        done, _ = wait(pending, timeout=INTERRUPT_CHECK, return_when=FIRST_COMPLETED)
        if done:
            return done


T = TypeVar("T")


class LoopLane:
    """Items of one batch whose request runs as a coroutine on the storage client's event loop.

    The machinery ``write_many``'s and ``read_many``'s lanes share: items
    handed over from the caller's thread (:meth:`_hand_over`), begun on the
    loop with one wake-up for all those handed over meanwhile, each request
    retried by the Result's policy (:meth:`_retried`), and :meth:`stop`.
    A subclass says which Result methods and storage requests the lane
    replaces (``_own``, ``_coroutine``, ``_overridden``).
    """

    #: Result methods whose override keeps the batch on threads (that code must run).
    _own: tuple[str, ...] = ()
    #: The storage coroutine the lane sends, and the sync requests whose override it would bypass.
    _coroutine = ""
    _overridden: tuple[str, ...] = ()

    def __init__(
        self, result: StorageResult, loop: asyncio.AbstractEventLoop, canonical: list[str]
    ) -> None:
        self._result = result
        self._loop = loop
        self._canonical = canonical
        #: Items handed over whose future is not done yet. A count, not the futures:
        #: a done future holds its item's result (a read's payload) for the caller only.
        self._unsettled = 0
        #: Items handed over, not yet begun on the loop; whether the loop was asked to begin them.
        self._ready: list[tuple[Future[Any], Callable[[], Coroutine[Any, Any, Any]]]] = []
        self._woken = False
        self._lock = threading.Lock()
        self._stopped = False  # set on the loop: nothing more begins
        self._tasks: set[asyncio.Task[Any]] = set()  # touched on the loop's thread only

    @classmethod
    def _loop_for(cls, result: StorageResult) -> asyncio.AbstractEventLoop | None:
        """The client's loop for this lane, or ``None``: the batch runs a thread an item.

        ``None`` for a Result class with one of :attr:`_own` of its own (their
        code runs for each item as it always has), for a storage whose sync
        request (:attr:`_overridden`) overrides the coroutine, and where the
        client cannot give its loop (a forked child: each item then says why).
        """
        from ._storage_result import StorageResult

        if any(
            getattr(type(result), name) is not getattr(StorageResult, name) for name in cls._own
        ):
            return None
        if not sends_its_async_request(result.storage, cls._coroutine, cls._overridden):
            return None
        request_loop = getattr(result.storage, "_request_loop", None)
        try:
            return request_loop() if request_loop is not None else None
        except Exception:  # no usable client here (a forked child): each item says why
            return None

    def start(self, index: int) -> Future[Any] | None:
        """Begin item ``index`` on the loop; its future, or ``None``: a thread runs it."""
        raise NotImplementedError

    def finish(self, index: int, future: Future[Any]) -> Any:
        """Item ``index``'s outcome, in the caller's thread, once its future is done."""
        return future.result()

    def _hand_over(self, request: Callable[[], Coroutine[Any, Any, Any]]) -> Future[Any]:
        """Begin ``request()`` on the loop (soon); the future of its result."""
        done: Future[Any] = Future()
        with self._lock:
            # Known to stop() before the loop can begin it: an interrupt between
            # two lines here must not leave a request that stop() does not wait for.
            self._unsettled += 1
            self._ready.append((done, request))
            wake, self._woken = not self._woken, True
        done.add_done_callback(self._settled)
        if wake:  # one wake-up for the items handed over while the loop was busy
            self._loop.call_soon_threadsafe(self._begin_ready)
        return done

    def _settled(self, _: Future[Any]) -> None:
        with self._lock:
            self._unsettled -= 1

    def stop(self) -> None:
        """Cancel every request still running and return once each has ended.

        Items handed over but not yet begun on the loop are dropped, never sent.
        """
        with self._lock:
            idle = self._unsettled == 0
        if idle or self._loop.is_closed():
            return
        ended: Future[None] = Future()
        self._loop.call_soon_threadsafe(self._cancel_all, ended)
        ended.result()

    # -- on the loop's thread ----------------------------------------------------------
    async def _retried(self, location: str, action: str, request: Callable[[], Awaitable[T]]) -> T:
        """``await request()``, retried as a single ``write`` / ``read`` retries it."""
        delays = None
        while True:
            try:
                return await request()
            except Exception as exc:
                delays, delay = self._result._retry_after(location, action, exc, delays)
                await asyncio.sleep(delay)

    def _begin_ready(self) -> None:
        with self._lock:
            ready, self._ready, self._woken = self._ready, [], False
        for done, request in ready:
            if self._stopped:
                done.set_exception(asyncio.CancelledError())
                continue
            task = self._loop.create_task(request())
            self._tasks.add(task)
            task.add_done_callback(functools.partial(self._settle, done))

    def _settle(self, done: Future[Any], task: asyncio.Task[Any]) -> None:
        self._tasks.discard(task)
        pass_outcome(task, done)

    def _cancel_all(self, ended: Future[None]) -> None:
        self._stopped = True
        self._begin_ready()  # handed over, not begun: dropped
        running = list(self._tasks)
        for task in running:
            task.cancel()
        if not running:
            ended.set_result(None)
            return
        gathered = asyncio.gather(*running, return_exceptions=True)
        gathered.add_done_callback(lambda _: ended.set_result(None))


class LoopWrites(LoopLane):
    """The items of one ``write_many`` that go as coroutines on the storage's event loop.

    Args:
        result: the Result writing (its serializer, signing key, retry policy).
        loop: the client's running event loop (``storage._request_loop()``).
        pairs: the batch's ``(location, value)`` pairs.
        canonical: each pair's canonical location, checked already.
    """

    # write's _store may read back what it wrote: a Result with its own keeps threads
    _own = ("write", "_store", "_call")
    _coroutine = "_put_object_async"
    _overridden = ("_put_object", "open_writer")

    def __init__(
        self,
        result: StorageResult,
        loop: asyncio.AbstractEventLoop,
        pairs: list[tuple[Any, Any]],
        canonical: list[str],
    ) -> None:
        super().__init__(result, loop, canonical)
        self._pairs = pairs
        #: An item was streamed (too large for one request): the later ones go on threads.
        self._threads_only = False

    @classmethod
    def for_batch(
        cls, result: StorageResult, pairs: list[tuple[Any, Any]], canonical: list[str]
    ) -> LoopWrites | None:
        """The loop lane of ``result``'s storage, or ``None`` where it has none (threads).

        See :meth:`LoopLane._loop_for` for when there is none.
        """
        loop = cls._loop_for(result)
        return None if loop is None else cls(result, loop, pairs, canonical)

    def start(self, index: int) -> Future[Any] | None:
        """Prepare item ``index`` here and send its request on the loop; its future.

        ``None``: the caller writes the item on its thread path (the batch
        has streamed a large item already). A failure before the request
        (the serializer's) is the future's exception, as a write would raise it.
        """
        if self._threads_only:
            return None
        result, value = self._result, self._pairs[index][1]
        done: Future[Any] = Future()
        held: HeldPut | None = None
        try:
            location, key = result._locate(self._canonical[index], {})
            with holding_small_put(result.storage) as held:  # type: ignore[arg-type]
                record = result._call(location, "write", result._store, location, key, value)
        except Exception as exc:
            done.set_exception(exc)
            return done
        finally:
            if (
                held is not None and held.streamed
            ):  # large items in this batch: side by side on threads
                self._threads_only = True
        written = result._written(location, value, record)
        if not held.held:  # streamed and published by the writer, as a write does
            done.set_result(written)
            return done
        return self._hand_over(functools.partial(self._publish, held, written))

    async def _publish(self, held: HeldPut, written: Any) -> Any:
        """The held PUT, retried as ``write`` retries it; the written Result."""
        storage: Any = self._result.storage
        await self._retried(
            written.location,
            "write",
            lambda: storage._put_object_async(held.path, held.data, held.metadata),
        )
        return written


def sends_its_async_request(storage: Any, coroutine: str, overridden: tuple[str, ...]) -> bool:
    """Whether ``storage``'s request is its ``coroutine`` and nothing else.

    A subclass that overrides one of ``overridden`` (``_put_object``,
    ``open_writer``...: extra headers, counting, encryption) below the class
    that defines the coroutine would be bypassed by sending the coroutine directly.
    """
    for klass in type(storage).__mro__:
        defined = vars(klass)
        if coroutine in defined:
            return True
        if any(name in defined for name in overridden):
            return False
    return False


def refuse_the_clients_own_loop(storage: Any, action: str) -> None:
    """Refuse a batch called from a coroutine on the storage client's own event loop.

    Every item waits for a request that runs on that loop, which the waiting
    caller blocks: the batch would hang, and every request of the process's
    client with it (a single ``write`` there fails at once, in fsspec's ``sync``).
    """
    try:
        running = asyncio.get_running_loop()
    except RuntimeError:  # the usual case: no loop runs in this thread
        return
    try:
        client_loop = getattr(getattr(storage, "fs", None), "loop", None)
    except Exception:  # no client usable here: each item's request says why
        return
    if running is client_loop:
        raise ConfigurationError(
            f"{action} was called from a coroutine running on the storage client's own event "
            "loop, which its requests need: it would wait forever; call it from another thread "
            f"(await asyncio.to_thread(result.{action}, ...))"
        )
