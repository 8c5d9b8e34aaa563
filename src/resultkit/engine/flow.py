"""Flow: a graph of tasks built by calling them inside ``with Flow(...)``."""

from __future__ import annotations

import contextvars
import os
import sys
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from ..caching import CacheStore
from ..errors import FlowError, entered_from_user
from ..results import Result
from ._plan import FlowPlan, plan_of
from .context import cache_store_from
from .task import Parameter, Task, Unmapped

if TYPE_CHECKING:
    from .executors import Executor
    from .state import State

__all__ = ["Flow", "Edge"]

_ACTIVE_FLOW: contextvars.ContextVar[Flow | None] = contextvars.ContextVar(
    "resultkit_flow", default=None
)


@dataclass(frozen=True)
class Edge:
    """``upstream`` feeds ``downstream`` (as input ``key``, if any; per child if ``mapped``)."""

    upstream: Task
    downstream: Task
    key: str | None = None
    mapped: bool = False


class _Constant(Task):
    """A constant input, held as a task so every input is an edge."""

    def __init__(self, value: Any) -> None:
        self.value = value
        super().__init__(name=f"Constant[{type(value).__name__}]")

    def run(self) -> Any:
        return self.value


def _caller_file() -> str | None:
    """The Python file of the code that called ``Flow(...)`` (skipping subclasses' __init__)."""
    frame = sys._getframe(2)
    while frame is not None and frame.f_code.co_name == "__init__":
        frame = frame.f_back  # type: ignore[assignment]
    path = frame.f_globals.get("__file__") if frame is not None else None
    return os.path.abspath(path) if isinstance(path, str) and path.endswith(".py") else None


