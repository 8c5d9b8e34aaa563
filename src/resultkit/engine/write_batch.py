"""Mapped children's writes on an object store, sent together: one ``write_many`` per chunk.

With an in-process executor (``LocalExecutor``, ``ThreadExecutor``) a
mapped child whose checkpoint or target goes to an object store does not
write it at once: once its body succeeded, its value joins the layer's
:class:`WriteBatch` and the child stays unfinished (no state handler sees a
Success, nothing is recorded for resume). The scheduler flushes the batch
when it holds :data:`CHUNK_ITEMS` values or about :data:`CHUNK_BYTES`, and
when no task run is left running: one ``write_many(...,
return_exceptions=True)`` per Result, requests in flight together. Then each
child finishes as it would have alone: Success holding its written Result,
or Failed with its own write's error (its siblings are not affected); its
target lock (single flight) is held until its write is done.

What a crash leaves: every write is atomic, so storage holds complete pairs
only, and a child is recorded for resume only after its value is written.
A process killed mid-layer loses at most the bodies of the unflushed chunk:
``resume`` runs those children again, and no child whose value was
recorded. Local and memory Results write each child at once (a local write
has no round trip to save, and a kill then loses no finished child).
"""

from __future__ import annotations

import logging
import sys
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from ..errors import ResultError
from ..results import FormattedLocation, Result, StorageResult
from .context import context
from .persist import where_to_write, written_state
from .state import Failed, Pending, State
from .transitions import TaskRun, UserCodeError, transition
from .unit import RunUnit

if TYPE_CHECKING:
    from ..caching.explain import CacheMiss
    from .output_cache import Lookup
    from .task_runner import TaskRunner

__all__ = [
    "CHUNK_BYTES",
    "CHUNK_ITEMS",
    "QueuedWrite",
    "WriteBatch",
    "WriteQueued",
    "batches",
    "queue_write",
]

logger = logging.getLogger("resultkit")

#: Children whose values wait unwritten at most (then the batch is flushed).
CHUNK_ITEMS = 64
#: About this many bytes of values wait unwritten at most (an estimate, see ``_size_of``).
CHUNK_BYTES = 64 * 1024 * 1024


class WriteQueued(Pending):
    """A mapped child whose value waits in the layer's batch: not finished yet."""


@dataclass(eq=False)
class QueuedWrite:
    """One child's value to write, and how the child finishes once it is written."""

    unit: RunUnit
    result: StorageResult  # the task's Result: one write_many per Result
    location: FormattedLocation
    value: Any
    #: The child's final state, given its written Result or its write's exception.
    complete: Callable[[Any], State]
    #: The child's target lock, released once the write is done (or abandoned).
    release: Callable[[], None] | None = None
    size: int = field(default=0)


def batches(result: Result | None) -> bool:
    """Whether writes with ``result`` are batched: a StorageResult off the local disk and memory."""
    if not isinstance(result, StorageResult):
        return False
    root = str(getattr(result.storage, "root_url", ""))
    return not root.startswith(("file:", "memory:"))


def _size_of(value: Any) -> int:
    """The bytes a value holds, roughly: an array's or buffer's data, else ``sys.getsizeof``."""
    nbytes = getattr(value, "nbytes", None)
    if isinstance(nbytes, int):
        return nbytes
    try:
        return sys.getsizeof(value)
    except Exception:  # an object whose __sizeof__ raises still gets written
        return 0


