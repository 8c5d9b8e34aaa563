"""Many writes or reads at once: ``Result.write_many`` and ``Result.read_many``.

Each item goes through the very code of a single ``write`` / ``read`` (so it
is atomic, verified, retried and error-mapped exactly like one), run by a
bounded pool of threads. On S3 (s3fs), GCS and Azure, whose clients are
async underneath, each item's request goes as a coroutine on the client's
event loop instead, and the caller's thread runs the rest of the item's
write (``_asyncbatch.py``) or read (``_asyncreads.py``); a thread an item
cost client CPU on every item (``benchmarks/object_engines.py --ab``).

Every location is formatted and checked before the first request: a hostile
location, or one location twice in a ``write_many``, is refused with nothing
written. Past that, one failing item never loses the others' outcome: they
all run, and a :class:`BatchError` names every failed location and carries
each item's outcome (or ``return_exceptions=True`` returns them in place).
At most ``concurrency`` items are in flight, so a batch of any length holds
only that many payloads in memory besides the caller's values.
"""

from __future__ import annotations

import traceback
from collections.abc import Callable, Iterable, Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from typing import TYPE_CHECKING, Any, TypeVar

from ..errors import ConfigurationError, ResultError
from ._asyncbatch import LoopLane, LoopWrites, first_done, refuse_the_clients_own_loop
from ._asyncreads import LoopReads
from ._location import LocationTemplate, short

if TYPE_CHECKING:
    from .storage import Storage

__all__ = ["BatchError", "BatchOperations", "run_batch", "map_bounded"]

T = TypeVar("T")
B = TypeVar("B", bound="BatchOperations")
I = TypeVar("I")  # noqa: E741

#: Failed locations a BatchError's message names before "and N more".
_NAMED_IN_MESSAGE = 5
#: How much of each named failure's message a BatchError's message quotes.
_GIST_CHARS = 240


class BatchError(ResultError):
    """Some items of a ``write_many`` / ``read_many`` failed; every other item completed.

    Attributes:
        outcomes: one entry per item, in order: the Result of an item that
            succeeded, the exception of one that failed.
        failures: ``(location, exception)`` of every failed item, in order.

    Example:
        >>> from resultkit.results import MemoryResult
        >>> r = MemoryResult()
        >>> _ = r.write(1, "there.pkl")
        >>> try:
        ...     r.read_many(["there.pkl", "missing.pkl"])
        ... except BatchError as exc:
        ...     print([type(e).__name__ for _, e in exc.failures], exc.outcomes[0].value)
        ['ResultNotFoundError'] 1
    """

    def __init__(
        self, action: str, outcomes: list[Any], failures: list[tuple[str, BaseException]]
    ) -> None:
        self.outcomes = outcomes
        self.failures = failures
        named = "; ".join(
            f"{short(loc)} ({type(exc).__name__}: {_gist(exc)})"
            for loc, exc in failures[:_NAMED_IN_MESSAGE]
        )
        more = len(failures) - _NAMED_IN_MESSAGE
        super().__init__(
            f"{action}: {len(failures)} of {len(outcomes)} items failed "
            f"({len(outcomes) - len(failures)} completed; .outcomes holds each item's "
            f"outcome, .failures each failed item's whole error): {named}"
            + (f"; and {more} more" if more > 0 else ""),
            location=failures[0][0] if failures else None,
        )