class Flow:
    """A set of tasks and the edges between them.

    Build it by calling tasks inside ``with Flow("name") as flow:``; run it
    with :meth:`run`.

    Args:
        name: ``{flow_name}`` in templates.
        result: the default Result of its tasks (checkpoints and targets).
        executor: the default executor (``LocalExecutor``: in order).
        cache_store: where the output caches (``cache_for``) of its tasks are
            kept: a Result (e.g. ``S3Result(...)``: entries on it, shared by
            every process using it), a URL, ``"memory"`` (this process only)
            or a :class:`~resultkit.caching.CacheStore`. Default: the global
            one (``config.cache_store``, ``RESULTKIT_CACHE_STORE``, else a
            folder under ``RESULTKIT_HOME``); ``flow.run(caches=...)`` wins.
        run_store: where its runs record what they finished, for
            :meth:`resume`: a Result, a URL, or ``"off"``. Default: the global
            one (``config.run_store``, ``RESULTKIT_RUN_STORE``, else the folder
            ``runs`` under ``RESULTKIT_HOME``).

    Example:
        >>> with Flow("double") as flow:                       # doctest: +SKIP
        ...     n = Parameter("n", default=2)
        ...     out = double(n)
        >>> flow.run(parameters={"n": 5}).result[out].result   # doctest: +SKIP
        10
    """

    # Class defaults too: a Flow unpickled from an older release has neither attribute.
    _version = 0
    _plan: FlowPlan | None = None

    def __init__(
        self,
        name: str,
        result: Result | None = None,
        executor: Executor | None = None,
        reference_tasks: Iterable[Task] | None = None,
        cache_store: CacheStore | Result | str | None = None,
        run_store: Result | str | None = None,
    ) -> None:
        self.name = name
        #: The file that built the flow (recorded with its runs, for ``resultkit resume``).
        self.defined_in: str | None = _caller_file()
        #: Where runs are recorded (None: the global run store), see :meth:`resume`.
        self.run_store = run_store
        self.result = result
        self.executor = executor
        #: This flow's output cache store, or None for the global one.
        self.cache_store: CacheStore | None = (
            None
            if cache_store is None
            else cache_store_from(cache_store, f"Flow({name!r}, cache_store=...)")
        )
        self.tasks: list[Task] = []
        self._task_set: set[Task] = set()
        self.edges: list[Edge] = []
        # Edges indexed by task, so reading the graph stays linear in its size.
        self._up: dict[Task, list[Edge]] = {}
        self._down: dict[Task, list[Edge]] = {}
        self._reference_tasks = list(reference_tasks or [])
        self._token: contextvars.Token[Flow | None] | None = None
        #: Task states of the last run, reused when resuming (``task_states=``).
        self.last_states: dict[Task, State] = {}
        # Bumped by every change of the graph: a run's plan (engine._plan) is
        # kept while it is unchanged.
        self._version = 0
        self._plan: FlowPlan | None = None

    def __getstate__(self) -> dict[str, Any]:
        # A flow travels to remote workers with its task runs: the graph and its
        # settings, not the states of its last run nor the executor.
        state = dict(self.__dict__)
        state.update(_token=None, last_states={}, executor=None, _plan=None)
        return state

    # -- building ---------------------------------------------------------------------
    @staticmethod
    def active() -> Flow | None:
        return _ACTIVE_FLOW.get()

    def __enter__(self) -> Flow:
        self._token = _ACTIVE_FLOW.set(self)
        return self

    def __exit__(self, *exc: Any) -> None:
        if self._token is not None:
            _ACTIVE_FLOW.reset(self._token)
            self._token = None

    def add_task(self, task: Task) -> Task:
        if not isinstance(task, Task):
            raise FlowError(f"flow {self.name!r}: expected a Task, got {type(task).__name__}")
        if task not in self._task_set:
            if isinstance(task, Parameter) and any(
                isinstance(t, Parameter) and t.name == task.name and t is not task
                for t in self.tasks
            ):
                raise FlowError(f"flow {self.name!r} already has a parameter {task.name!r}")
            self._task_set.add(task)
            self.tasks.append(task)
            self._version += 1
        return task

    def add_edge(
        self, upstream: Any, downstream: Task, key: str | None = None, mapped: bool = False
    ) -> Edge:
        up = upstream if isinstance(upstream, Task) else _Constant(upstream)
        self.add_task(up)
        self.add_task(downstream)
        if key is not None and any(e.downstream is downstream and e.key == key for e in self.edges):
            raise FlowError(f"task {downstream.name!r} already has an input named {key!r}")
        edge = Edge(up, downstream, key, mapped)
        if self._reaches(downstream, up):
            raise FlowError(
                f"adding {up.name!r} -> {downstream.name!r} would make a cycle in flow {self.name!r}"
            )
        self.edges.append(edge)
        self._up.setdefault(downstream, []).append(edge)
        self._down.setdefault(up, []).append(edge)
        self._version += 1
        return edge

    def _reaches(self, start: Task, goal: Task) -> bool:
        """Whether ``goal`` is ``start`` or downstream of it."""
        seen, stack = set(), [start]
        while stack:
            t = stack.pop()
            if t is goal:
                return True
            if t not in seen:
                seen.add(t)
                stack.extend(e.downstream for e in self._down.get(t, ()))
        return False

    def set_dependencies(
        self,
        task: Task,
        upstream_tasks: Iterable[Any] | None = None,
        keyword_inputs: Mapping[str, Any] | None = None,
        mapped: bool = False,
    ) -> None:
        """Add ``task`` with its inputs (tasks or constants) and ordering-only upstreams."""
        self.add_task(task)
        for up in upstream_tasks or ():
            self.add_edge(up, task, mapped=mapped)
        for key, value in (keyword_inputs or {}).items():
            is_mapped = mapped and not isinstance(value, Unmapped)
            if isinstance(value, Unmapped):
                value = value.value
            self.add_edge(value, task, key=key, mapped=is_mapped)

    # -- reading the graph ----------------------------------------------------------------
    def upstream_edges(self, task: Task) -> list[Edge]:
        return list(self._up.get(task, ()))

    def downstream_edges(self, task: Task) -> list[Edge]:
        return list(self._down.get(task, ()))

    def parameters(self) -> list[Parameter]:
        return list(plan_of(self).parameters)

    def terminal_tasks(self) -> list[Task]:
        return list(plan_of(self).terminal)

    def reference_tasks(self) -> list[Task]:
        """Tasks whose states decide the flow's state (default: the terminal ones)."""
        return self._reference_tasks or self.terminal_tasks()

    def set_reference_tasks(self, tasks: Iterable[Task]) -> None:
        self._reference_tasks = list(tasks)

    def sorted_tasks(self) -> list[Task]:
        """Tasks in an order where every upstream comes first (worked out once per shape)."""
        return list(plan_of(self).order)

    def get_tasks(self, name: str | None = None) -> list[Task]:
        """The flow's tasks, in the order they were added; with ``name``, those of that name.

        Example:
            >>> from resultkit import Flow, task
            >>> with Flow("etl") as flow:
            ...     _ = task(lambda: 1, name="extract")()
            >>> [t.name for t in flow.get_tasks()], len(flow.get_tasks("load"))
            (['extract'], 0)
        """
        return [t for t in self.tasks if name is None or t.name == name]

    # -- running ------------------------------------------------------------------------
    def run(
        self,
        parameters: Mapping[str, Any] | None = None,
        task_states: Mapping[Task, State] | None = None,
        executor: Executor | None = None,
        *,
        run_id: str | None = None,
        **context_keys: Any,
    ) -> State:
        """Run the flow and return its State; ``state.result[task]`` is each task's State.

        Args:
            parameters: values of the flow's Parameters.
            task_states: states to start from, e.g. ``{paused_task: Resume()}``. When
                given, tasks that finished in this flow's previous run are reused,
                not rerun.
            executor: overrides the flow's executor.
            run_id: this run's id (``{flow_run_id}`` in templates, ``state.run_id``);
                generated when not given. Name it to :meth:`resume` the run later.
            context_keys: extra keys for the context and templates; ``caches=`` gives
                the run its own output cache store (a ``resultkit.caching.CacheStore``,
                or a Result to keep entries on), over ``Flow(cache_store=...)``.
                ``refresh=True`` (or ``refresh=[task, "name"]``) recomputes and
                overwrites the caches and targets of every task (of those tasks);
                so does the environment variable ``RESULTKIT_REFRESH=1``.
        """
        from .scheduler import FlowRunner

        with entered_from_user():  # a warning on a worker thread names this call's line
            return FlowRunner(self, executor or self.executor).run(
                parameters=parameters,
                task_states=task_states,
                context_keys=context_keys,
                run_id=run_id,
            )

    def resume(
        self,
        run_id: str,
        task_states: Mapping[Task, State] | None = None,
        executor: Executor | None = None,
        **context_keys: Any,
    ) -> State:
        """Continue the recorded run ``run_id`` (killed, failed or paused) where it stopped.

        Every task run that stored its value (a checkpoint or a target) in
        that run is reused, its value read from its location when a task
        needs it; the others run, with the run's parameters. A task paused
        in that run starts from its recorded inputs: approve it with
        ``task_states={task: Resume()}``. The run keeps its id and records.

        Example:
            >>> flow.run(run_id="nightly-2026-11-25")      # doctest: +SKIP
            ... (the process is killed)
            >>> flow.resume("nightly-2026-11-25")          # doctest: +SKIP
        """
        from .scheduler import FlowRunner

        with entered_from_user():
            return FlowRunner(self, executor or self.executor).resume(
                run_id, task_states=task_states, context_keys=context_keys
            )

    def __repr__(self) -> str:
        return f"<Flow: {self.name} ({len(self.tasks)} tasks)>"
