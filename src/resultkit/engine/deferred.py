"""Values that are not in the flow process: held by a remote executor, or in storage.

On a remote executor (Dask) a task's value stays where it was computed.
The flow process only sees a *deferred* Result standing for it: the state
types drive the run, the values travel worker to worker. A deferred value is
fetched on first use of ``.value`` (on the flow process, only when the user
asks for it), and resolved on the worker that needs it as an input:

- :class:`RemoteValue`: in the executor's memory (a Dask future's data);
- :class:`StoredValue`: written to storage (a checkpoint or a target), so it
  is read from there: a lost worker costs nothing, the value is not recomputed;
- :class:`DeferredList`: the inputs of a reduce over a mapped task.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from ..results import Result
from ..serializers import PickleSerializer

__all__ = [
    "Deferred",
    "RemoteValue",
    "StoredValue",
    "DeferredList",
    "ChildValues",
    "input_refs",
    "has_deferred",
]

_UNSET: Any = object()


class Deferred(Result):
    """A value fetched on first use; ``length`` is known without fetching (for mapping)."""

    # Not a storage backend: the Prefect-1-style method check does not apply.
    _implements_storage = True

    def __init__(self, length: int | None = None) -> None:
        self.location = None
        self.record = None
        self.serializer = PickleSerializer()
        self.length = length
        self._value: Any = _UNSET

    @property
    def value(self) -> Any:
        if self._value is _UNSET:
            self._value = self._fetch()
        return self._value

    @value.setter
    def value(self, value: Any) -> None:
        self._value = value

    @property
    def fetched(self) -> bool:
        """Whether the value is in this process already."""
        return self._value is not _UNSET

    def _fetch(self) -> Any:
        raise NotImplementedError

    def resolve(self, refs: Mapping[str, Any]) -> Any:
        """The value, on a worker: ``refs`` maps executor keys to their (full) task states."""
        raise NotImplementedError

    def refs(self) -> set[str]:
        """The executor keys this value needs on the worker that resolves it."""
        return set()

    def item(self, index: int) -> Any:
        """The deferred ``value[index]`` (a mapped child's input)."""
        return _Item(self, index)

    # Never fetch to compare or print.
    def __eq__(self, other: object) -> bool:
        return self is other

    def __hash__(self) -> int:
        return id(self)

    def __getstate__(self) -> dict[str, Any]:
        state = dict(self.__dict__)
        state.pop("_value", None)  # a fetched copy stays where it was fetched
        state.pop("_fetcher", None)
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self._value = _UNSET


class RemoteValue(Deferred):
    """A task's value held by the executor under ``key``."""

    def __init__(
        self, key: str, length: int | None, fetcher: Callable[[str], Any] | None = None
    ) -> None:
        super().__init__(length)
        self.key = key
        self._fetcher = fetcher

    def _fetch(self) -> Any:
        fetcher = getattr(self, "_fetcher", None)
        if fetcher is None:
            raise RuntimeError(f"the value of {self.key} is not available in this process")
        return fetcher(self.key)

    def resolve(self, refs: Mapping[str, Any]) -> Any:
        return refs[self.key].result

    def refs(self) -> set[str]:
        return {self.key}

    def __repr__(self) -> str:
        return f"<RemoteValue {self.key}>"


class StoredValue(Deferred):
    """A value written at ``location`` of ``result``; read (and verified) on first use."""

    def __init__(self, result: Result, location: str, length: int | None = None) -> None:
        super().__init__(length)
        self.result = result
        self.location = location
        self.serializer = result.serializer

    def _fetch(self) -> Any:
        stored = self.result.read(self.location)
        self.record = getattr(stored, "record", None)
        return stored.value

    def resolve(self, refs: Mapping[str, Any]) -> Any:
        return self.value

    def __repr__(self) -> str:
        return f"<StoredValue {self.location}>"


class _Item(Deferred):
    """Element ``index`` of a deferred sequence."""

    def __init__(self, parent: Deferred, index: int) -> None:
        super().__init__(None)
        self.parent = parent
        self.index = index

    def _fetch(self) -> Any:
        return self.parent.value[self.index]

    def resolve(self, refs: Mapping[str, Any]) -> Any:
        return self.parent.resolve(refs)[self.index]

    def refs(self) -> set[str]:
        return self.parent.refs()

    def __repr__(self) -> str:
        return f"<{self.parent!r}[{self.index}]>"


class DeferredList(Deferred):
    """A list of values some of which are deferred (a mapped task's children)."""

    def __init__(self, items: list[Any]) -> None:
        super().__init__(len(items))
        self.items = items

    def _fetch(self) -> Any:
        return [i.value if isinstance(i, Deferred) else i for i in self.items]

    def resolve(self, refs: Mapping[str, Any]) -> Any:
        return [i.resolve(refs) if isinstance(i, Deferred) else i for i in self.items]

    def refs(self) -> set[str]:
        return set().union(*(i.refs() for i in self.items if isinstance(i, Deferred)))

    def item(self, index: int) -> Any:
        return self.items[index]

    def __repr__(self) -> str:
        return f"<DeferredList of {len(self.items)}>"


class ChildValues(Deferred):
    """A mapped task's value: its children's values, gathered on first use."""

    def __init__(self, states: list[Any]) -> None:
        super().__init__(len(states))
        self.states = states

    def _fetch(self) -> Any:
        return [s.result for s in self.states]

    def __repr__(self) -> str:
        return f"<values of {len(self.states)} mapped children>"


def input_refs(inputs: Mapping[str, Any]) -> set[str]:
    """The executor keys that ``inputs``' deferred values need."""
    keys: set[str] = set()
    for v in inputs.values():
        if isinstance(v, Deferred):
            keys |= v.refs()
    return keys


def has_deferred(inputs: Mapping[str, Any]) -> bool:
    for value in inputs.values():  # noqa: SIM110 (a loop costs less than any(): every run)
        if isinstance(value, Deferred):
            return True
    return False
