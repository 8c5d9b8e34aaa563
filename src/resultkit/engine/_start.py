"""Starting a task in a flow run: settled at once (a constant, a parameter, a state the
run starts from), or its run (a mapped task: its children's runs) made ready to run."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ._plan import FlowPlan
from .flow import Edge, _Constant
from .mapping import MappedRun, input_of, map_children
from .state import Finished, Mapped, Pending, State, Success
from .task import Parameter, Task
from .task_runner import TaskRunner
from .transitions import TaskRun, finish
from .unit import RunUnit

__all__ = ["start_task"]


def start_task(
    t: Task,
    runner: TaskRunner,
    states: dict[Task, State],
    prior: Mapping[Task, State],
    mapped: dict[Task, MappedRun],
    plan: FlowPlan,
) -> list[tuple[int | None, RunUnit]]:
    """Start ``t`` in a flow run: settle it at once in ``states``, or return its run(s).

    Each run comes with its map index (None for an unmapped task).
    """
    if isinstance(t, _Constant):
        states[t] = Success(result=t.value)
        return []
    given = prior.get(t)
    if isinstance(given, Finished) and getattr(given, "resumed_inputs", None) is None:
        states[t] = given
        return []  # a recorded state with inputs: its run checks they are the same
    if isinstance(t, Parameter):
        value = runner.flow_keys["parameters"].get(t.name, t.default)
        states[t] = finish(TaskRun(t, t.name, Pending()), Success(f"parameter {t.name}", value))
        return []
    edges = plan.upstream[t]
    if t not in plan.mapped:
        upstream: list[tuple[Edge, State]] = []
        inputs: dict[str, Any] = {}
        for e in edges:
            up = states[e.upstream]
            upstream.append((e, up))
            if isinstance(up, Mapped):  # a reduce step: every child counts for the trigger
                upstream.extend((e, child) for child in up.map_states)
            if e.key is not None:
                inputs[e.key] = input_of(up)
        unit = RunUnit(t, upstream, inputs, prior=given)
        made = runner.preformatted.get(t)
        if made is not None:
            unit.keys, unit.target_location = made
        return [(None, unit)]
    parent = MappedRun(TaskRun(t, t.name, given or Pending()))
    units = map_children(parent, list(edges), runner, states, given)
    if units is None:  # settled: failed to map, or nothing to map over
        states[t] = parent.run.state
        return []
    mapped[t] = parent
    if runner.batch is not None and len(units) > 1:
        for unit in units:
            unit.batched = True  # written together (on an object store), see write_batch
    return list(enumerate(units))
