"""Mapped tasks: one child run per element; the parent is Running, then Mapped."""

from __future__ import annotations

from typing import Any

from ..errors import FlowError
from .deferred import Deferred, DeferredList, has_deferred
from .flow import Edge
from .state import Failed, Mapped, Running, State, TriggerFailed
from .targets import TargetCollision, check_mapped_targets
from .task import Task
from .task_runner import TaskRunner
from .transitions import TaskRun, finish
from .unit import RunUnit

__all__ = ["MappedRun", "map_children", "input_of"]


class MappedRun:
    """A mapped parent in progress: its own run (handlers see it) and its children's states."""

    def __init__(self, run: TaskRun) -> None:
        self.run = run
        self.children: list[State | None] = []
        self.unfinished = 0

    def child_done(self, index: int, state: State) -> bool:
        """Record child ``index``'s state; True once every child is done."""
        self.children[index] = state
        self.unfinished -= 1
        return self.unfinished == 0

    def finish(self) -> State:
        """Move the parent to Mapped (through its state handlers)."""
        kids = [k for k in self.children if k is not None]
        return finish(self.run, Mapped(f"{len(kids)} mapped children", kids))


def map_children(
    parent: MappedRun,
    edges: list[Edge],
    runner: TaskRunner,
    states: dict[Task, State],
    prior: State | None,
) -> list[RunUnit] | None:
    """The children to run, or None when the parent is settled (``parent.run.state``).

    The parent moves to Running first; it fails when its inputs cannot be
    mapped or two children share a target, and is an empty Mapped when
    there is nothing to map over. Each child starts from ``prior`` (the
    parent's given state: ``Resume()``, a Retrying...).
    """
    t = parent.run.task
    unfinished = [
        e.upstream.name for e in edges if e.mapped and not states[e.upstream].is_successful()
    ]
    if unfinished:  # nothing to map over: say why, as a trigger would
        names = ", ".join(repr(n) for n in sorted(set(unfinished)))
        finish(
            parent.run,
            TriggerFailed(f"nothing to map over: upstream task(s) {names} did not succeed"),
        )
        return None
    if not isinstance(finish(parent.run, Running("mapping")), Running):
        return None  # a state handler replaced Running (or raised): that is the final state
    try:
        units = _children(t, edges, runner, states, prior)
        result = runner.result_for(t)
        if t.target is not None and result is not None and units:
            formattable = [u for u in units if u.keys]  # the others check on their worker
            check_mapped_targets(t, result, formattable, runner.flow_keys)
    except (FlowError, TargetCollision) as exc:
        finish(parent.run, Failed(str(exc), exception=exc))
        return None
    if not units:
        finish(parent.run, Mapped("no elements to map over", []))
        return None
    parent.children = [None] * len(units)
    parent.unfinished = len(units)
    return units


def _children(
    t: Task,
    edges: list[Edge],
    runner: TaskRunner,
    states: dict[Task, State],
    prior: State | None,
) -> list[RunUnit]:
    """One unit per element of the mapped inputs (unmapped inputs are passed whole)."""
    mapped_edges = [e for e in edges if e.mapped]
    lengths = {}
    for e in mapped_edges:
        value = input_of(states[e.upstream])
        try:
            lengths[e.key or e.upstream.name] = _length(value)
        except TypeError:
            raise FlowError(
                f"task {t.name!r} maps over {e.key or e.upstream.name!r}, which is a "
                f"{type(value).__name__}, not a sequence; pass a list (or unmapped(...) to "
                "give it whole to every child)"
            ) from None
    if len(set(lengths.values())) > 1:
        raise FlowError(
            f"task {t.name!r} maps over inputs of different lengths: {lengths}; give them "
            "the same length"
        )
    n = next(iter(lengths.values()))
    units = []
    for i in range(n):
        upstream: list[tuple[Edge, State]] = []
        inputs: dict[str, Any] = {}
        for e in edges:
            up = states[e.upstream]
            value = input_of(up)
            if e.mapped:
                # A child's trigger sees the matching child upstream, if mapped.
                upstream.append((e, up.map_states[i] if isinstance(up, Mapped) else up))
                value = value.item(i) if isinstance(value, Deferred) else value[i]
            else:
                upstream.append((e, up))
            if e.key is not None:
                inputs[e.key] = value
        unit = RunUnit(t, upstream, inputs, map_index=i, prior=runner.child_prior(t, i) or prior)
        if not has_deferred(inputs):  # else formatted on the worker, once the inputs are there
            unit.keys = runner.keys_for(unit)
        units.append(unit)
    return units


def input_of(state: State) -> Any:
    """What ``state`` gives a downstream task: its value, or a deferred value standing for it.

    With a remote executor, a value may still be on a worker (or in storage):
    the deferred value is passed on and resolved where the task runs.
    """
    if isinstance(state, Mapped):
        values = [input_of(s) for s in state.map_states]
        return DeferredList(values) if any(isinstance(v, Deferred) for v in values) else values
    result = state._result
    return result if isinstance(result, Deferred) and not result.fetched else state.result


def _length(value: Any) -> int:
    if isinstance(value, Deferred):
        if value.length is not None:
            return value.length
        # A stored value of unknown length (a target found before the run): read it
        # here once; the children then get their elements, not the whole value each.
        value = value.value
    return len(value)
