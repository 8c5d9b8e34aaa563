"""The warm path: a task run whose target is read before any other setup.

Most runs of a flow whose targets are present end at the target: the run
reads it and is ``Cached``. The general path prepares everything a run might
need before that read (the run's template keys, a copy of the context with
them, its inputs, the trigger's verdict through a guard). Here a run with
the default trigger, no prior state and a target formatted alike in an
earlier run of the flow (``engine._plan.TargetMemo``) checks only what
decides it, then reads:

* upstream states all successful and none skipped (what ``all_successful``
  and ``skip_on_upstream_skip`` would let through);
* the target as remembered, claimed for this run as the general path does;
* the same :func:`~resultkit.engine.targets.read_target`, in a context that
  holds what the general path's does, made only if something reads it.

A hit ends there, logged (and through the task's state handlers) as a
transition logs it. A miss, or an error, continues exactly where the general
path continues after its read. A run this path cannot decide on these terms
returns None before doing anything the general path would do twice.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import TYPE_CHECKING, Any

from ..errors import ResultError
from .context import current_keys, enter_keys, leave_keys, swap_keys
from .state import Failed, State
from .targets import read_target
from .transitions import TaskRun, log_state, transition
from .triggers import all_successful
from .unit import RunUnit, unit_keys

if TYPE_CHECKING:
    from .task_runner import TaskRunner

__all__ = ["warm_run", "TaskContext"]


class TaskContext(Mapping[str, Any]):
    """The context of a run on the warm path: what ``with context(flow_keys, keys)`` holds,
    made when first read (most reads of a target never look at it).

    ``run_keys()`` are the run's template keys, made once (with one task run id).
    """

    __slots__ = ("_flow_keys", "_unit", "_outer", "_keys", "_view")

    def __init__(self, flow_keys: Mapping[str, Any], unit: RunUnit, outer: Mapping[str, Any]):
        self._flow_keys = flow_keys
        self._unit = unit
        self._outer = outer
        self._keys: dict[str, Any] | None = unit.keys or None
        self._view: dict[str, Any] | None = None

    def run_keys(self) -> dict[str, Any]:
        if self._keys is None:
            self._keys = unit_keys(self._flow_keys, self._unit, self._outer)
        return self._keys

    def _merged(self) -> dict[str, Any]:
        if self._view is None:
            self._view = {**self._outer, **self._flow_keys, **self.run_keys()}
        return self._view

    def __getitem__(self, key: str) -> Any:
        return self._merged()[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self._merged())

    def __len__(self) -> int:
        return len(self._merged())


def _decided_upstream(unit: RunUnit) -> bool:
    """Whether the upstream states let the default trigger run the task (none skipped)."""
    for _, s in unit.upstream:
        if not s.is_finished() or not s.is_successful() or s.is_skipped():
            return False
    return True


def warm_run(runner: TaskRunner, unit: RunUnit) -> State | None:
    """``unit``'s final state if the warm path applies (see the module docstring), else None.

    Called by :meth:`TaskRunner.run` for a unit with no prior state and its
    inputs in this process.
    """
    task = unit.task
    if (
        task.trigger is not all_successful
        or unit.target_failure is not None
        or not isinstance(task.target, str)
        or not _decided_upstream(unit)
    ):
        return None
    result = runner.result_for(task)
    if result is None:
        return None
    scope = TaskContext(runner.flow_keys, unit, current_keys())
    target = unit.target_location
    if target is None:
        # Formatted alike in an earlier run? A target of inputs alone needs no other key.
        found = runner.targets.get_by_inputs(task, result, unit.inputs)
        if found is False:
            unit.keys = scope.run_keys()  # the general path uses them if this one declines
            found = runner.targets.get(task, result, unit.keys)
        if not isinstance(found, str):
            return None  # the general path formats it
        target = found
    if runner.claim_target(task, target) is not None:
        return None  # shared: the general path claims again and fails the run
    name = unit.full_name
    # Handlers see the run start Pending (made now); without them it is made if needed.
    run = TaskRun(task, name, None) if task.state_handlers else None
    misses: list[Any] = []
    token = swap_keys(scope)
    try:
        hit = read_target(task, result, target, unit.target_exists, name, runner.caching, misses)
    except ResultError as exc:
        run = run or TaskRun(task, name, None)
        return transition_guarded(runner, run, Failed(f"target: {exc}", exception=exc))
    except Exception as exc:  # user code (a Result hook) or a bug: as the general path's guard
        run = run or TaskRun(task, name, None)
        return runner.guarded(run, _reraise, exc)
    finally:
        leave_keys(token)
    if hit is not None:
        if run is not None:
            return transition_guarded(runner, run, hit)
        log_state(name, hit)  # what transition() does for a task without handlers
        return hit
    run = run or TaskRun(task, name, None)
    # A miss: on as the general path goes after its read, in the context it would have.
    keys = scope.run_keys()
    token = enter_keys(runner.flow_keys, keys)
    try:
        return runner.guarded(
            run, runner.after_target_read, run, unit, dict(unit.inputs), keys, result, target,
            misses, None,
        )  # fmt: skip
    finally:
        leave_keys(token)


def transition_guarded(runner: TaskRunner, run: TaskRun, state: State) -> State:
    """``transition(run, state)`` as the general path makes it: a handler's failure ends
    the run in the state it recorded."""
    return runner.guarded(run, transition, run, state)


def _reraise(exc: Exception) -> State:
    raise exc
