"""Running one task (or one mapped child) to a final state, phase by phase.

1. upstream and trigger checks; 2. the target (a stored value wins);
3. the output cache; 4. the body, with retries; 5. persist (target or
checkpoint); 6. remember the output in the cache. Each state change goes
through :func:`~resultkit.engine.transitions.transition`.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Mapping
from typing import Any

from ..caching.explain import CacheMiss
from ..caching.hashing import inputs_token
from ..errors import ResultError
from ..results import FormattedLocation, LocalResult, Result
from ..signals import FAIL, PAUSE, SKIP
from ._compute import ComputePhases
from ._plan import TargetMemo
from ._warm import warm_run
from .body import as_results
from .context import enter_keys, leave_keys
from .deferred import Deferred, has_deferred
from .flow import Flow
from .output_cache import OutputCaching
from .runs import RunRecords
from .single_flight import target_flight
from .state import (
    Cached,
    Failed,
    Finished,
    Paused,
    Pending,
    Resume,
    Skipped,
    State,
    TriggerFailed,
)
from .targets import UNUSABLE, format_target, read_target
from .task import Task
from .transitions import StopRun, TaskRun, UserCodeError, describe, finish, name_of, transition
from .unit import RunUnit, unit_keys
from .write_batch import WriteBatch

__all__ = ["TaskRunner"]

logger = logging.getLogger("resultkit")


def _same_inputs(unit: RunUnit) -> bool:
    """Whether a recorded (resumed) state's inputs are this run's: else it runs again."""
    expected = getattr(unit.prior, "resumed_inputs", None)
    if expected is None:
        return True  # not from a record, or recorded without tokens
    try:
        return bool(inputs_token(unit.inputs) == expected)
    except Exception:
        return False


def shared_target(target: FormattedLocation, other: Task) -> Failed:
    return Failed(
        f"target: {target} is also the target of task {other.name!r} in this flow; two tasks "
        "sharing a target would serve each other's values. Give each its own target "
        "(e.g. include {task_name})."
    )


class TaskRunner(ComputePhases):
    """Runs the task runs of one flow run."""

    def __init__(
        self,
        flow: Flow,
        flow_keys: Mapping[str, Any],
        caching: OutputCaching,
        targets: TargetMemo | None = None,
    ) -> None:
        self.flow = flow
        self.flow_keys = flow_keys
        self.caching = caching
        #: Targets formatted in earlier runs of the flow (kept with its plan).
        self.targets = targets if targets is not None else TargetMemo()
        self._default_result: Result | None = None
        # Which task formatted each target in this flow run (two tasks must not share one).
        self._targets: dict[str, Task] = {}
        self._targets_lock = threading.Lock()
        #: Where this run records the task runs it finishes (None: not recorded).
        self.records: RunRecords | None = None
        #: Targets formatted before the run, with the keys they were formatted with when the
        #: run can use them too (a task without inputs), else {}.
        self.preformatted: dict[Task, tuple[dict[str, Any], FormattedLocation]] = {}
        #: The recorded states of mapped children a resume starts from.
        self.child_priors: dict[tuple[int, int], State] = {}
        #: Where batched mapped children queue their writes (in-process executors only).
        self.batch: WriteBatch | None = None

    def child_prior(self, task: Task, index: int) -> State | None:
        """The state a resume gives mapped child ``index`` of ``task``, if any."""
        if not self.child_priors:
            return None
        try:
            position = self.flow.tasks.index(task)
        except ValueError:
            return None
        return self.child_priors.get((position, index))

    def __getstate__(self) -> dict[str, Any]:
        # Sent to remote workers with each task run: the lock stays here.
        state = dict(self.__dict__)
        state["_targets_lock"] = None
        state["targets"] = TargetMemo()  # this process's memory: not shipped
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self._targets_lock = threading.Lock()

    def claim_target(self, task: Task, target: FormattedLocation) -> Task | None:
        """Record that ``task`` uses ``target``; the other task already using it, if any."""
        with self._targets_lock:
            owner = self._targets.setdefault(str(target), task)
        return None if owner is task else owner

    def result_for(self, task: Task) -> Result | None:
        """The task's Result, else the flow's; a target with neither uses one LocalResult."""
        res = task.result or self.flow.result
        if res is None and task.target is not None:
            if self._default_result is None:  # one per run, not one per child
                self._default_result = LocalResult()
            res = self._default_result
        return res

    def keys_for(self, unit: RunUnit) -> dict[str, Any]:
        """The template keys (and context) of ``unit``'s run."""
        return unit_keys(self.flow_keys, unit)

    def target_of(self, task: Task, result: Result, keys: Mapping[str, Any]) -> FormattedLocation:
        """``task``'s target formatted with ``keys``: as an earlier run formatted it from
        the same template, Result and values (see ``TargetMemo``), else formatted now."""
        found = self.targets.get(task, result, keys)
        if found is None:
            found = format_target(task, result, keys)
            self.targets.put(task, result, keys, found)
        return found

    def run(self, unit: RunUnit) -> State:
        """Run ``unit`` to its state; never raises for a failure of the task or its hooks."""
        if has_deferred(unit.inputs):  # values on other workers or in storage: get them here
            failed = self._resolve_inputs(unit)
            if failed is not None:
                return finish(TaskRun(unit.task, unit.full_name, unit.prior or Pending()), failed)
        if isinstance(unit.prior, Finished) and not _same_inputs(unit):
            logger.info(
                "Task '%s': its inputs differ from the recorded run's; running it again",
                unit.full_name,
            )
            unit.prior = None
        state = warm_run(self, unit) if unit.prior is None else None
        if state is None:  # not decided by its target on the warm path: the general path
            run = TaskRun(unit.task, unit.full_name, unit.prior)
            state = self.guarded(run, self._run, run, unit)
        if unit.queued is not None:
            return state  # finished (and recorded) once its batch is written
        if self.records is not None and state is not unit.prior and not isinstance(state, Cached):
            self.records.task_done(unit.task, unit.map_index, state, unit.inputs)
        return state

    def _resolve_inputs(self, unit: RunUnit) -> Failed | None:
        """Replace deferred inputs by their values; the failure if one cannot be had."""
        resolved = {}
        for name, value in unit.inputs.items():
            if not isinstance(value, Deferred):
                resolved[name] = value
                continue
            try:
                resolved[name] = value.resolve(unit.refs)
            except ResultError as exc:
                where = f" at {value.location}" if value.location else ""
                return Failed(
                    f"input {name!r}: the value stored{where} could not be read ({exc}); "
                    "run the flow with refresh=True (or delete it) to compute it again",
                    exception=exc,
                )
        unit.inputs = resolved
        return None

    def guarded(self, run: TaskRun, step: Callable[..., State], *args: Any) -> State:
        """``step(*args)``, its failures (user code, a handler, a bug here) made the run's state."""
        try:
            return step(*args)
        except StopRun as stop:  # a state handler raised: already logged and handled
            return stop.state
        except UserCodeError as err:
            return finish(run, err.failed())
        except Warning as warning:  # a warnings filter made one an error (-W error)
            return finish(
                run,
                Failed(
                    f"a warning was raised as an error (a warnings filter says 'error'): "
                    f"{describe(warning)}",
                    exception=warning,
                ),
            )
        except Exception as exc:  # a bug in resultkit: still this task's failure, logged
            logger.error("Task '%s': internal error", run.name, exc_info=True)
            return finish(
                run,
                Failed(
                    f"internal error in resultkit: {describe(exc)}; please report it", exception=exc
                ),
            )

    def _run(self, run: TaskRun, unit: RunUnit) -> State:
        task, prior = unit.task, unit.prior
        if isinstance(prior, Finished):
            return prior
        upstream_states = [s for _, s in unit.upstream]
        for s in upstream_states:
            if not s.is_finished():
                return transition(run, Pending("an upstream task has not finished"))
        if task.skip_on_upstream_skip:
            for s in upstream_states:
                if s.is_skipped():
                    return transition(run, Skipped("an upstream task was skipped"))
        inputs = dict(unit.inputs)
        if prior is not None and prior.cached_inputs:
            inputs.update({k: r.value for k, r in prior.cached_inputs.items()})
        if not isinstance(prior, Resume):
            refused = self._check_trigger(task, upstream_states, inputs)
            if refused is not None:
                return transition(run, refused)
        keys = unit.keys or self.keys_for(unit)
        token = enter_keys(self.flow_keys, keys)  # `with context(...)`, at less cost a task
        try:
            return self._run_phases(run, unit, inputs, keys)
        finally:
            leave_keys(token)

    def _check_trigger(
        self, task: Task, upstream: list[State], inputs: Mapping[str, Any]
    ) -> State | None:
        """None to run; else the state the trigger chose (a trigger may raise a signal)."""
        try:
            if task.trigger(upstream):
                return None
        except PAUSE as sig:
            return Paused(str(sig), cached_inputs=as_results(inputs))
        except SKIP as sig:
            return Skipped(str(sig) or f"skipped by the trigger {name_of(task.trigger)}")
        except FAIL as sig:
            failed = str(sig) or f"failed by the trigger {name_of(task.trigger)}"
            return TriggerFailed(failed, exception=sig)
        except Exception as exc:
            raise UserCodeError(f"trigger {name_of(task.trigger)}", exc) from exc
        return TriggerFailed(f"trigger {name_of(task.trigger)} was not met by the upstream states")

    def _run_phases(
        self, run: TaskRun, unit: RunUnit, inputs: dict[str, Any], keys: dict[str, Any]
    ) -> State:
        task = unit.task
        result = self.result_for(task)
        # 1. Target: a stored value at the formatted target wins; on a miss, one
        # run of all those that missed it computes it (single flight).
        target: FormattedLocation | None = None
        misses: list[CacheMiss] = []  # why the target or the cache did not serve it
        if task.target is not None and result is not None:
            if unit.target_failure is not None:
                return transition(run, unit.target_failure)
            try:
                target = unit.target_location or self.target_of(task, result, keys)
                other = self.claim_target(task, target)
                if other is not None:
                    return transition(run, shared_target(target, other))
                hit = read_target(
                    task, result, target, unit.target_exists, run.name, self.caching, misses
                )
            except ResultError as exc:
                return transition(run, Failed(f"target: {exc}", exception=exc))
            return self.after_target_read(run, unit, inputs, keys, result, target, misses, hit)
        return self._compute(run, unit, inputs, keys, result, target, misses)

    def after_target_read(
        self,
        run: TaskRun,
        unit: RunUnit,
        inputs: dict[str, Any],
        keys: dict[str, Any],
        result: Result,
        target: FormattedLocation,
        misses: list[CacheMiss],
        hit: State | None,
    ) -> State:
        """The run once its target was read: the hit, or (one run of those that missed
        it at once, under the single-flight lock) the computed value."""
        task = unit.task
        lock = None
        if hit is None and not self.caching.refreshing(task):
            found, res = target, result
            # Read again under the lock; an unusable target was warned about once.
            warned = any(m.reason.startswith(UNUSABLE) for m in misses)
            try:
                lock, hit = target_flight(
                    task,
                    result,
                    target,
                    lambda: read_target(
                        task, res, found, None, run.name, self.caching, warn=not warned
                    ),
                    run.name,
                )
            except ResultError as exc:
                return transition(run, Failed(f"target: {exc}", exception=exc))
        if hit is not None:
            return transition(run, hit)
        if lock is not None:
            try:
                return self._compute(run, unit, inputs, keys, result, target, misses)
            finally:
                if unit.queued is None:
                    lock.release()
                else:  # held until the child's value is written with its batch
                    unit.queued.release = lock.release
        return self._compute(run, unit, inputs, keys, result, target, misses)
