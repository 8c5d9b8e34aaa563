"""Phases 2-5 of a task run, once its target (if any) did not serve it: the output cache,
the body with retries, persisting the value, and remembering it in the cache.

A mixin of :class:`~resultkit.engine.task_runner.TaskRunner` (it uses the
runner's ``caching`` and ``batch``), kept apart so that each module holds
one stage of a run.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ..caching.explain import CacheMiss
from ..errors import ResultError
from ..results import FormattedLocation, Result
from .body import run_body
from .output_cache import Lookup, OutputCaching
from .persist import persist
from .single_flight import cache_flight
from .state import Failed, Skipped, State, Success
from .transitions import TaskRun, transition
from .unit import RunUnit, first_run_count
from .write_batch import queue_write

if TYPE_CHECKING:
    from .task_runner import TaskRunner

__all__ = ["ComputePhases"]


class ComputePhases:
    """The output cache, the body, persisting and remembering: see the module docstring."""

    caching: OutputCaching

    def _compute(
        self,
        run: TaskRun,
        unit: RunUnit,
        inputs: dict[str, Any],
        keys: dict[str, Any],
        result: Result | None,
        target: FormattedLocation | None,
        misses: list[CacheMiss] | None = None,
    ) -> State:
        task = unit.task
        misses = [] if misses is None else misses
        # 2. Output cache.
        lookup = self.caching.prepare(task, inputs, unit.map_index, run.name)
        if lookup is not None:
            cached = self.caching.get(task, lookup, misses)
            if cached is None:  # one of the runs missing this entry at once computes it
                found = lookup
                flight, cached = cache_flight(
                    self.caching, task, lookup, run.name, lambda: self.caching.get(task, found)
                )
                if flight is not None:
                    # A sibling with the same inputs may wait for this lock: write at once.
                    unit.batched = False
                    try:
                        return self._compute_body(
                            run, unit, inputs, keys, result, target, misses, lookup
                        )
                    finally:
                        flight.release()
            if cached is not None:
                return transition(run, cached)
        return self._compute_body(run, unit, inputs, keys, result, target, misses, lookup)

    def _compute_body(
        self,
        run: TaskRun,
        unit: RunUnit,
        inputs: dict[str, Any],
        keys: dict[str, Any],
        result: Result | None,
        target: FormattedLocation | None,
        misses: list[CacheMiss],
        lookup: Lookup | None,
    ) -> State:
        task = unit.task
        # 3. The body, with retries. A final state other than Success is already recorded.
        state = run_body(run, task, inputs, first_run_count(unit.prior))
        state.cache_miss = misses[-1] if misses else None
        if not isinstance(state, Success) or isinstance(state, Skipped):
            return state

        # 4. Persist: target or checkpoint (a batched child queues its write and waits).
        queued = queue_write(self._runner(), run, unit, state, keys, result, target, misses, lookup)
        if queued is not None:
            return queued
        try:
            state = persist(task, result, state, keys, target)
        except ResultError as exc:
            return transition(run, Failed(f"could not write the result: {exc}", exception=exc))
        return self.persisted(run, unit, state, target, misses, lookup)

    def persisted(
        self,
        run: TaskRun,
        unit: RunUnit,
        state: State,
        target: FormattedLocation | None,
        misses: list[CacheMiss],
        lookup: Lookup | None,
    ) -> State:
        """Steps 4-5 once the value is stored: the success through the handlers, then the cache."""
        task = unit.task
        state = transition(run, state)
        state.cache_miss = misses[-1] if misses else None
        # 5. Remember in the output cache (what a handler made of the success).
        if lookup is not None and isinstance(state, Success):
            self.caching.put(task, lookup, state)
        if target is not None and task.target_validator is not None and state.is_successful():
            self.caching.remember_target(task, str(target), state)  # the code that wrote it
        return state

    def _runner(self) -> TaskRunner:
        return self  # type: ignore[return-value]  # the mixin is only ever a TaskRunner