def _gist(exc: BaseException, limit: int = _GIST_CHARS) -> str:
    """The first line of ``exc``'s message with text, cut after a whole word if it is long."""
    try:
        text = str(exc)
    except Exception:  # a broken __str__ must not hide the batch's outcome
        text = f"(its message could not be shown: {type(exc).__name__}.__str__ failed)"
    first = next((line.strip() for line in text.splitlines() if line.strip()), "")
    if len(first) <= limit:
        return first
    cut = first[:limit]
    space = cut.rfind(" ")
    return (cut[:space] if space > limit // 2 else cut).rstrip(" ,;:") + " ..."


def check_concurrency(concurrency: Any) -> int:
    """``concurrency`` as a positive int, or a clear error."""
    if isinstance(concurrency, bool) or not isinstance(concurrency, int) or concurrency < 1:
        raise ConfigurationError(
            f"concurrency must be a positive whole number of requests in flight, got "
            f"{concurrency!r}"
        )
    return concurrency


def write_items(items: Any) -> list[tuple[Any, Any]]:
    """The ``(location, value)`` pairs of a ``write_many`` argument (a mapping or pairs)."""
    if isinstance(items, Mapping):
        return list(items.items())
    if isinstance(items, (str, bytes)) or not isinstance(items, Iterable):
        raise ConfigurationError(
            "write_many takes {location: value} or an iterable of (location, value) pairs, "
            f"got {type(items).__name__}"
        )
    pairs = []
    for index, pair in enumerate(items):
        if not isinstance(pair, tuple) or len(pair) != 2:
            raise ConfigurationError(
                f"write_many item {index} is {type(pair).__name__}, not a (location, value) "
                "pair; pass {location: value} or [(location, value), ...]"
            )
        pairs.append(pair)
    return pairs


def refuse_duplicates(locations: Sequence[str], action: str) -> None:
    """One location twice in one batch of writes: the survivor would be chance; refuse it."""
    seen: dict[str, int] = {}
    for index, location in enumerate(locations):
        if location in seen:
            raise ConfigurationError(
                f"{action}: location {short(location)!r} is given twice (items {seen[location]} "
                f"and {index}); which write would win is chance, so nothing was written: give "
                "each location once"
            )
        seen[location] = index


def map_bounded(fn: Callable[[I], T], items: Sequence[I], concurrency: int) -> list[T]:
    """``[fn(x) for x in items]`` with at most ``concurrency`` calls at once; the first error raises.

    For storage-level bulk calls (``exists_many``) whose every answer is needed.
    """
    if len(items) <= 1 or concurrency <= 1:
        return [fn(x) for x in items]
    with ThreadPoolExecutor(
        max_workers=min(concurrency, len(items)), thread_name_prefix="resultkit-map"
    ) as pool:
        return list(pool.map(fn, items))


def _without_locals(exc: BaseException) -> BaseException:
    """``exc`` with the local variables of its traceback's frames dropped; ``exc`` itself.

    A failed item's outcome is its exception, kept until the caller drops the
    BatchError; the frames of its traceback (and of its causes) hold the
    item's payload (the serialized bytes, the request's body), so a batch of
    failures would hold every payload at once, not ``concurrency`` of them.
    The traceback itself (files, lines) stays for the error report.
    """
    seen: set[int] = set()
    chained: BaseException | None = exc
    while chained is not None and id(chained) not in seen:
        seen.add(id(chained))
        traceback.clear_frames(chained.__traceback__)  # a frame still running is left alone
        chained = chained.__cause__ or chained.__context__
    return exc


def run_batch(
    action: str,
    run_one: Callable[[I], T],
    items: Sequence[I],
    locations: Sequence[str],
    concurrency: int,
    return_exceptions: bool,
    on_loop: LoopLane | None = None,
) -> list[Any]:
    """``run_one`` on every item, at most ``concurrency`` at once; outcomes in item order.

    ``on_loop``: the items it takes (``on_loop.start(index)``) go as coroutines on an event loop
    (``_asyncbatch.py``), each finished in this thread (``on_loop.finish``); the others run
    ``run_one`` on a thread of a bounded pool. An item's ``Exception`` is its
    outcome; a ``BaseException`` (KeyboardInterrupt) stops the batch: items
    not started are dropped, running threads finish (each is atomic) and
    running coroutines are cancelled before it propagates, so no request
    outlives the call.
    """
    outcomes: list[Any] = [None] * len(items)
    failed: list[int] = []

    looped: set[Future[Any]] = set()  # futures of on_loop's items: finished by on_loop

    def settle(index: int, future: Future[Any]) -> None:
        try:
            if future in looped:
                looped.discard(future)
                outcomes[index] = on_loop.finish(index, future)  # type: ignore[union-attr]
            else:
                outcomes[index] = future.result()
        except Exception as exc:  # a BaseException (KeyboardInterrupt) stops the batch
            outcomes[index] = _without_locals(exc)
            failed.append(index)

    if concurrency == 1 or len(items) <= 1:  # no thread to start: the caller's own
        for index, item in enumerate(items):
            try:
                outcomes[index] = run_one(item)
            except Exception as exc:
                outcomes[index] = _without_locals(exc)
                failed.append(index)
    else:
        pool: ThreadPoolExecutor | None = None  # made for the first item a thread runs
        pending: dict[Future[Any], int] = {}
        try:
            for index, item in enumerate(items):
                while len(pending) >= concurrency:  # a bounded window, never the whole batch
                    done = first_done(pending)
                    for future in done:
                        settle(pending.pop(future), future)
                started = on_loop.start(index) if on_loop is not None else None
                if started is not None:
                    looped.add(started)
                else:
                    if pool is None:
                        pool = ThreadPoolExecutor(
                            max_workers=min(concurrency, len(items)),
                            thread_name_prefix=f"resultkit-{action}",
                        )
                    started = pool.submit(run_one, item)
                pending[started] = index
            while pending:
                done = first_done(pending)
                for future in done:
                    settle(pending.pop(future), future)
        finally:
            if on_loop is not None:
                on_loop.stop()  # its coroutines: cancelled, and ended before this returns
            for future in pending:
                future.cancel()  # a thread's item not started: dropped; started: finishes
            if pool is not None:
                pool.shutdown(wait=True)
    if return_exceptions or not failed:
        return outcomes
    failed.sort()
    raise BatchError(action, outcomes, [(locations[i], outcomes[i]) for i in failed])


class BatchOperations:
    """``write_many`` and ``read_many`` of :class:`~resultkit.results.StorageResult`."""

    storage: Storage
    if TYPE_CHECKING:

        def write(self: B, value: Any, location: LocationTemplate | None = None) -> B: ...
        def read(self: B, location: LocationTemplate | None = None) -> B: ...
        def _canonical_location(self, location: Any, keys: Mapping[str, Any]) -> str: ...
        def _needs_location(self, location: Any, action: str) -> Any: ...

    def write_many(
        self: B,
        items: Mapping[str, Any] | Iterable[tuple[LocationTemplate, Any]],
        *,
        concurrency: int | None = None,
        return_exceptions: bool = False,
    ) -> list[B]:
        """``write`` every ``(location, value)`` at once; the written Results, in order.

        Each item is a :meth:`write` (atomic, checksummed, retried), at most
        ``concurrency`` in flight (default :attr:`Storage.batch_concurrency`:
        32 on object stores, where each is a request on the client's event
        loop). Every location is checked first: one outside the root, or one
        given twice, is refused before anything is written. One failing item
        does not stop the others; then :class:`~resultkit.results.BatchError`
        names each failed location and holds every item's outcome
        (``return_exceptions=True`` returns each failure in its item's place).

        Example:
            >>> from resultkit.results import MemoryResult
            >>> r = MemoryResult()
            >>> written = r.write_many({"a.pkl": 1, "b.pkl": 2})
            >>> [(w.location.rsplit("/", 1)[1], w.record.size > 0) for w in written]
            [('a.pkl', True), ('b.pkl', True)]
        """
        pairs = write_items(items)
        canonical = [self._canonical_location(loc, {}) for loc, _ in pairs]
        refuse_duplicates(canonical, "write_many")
        concurrency = self._concurrency(concurrency)
        refuse_the_clients_own_loop(self.storage, "write_many")
        # Object stores with an async client: small items' requests as coroutines.
        on_loop = LoopWrites.for_batch(self, pairs, canonical) if len(pairs) > 1 else None  # type: ignore[arg-type]
        return run_batch(
            "write_many",
            lambda i: self.write(pairs[i][1], canonical[i]),
            range(len(pairs)),
            canonical,
            concurrency,
            return_exceptions,
            on_loop,
        )

    def read_many(
        self: B,
        locations: Iterable[LocationTemplate],
        *,
        concurrency: int | None = None,
        return_exceptions: bool = False,
    ) -> list[B]:
        """``read`` every location at once; the Results holding the values, in order.

        Each item is a :meth:`read` (verified before deserializing), at most
        ``concurrency`` in flight (on S3, GCS and Azure each item's GET is a
        coroutine on the client's event loop; this thread verifies and
        deserializes). Locations are checked first (one outside
        the root is refused before any request); failures are reported as in
        :meth:`write_many`.

        Example:
            >>> from resultkit.results import MemoryResult
            >>> r = MemoryResult()
            >>> _ = r.write_many({"a.pkl": 1, "b.pkl": 2})
            >>> [x.value for x in r.read_many(["b.pkl", "a.pkl"])]
            [2, 1]
        """
        if isinstance(locations, (str, bytes)) or not isinstance(locations, Iterable):
            raise ConfigurationError(
                f"read_many takes a list of locations, got {type(locations).__name__} "
                f"{locations!r:.80}; for one location use read()"
            )
        canonical = [
            self._canonical_location(self._needs_location(loc, "read_many"), {})
            for loc in locations
        ]
        concurrency = self._concurrency(concurrency)
        refuse_the_clients_own_loop(self.storage, "read_many")
        # Object stores with an async client: each item's GET as a coroutine.
        on_loop = LoopReads.for_batch(self, canonical) if len(canonical) > 1 else None  # type: ignore[arg-type]
        return run_batch(
            "read_many",
            lambda i: self.read(canonical[i]),
            range(len(canonical)),
            canonical,
            concurrency,
            return_exceptions,
            on_loop,
        )

    def _concurrency(self, concurrency: int | None) -> int:
        if concurrency is None:
            return check_concurrency(getattr(self.storage, "batch_concurrency", 8))
        return check_concurrency(concurrency)
