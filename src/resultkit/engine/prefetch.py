"""Target hits found in the flow process, so that on a remote executor they take no worker.

Before a layer of task runs goes to a remote executor, the targets of those
that can be formatted here (no input still on a worker) are checked with one
``exists_many`` per Result. A hit is settled at once as ``Cached``, its value
a :class:`~resultkit.engine.deferred.StoredValue` read where it is used.
Only runs whose outcome a hit decides alone take this path: a run with an
expiry (``cache_for``), a target validator, a refresh, a prior state, a
non-default trigger or an upstream that did not succeed goes to a worker,
which decides as it always does.
"""

from __future__ import annotations

import logging
from typing import Any

from ..results import StorageResult
from .context import context
from .deferred import Deferred, StoredValue, has_deferred
from .state import Cached, Pending, State
from .targets import format_target
from .task_runner import TaskRunner, shared_target
from .transitions import TaskRun, transition
from .triggers import all_successful
from .unit import RunUnit

__all__ = ["settle_target_hits", "read_mapped_hits"]

logger = logging.getLogger("resultkit")


def _decided_by_target(runner: TaskRunner, unit: RunUnit) -> StorageResult | None:
    """The task's Result when a target hit alone decides this run's state, else None."""
    task = unit.task
    if task.target is None or unit.prior is not None or unit.target_failure is not None:
        return None
    if task.cache_for is not None or task.trigger is not all_successful:
        return None
    if task.target_validator is not None or runner.caching.refreshing(task):
        return None
    if any(not s.is_successful() or s.is_skipped() for _, s in unit.upstream):
        return None
    result = runner.result_for(task)
    return result if isinstance(result, StorageResult) else None


class _NotHere:
    """An input still on a worker: a target that uses it is formatted there, not here."""

    def __format__(self, spec: str) -> str:
        raise LookupError("input not in this process")

    __str__ = __repr__ = lambda self: self.__format__("")  # noqa: E731


def _keys_here(runner: TaskRunner, unit: RunUnit) -> dict[str, Any]:
    """The unit's template keys, with inputs still on workers unusable (never shadowed)."""
    if not has_deferred(unit.inputs):
        unit.keys = runner.keys_for(unit)
        return unit.keys
    here = RunUnit(unit.task, unit.upstream, dict(unit.inputs), unit.map_index, unit.prior)
    here.inputs = {k: _NotHere() if isinstance(v, Deferred) else v for k, v in unit.inputs.items()}
    return runner.keys_for(here)  # not kept: the worker makes the unit's keys


def settle_target_hits(runner: TaskRunner, units: list[RunUnit]) -> dict[int, State]:
    """The states of the units in ``units`` settled here, by position.

    Every target that can be formatted here (no input still on a worker) is
    formatted and claimed: two tasks sharing one fail here as they would in
    process (each worker only knows its own claims). Targets not checked yet
    are checked in bulk, one ``exists_many`` per Result, and a hit is
    settled as ``Cached``. A failure to format or check is not an error
    here: the run then goes to a worker, which reports it.
    """
    hits: dict[int, State] = {}
    eligible: list[tuple[int, RunUnit, StorageResult]] = []
    by_result: dict[int, list[RunUnit]] = {}
    results: dict[int, StorageResult] = {}
    for i, unit in enumerate(units):
        task = unit.task
        result = runner.result_for(task) if task.target is not None else None
        if result is None or unit.target_failure is not None:
            continue
        if unit.target_location is None:
            try:
                keys = unit.keys or _keys_here(runner, unit)
                with context(runner.flow_keys, keys):
                    unit.target_location = format_target(task, result, keys)
            except Exception:
                continue  # the worker formats it again and fails the run with the reason
        other = runner.claim_target(task, unit.target_location)
        if other is not None:
            run = TaskRun(task, unit.full_name, Pending())
            hits[i] = transition(run, shared_target(unit.target_location, other))
            continue
        decided = _decided_by_target(runner, unit)
        if decided is None:
            continue
        eligible.append((i, unit, decided))
        if unit.target_exists is None:
            by_result.setdefault(id(decided), []).append(unit)
            results[id(decided)] = decided
    for rid, group in by_result.items():
        try:
            found = results[rid].exists_many([u.target_location for u in group])  # type: ignore[misc]
        except Exception:
            logger.debug("bulk target check failed", exc_info=True)
            continue
        for unit, exists in zip(group, found, strict=True):
            unit.target_exists = bool(exists)
    for i, unit, result in eligible:
        target = unit.target_location
        if not unit.target_exists or target is None:
            continue
        run = TaskRun(unit.task, unit.full_name, Pending())
        hits[i] = transition(run, Cached(f"target {target} exists", StoredValue(result, target)))
    return hits


def read_mapped_hits(runner: TaskRunner, units: list[RunUnit]) -> dict[int, State]:
    """In-process executors: mapped children whose targets the bulk check found, read at once.

    One ``read_many`` per Result (concurrent requests on an object store)
    instead of one read per child in turn. Each read is verified as a single
    read is; a child whose read fails here (corrupt, gone since the check)
    is left to its own run, which reports or recomputes it as usual.
    """
    wanted: dict[int, list[tuple[int, RunUnit]]] = {}
    results: dict[int, StorageResult] = {}
    for i, unit in enumerate(units):
        if unit.map_index is None or not unit.target_exists or unit.target_location is None:
            continue
        result = _decided_by_target(runner, unit)
        if result is not None:
            wanted.setdefault(id(result), []).append((i, unit))
            results[id(result)] = result
    hits: dict[int, State] = {}
    for rid, group in wanted.items():
        if len(group) < 2:
            continue  # nothing to gain over the child's own read
        try:
            stored = results[rid].read_many(
                [u.target_location for _, u in group],  # type: ignore[misc]
                return_exceptions=True,
            )
        except Exception:
            logger.debug("bulk target read failed", exc_info=True)
            continue
        for (i, unit), got in zip(group, stored, strict=True):
            target = unit.target_location
            if isinstance(got, BaseException) or target is None:
                continue
            if runner.claim_target(unit.task, target) is not None:
                continue
            run = TaskRun(unit.task, unit.full_name, Pending())
            hits[i] = transition(run, Cached(f"target {target} exists", got))
    return hits
