"""What a run reads of a flow's graph, worked out once per shape of the flow.

A flow run needs the tasks in dependency order, each task's upstream edges,
how many distinct upstream tasks it waits for, which tasks it releases, its
input names and the terminal tasks. None of that changes between runs of an
unchanged flow, so a :class:`FlowPlan` is made at the first run and kept on
the flow until a task or an edge is added (``Flow._version``). Formatted
targets are remembered beside it (:class:`TargetMemo`).
"""

from __future__ import annotations

import collections
import string
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from ..results import FormattedLocation, Result, StorageResult
from .state import Success
from .task import Parameter, Task

if TYPE_CHECKING:
    from .flow import Edge, Flow, _Constant

__all__ = ["FlowPlan", "TargetMemo", "plan_of"]


class FlowPlan:
    """The graph of one shape of a flow, read-only (see the module docstring).

    Example:
        >>> from resultkit import Flow, task
        >>> with Flow("two") as flow:
        ...     b = task(lambda a: a)(task(lambda: 1)())
        >>> plan = plan_of(flow)
        >>> [t.name for t in plan.order], plan.waits_for[b]
        (['<lambda>', '<lambda>'], 1)
    """

    __slots__ = ("shape", "order", "roots", "upstream", "waits_for", "releases", "mapped",
                 "inputs", "terminal", "parameters", "positions", "targets",
                 "constants")  # fmt: skip

    def __init__(self, flow: Flow, shape: tuple[int, int, int]) -> None:
        self.shape = shape
        up: dict[Task, tuple[Edge, ...]] = {t: tuple(flow._up.get(t, ())) for t in flow.tasks}
        #: Each task's upstream edges, in the order they were added.
        self.upstream = up
        #: How many distinct upstream tasks each task waits for.
        self.waits_for = {t: len({e.upstream for e in edges}) for t, edges in up.items()}
        # Distinct downstream tasks in the order their edges were added: a run
        # releases them in that order (deterministic, unlike a set's order).
        self.releases: dict[Task, tuple[Task, ...]] = {
            t: tuple(dict.fromkeys(e.downstream for e in flow._down.get(t, ()))) for t in flow.tasks
        }
        #: Tasks with a mapped input (run as children).
        self.mapped = frozenset(t for t, edges in up.items() if any(e.mapped for e in edges))
        #: Each task's input names.
        self.inputs = {
            t: frozenset(e.key for e in edges if e.key is not None) for t, edges in up.items()
        }
        self.order = tuple(self._sorted(flow))
        #: Tasks without upstream tasks, in order: a run starts with them.
        self.roots = tuple(t for t in self.order if self.waits_for[t] == 0)
        #: The flow's Parameters, in the order they were added.
        self.parameters = tuple(t for t in flow.tasks if isinstance(t, Parameter))
        #: Each task's position in ``flow.tasks`` (by identity), as run records number them.
        self.positions = {id(t): i for i, t in enumerate(flow.tasks)}
        feeding = {e.upstream for e in flow.edges}
        self.terminal = tuple(t for t in flow.tasks if t not in feeding)
        #: Targets formatted in earlier runs of this shape of the flow.
        self.targets = TargetMemo()
        #: The Success state of each constant input, made at its first run (a constant's
        #: state is never changed, and runs only read its value).
        self.constants: dict[Task, Success] = {}

    def constant_state(self, constant: _Constant) -> Success:
        """The Success state holding ``constant``'s value, the same for every run."""
        state = self.constants.get(constant)
        if state is None:
            state = self.constants[constant] = Success(result=constant.value)
        return state

    def _sorted(self, flow: Flow) -> list[Task]:
        """Kahn's order, exactly as ``Flow.sorted_tasks`` has always given it."""
        order: list[Task] = []
        indegree = {t: 0 for t in flow.tasks}
        for e in flow.edges:
            indegree[e.downstream] += 1
        ready = collections.deque(t for t in flow.tasks if indegree[t] == 0)
        while ready:
            t = ready.popleft()
            order.append(t)
            for e in flow._down.get(t, ()):
                indegree[e.downstream] -= 1
                if indegree[e.downstream] == 0:
                    ready.append(e.downstream)
        return order


def plan_of(flow: Flow) -> FlowPlan:
    """``flow``'s plan: the one kept on it while its shape is unchanged, else a new one."""
    shape = (getattr(flow, "_version", 0), len(flow.tasks), len(flow.edges))
    plan: FlowPlan | None = getattr(flow, "_plan", None)
    if plan is None or plan.shape != shape:
        plan = FlowPlan(flow, shape)
        flow._plan = plan
    return plan