class WriteBatch:
    """The values of mapped children waiting to be written together (thread-safe)."""

    def __init__(self, max_items: int | None = None, max_bytes: int | None = None) -> None:
        self.max_items = CHUNK_ITEMS if max_items is None else max_items
        self.max_bytes = CHUNK_BYTES if max_bytes is None else max_bytes
        self._lock = threading.Lock()
        self._queued: list[QueuedWrite] = []
        self._bytes = 0

    def __len__(self) -> int:
        return len(self._queued)

    @property
    def full(self) -> bool:
        """Whether the batch should be written now (its count or size reached the chunk)."""
        return len(self._queued) >= self.max_items or self._bytes >= self.max_bytes

    def add(self, item: QueuedWrite) -> None:
        item.size = _size_of(item.value)
        with self._lock:
            self._queued.append(item)
            self._bytes += item.size

    def _take(self) -> list[QueuedWrite]:
        with self._lock:
            taken, self._queued, self._bytes = self._queued, [], 0
        return taken

    def flush(self) -> list[tuple[RunUnit, State]]:
        """Write every queued value; each child's final state, in the order they were queued."""
        taken = self._take()
        groups: dict[int, list[QueuedWrite]] = {}
        for item in taken:
            groups.setdefault(id(item.result), []).append(item)
        outcomes: dict[int, Any] = {}
        for group in groups.values():
            for round_ in _rounds(group):
                for item, outcome in zip(round_, _write_round(round_), strict=True):
                    outcomes[id(item)] = outcome
        finished = []
        for item in taken:
            try:
                finished.append((item.unit, item.complete(outcomes[id(item)])))
            finally:
                if item.release is not None:
                    item.release()
        return finished

    def abandon(self) -> None:
        """Drop the queued values unwritten (the run stopped): their locks are released."""
        for item in self._take():
            if item.release is not None:
                item.release()


def _rounds(group: list[QueuedWrite]) -> list[list[QueuedWrite]]:
    """``group`` split so no location is written twice in one ``write_many`` (the last wins)."""
    rounds: list[list[QueuedWrite]] = []
    seen: list[set[str]] = []
    for item in group:
        n = 0
        while n < len(seen) and str(item.location) in seen[n]:
            n += 1
        if n == len(seen):
            rounds.append([])
            seen.append(set())
        rounds[n].append(item)
        seen[n].add(str(item.location))
    return rounds


def _write_round(items: list[QueuedWrite]) -> list[Any]:
    """Each item's written Result or exception; one ``write_many``, else one write each."""
    result = items[0].result
    pairs = [(item.location, item.value) for item in items]
    try:
        return list(result.write_many(pairs, return_exceptions=True))
    except Exception:  # the batch as a whole refused: each child gets its own write's outcome
        logger.debug("write_many refused the batch; writing one by one", exc_info=True)
    outcomes: list[Any] = []
    for location, value in pairs:
        try:
            outcomes.append(result.write(value, location))
        except Exception as exc:
            outcomes.append(exc)
    return outcomes


def queue_write(
    runner: TaskRunner,
    run: TaskRun,
    unit: RunUnit,
    state: State,
    keys: dict[str, Any],
    result: Result | None,
    target: FormattedLocation | None,
    misses: list[CacheMiss],
    lookup: Lookup | None,
) -> State | None:
    """Queue a batched child's write: WriteQueued, a failure, or None to write it at once.

    Called by the task runner once a body succeeded; None for a task run
    that is not a batched child on an object store. A queued child finishes
    in ``complete``, when the scheduler flushes the batch.
    """
    if not unit.batched or runner.batch is None or not batches(result):
        return None
    assert isinstance(result, StorageResult)
    try:
        where = where_to_write(unit.task, result, keys, target)
    except ResultError as exc:
        return transition(run, Failed(f"could not write the result: {exc}", exception=exc))
    if where is None:
        return None  # nothing to write: the child finishes now
    writer, target_at = where
    location = target_at if target_at is not None else writer.location
    if not isinstance(location, FormattedLocation):
        return None  # a Result whose format_map leaves it unformatted: written at once

    def complete(outcome: Any) -> State:
        def step() -> State:
            if isinstance(outcome, ResultError):
                failed = Failed(f"could not write the result: {outcome}", exception=outcome)
                return transition(run, failed)
            if isinstance(outcome, BaseException):
                hook = f"Result hook {type(writer).__name__}.write"
                raise UserCodeError(hook, outcome)
            return runner.persisted(
                run, unit, written_state(state, outcome), target, misses, lookup
            )

        with context(runner.flow_keys, keys):
            final = runner.guarded(run, step)
        if runner.records is not None:
            runner.records.task_done(unit.task, unit.map_index, final, unit.inputs)
        return final

    unit.queued = QueuedWrite(unit, result, location, state.result, complete)
    runner.batch.add(unit.queued)
    return WriteQueued("its value is written with its siblings'")