#: Values whose formatting is a function of their type and equality alone (not
#: float: 0.0 == -0.0; not datetime: equal instants in other zones print apart).
_PLAIN = frozenset({str, int, bool, type(None)})
#: Result classes (by class) whose format_map is the plain one of StorageResult.
_PLAIN_FORMATTING: dict[type, bool] = {}
_LOCATING = ("format_map", "_canonical_location", "_locate", "_located_key", "_key")


def _formats_plainly(result: Result) -> bool:
    """Whether ``result`` formats with StorageResult's own methods (no override)."""
    cls = type(result)
    known = _PLAIN_FORMATTING.get(cls)
    if known is None:
        known = isinstance(result, StorageResult) and all(
            getattr(cls, name) is getattr(StorageResult, name) for name in _LOCATING
        )
        _PLAIN_FORMATTING[cls] = known
    return known


def _template_fields(template: str) -> tuple[str, ...] | None:
    """The top-level names ``template`` uses, or None if its output may depend on more
    (a positional field, a field inside a format spec) or it does not parse."""
    names = []
    try:
        for _, name, spec, _ in string.Formatter().parse(template):
            if name is None:
                continue
            top = name.split(".")[0].split("[")[0]
            if not top.isidentifier() or (spec and "{" in spec):
                return None
            names.append(top)
    except ValueError:
        return None
    return tuple(dict.fromkeys(names))


class _Formatted:
    """One remembered target: what it was formatted from, and the location."""

    __slots__ = ("template", "result", "storage", "root", "fields", "checks", "location")

    def __init__(self, template: str, result: Result, fields: tuple[str, ...],
                 values: tuple[Any, ...], location: FormattedLocation) -> None:  # fmt: skip
        self.template = template
        self.result = result
        self.storage = result.storage  # type: ignore[attr-defined]
        self.root = self.storage.root_url
        self.fields = fields
        #: (name, value, type of the value) of each field.
        self.checks = tuple((n, v, type(v)) for n, v in zip(fields, values, strict=True))
        self.location = location


_MISSING = object()


def _same(entry: _Formatted, result: Result, keys: Mapping[str, Any]) -> FormattedLocation | None:
    """``entry``'s location if ``result`` is still on its storage and ``keys`` hold its values."""
    storage = entry.storage
    if result.storage is not storage or storage.root_url != entry.root:  # type: ignore[attr-defined]
        return None
    for name, value, kind in entry.checks:
        found = keys.get(name, _MISSING)
        # The type first: a value of a plain type compares safely (an array would not).
        if type(found) is not kind or found != value:
            return None
    return entry.location


class TargetMemo:
    """Targets formatted in earlier runs, reused while everything they came from is the same.

    An entry is reused only for the same template object, the same Result
    object on the same storage root, and template values equal to the ones
    it was formatted with and of the same plain types (``str``, ``int``,
    ``bool``, ``None``), for which equal values format alike. The Result's
    own checks run when it reads or writes the location, as before.
    """

    __slots__ = ("_entries", "_fields")

    def __init__(self) -> None:
        self._entries: dict[Task, _Formatted] = {}
        self._fields: dict[str, tuple[str, ...] | None] = {}

    def get(self, task: Task, result: Result, keys: Mapping[str, Any]) -> FormattedLocation | None:
        """The location remembered for ``task`` formatted with ``keys``, if still valid."""
        entry = self._entries.get(task)
        if entry is None or task.target is not entry.template or result is not entry.result:
            return None
        return _same(entry, result, keys)

    def get_by_inputs(
        self, task: Task, result: Result, inputs: Mapping[str, Any]
    ) -> FormattedLocation | None | bool:
        """:meth:`get` for a run with these ``inputs``, when its remembered template uses no
        other key (inputs win over every other key); ``False`` when it needs the run's
        other keys too (then ask :meth:`get`)."""
        entry = self._entries.get(task)
        if entry is None or task.target is not entry.template or result is not entry.result:
            return None
        storage = entry.storage
        if result.storage is not storage or storage.root_url != entry.root:  # type: ignore[attr-defined]
            return None
        for name, value, kind in entry.checks:  # one pass: in the inputs, and the same
            found = inputs.get(name, _MISSING)
            if found is _MISSING:
                return False
            if type(found) is not kind or found != value:
                return None
        return entry.location

    def put(
        self, task: Task, result: Result, keys: Mapping[str, Any], location: FormattedLocation
    ) -> None:
        """Remember ``location`` as ``task``'s target formatted with ``keys``, if it may be."""
        template = task.target
        if not isinstance(template, str) or not _formats_plainly(result):
            return
        if template in self._fields:
            fields = self._fields[template]
        else:
            fields = self._fields[template] = _template_fields(template)
        if fields is None:
            return
        values = []
        for name in fields:
            value = keys.get(name, _MISSING)
            if type(value) not in _PLAIN:
                return  # missing, or not a plain value
            values.append(value)
        self._entries[task] = _Formatted(template, result, fields, tuple(values), location)
