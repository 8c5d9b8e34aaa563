"""DaskExecutor: task runs on a ``dask.distributed`` cluster, values kept on the workers."""

from __future__ import annotations

import concurrent.futures as cf
import copy
import logging
import traceback
import uuid
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

from ..caching import readable_location
from ..errors import ConfigurationError
from ..results import Result
from .context import config
from .deferred import Deferred, RemoteValue, StoredValue, input_refs
from .executors import Executor
from .state import Mapped, State

if TYPE_CHECKING:
    from .task_runner import TaskRunner
    from .unit import RunUnit

__all__ = ["DaskExecutor", "RemoteTaskError"]

logger = logging.getLogger("resultkit")

#: Values up to this size (pickled) come back to the flow process with their
#: state, so templates, triggers and mapping see them; larger ones stay on
#: the worker that made them.
INLINE_LIMIT = 64 * 1024


def _distributed() -> Any:
    try:
        import distributed
    except ImportError as exc:
        raise ConfigurationError(
            "DaskExecutor needs dask.distributed: pip install 'resultkit[dask]'"
        ) from exc
    return distributed


def _persisted(result: Result) -> str | None:
    """The location a value was written to, if it can be read back from another process."""
    return None if isinstance(result, Deferred) else readable_location(result)


def _small(value: Any) -> bool:
    """Whether ``value`` is cheap to send to the flow process (<= INLINE_LIMIT pickled)."""
    if value is None or isinstance(value, bool | int | float | complex):
        return True
    if isinstance(value, str | bytes | bytearray):
        return len(value) <= INLINE_LIMIT
    nbytes = getattr(value, "nbytes", None)  # arrays, frames: never pickled to be measured
    if isinstance(nbytes, int) and nbytes > INLINE_LIMIT:
        return False
    try:
        import cloudpickle

        return len(cloudpickle.dumps(value)) <= INLINE_LIMIT
    except Exception:
        return False


class RemoteTaskError(Exception):
    """A task's exception that could not be sent from its worker, as text (and traceback)."""

    def __init__(self, message: str, remote_traceback: str = "") -> None:
        super().__init__(message)
        self.remote_traceback = remote_traceback

    def __reduce__(self) -> Any:
        return (RemoteTaskError, (str(self), self.remote_traceback))


def _travels(exc: BaseException) -> bool:
    import cloudpickle

    try:
        cloudpickle.loads(cloudpickle.dumps(exc))
    except Exception:
        return False
    return True


def _length(value: Any) -> int | None:
    try:
        return len(value)
    except Exception:
        return None


def _run_unit(
    runner: TaskRunner, unit: RunUnit, refs: Mapping[str, State], settings: Mapping[str, Any]
) -> State:
    """On a worker: resolve the deferred inputs, then run the unit like any executor would."""
    for name, value in settings.items():  # the flow process's config, for this run
        setattr(config, name, value)
    unit.refs = dict(refs)  # the runner resolves deferred inputs, reporting failures
    return runner.run(unit)


def _light(state: State, key: str) -> State:
    """On a worker: ``state`` without a large value (it stays here, under ``key``)."""
    if isinstance(state, Mapped):
        return state
    out = copy.copy(state)
    if state.exception is not None and not _travels(state.exception):
        # An exception the flow process could not unpickle would lose the user's message.
        out.exception = RemoteTaskError(
            f"{type(state.exception).__name__}: {state.exception}",
            "".join(traceback.format_exception(state.exception)),
        )
    result = state._result
    value = result.value
    if _small(value):
        return out
    location = _persisted(result)
    if location is not None:
        # Read back from storage where needed: a lost worker costs nothing.
        reader = copy.copy(result)
        reader.value = None
        out._result = StoredValue(reader, location, _length(value))
        out._result.record = result.record
    else:
        out._result = RemoteValue(key, _length(value))
    return out


class DaskExecutor(Executor):
    """Runs task runs on a ``dask.distributed`` cluster.

    Each task run (and each mapped child) is one Dask task, keyed by its
    task run. Workers write checkpoints and targets straight to storage and
    keep the values they compute; the flow process receives states, with
    values only when they are small (up to 64 KiB) or stored (then as a
    location read where needed). Mapped children whose targets exist are
    found with one bulk check before anything is submitted, and never take
    a worker slot. If a worker is lost, Dask reruns its task runs elsewhere;
    inputs that were written to storage are read from there, not recomputed.

    Args:
        address: a running scheduler (``"tcp://host:8786"``). ``None`` starts a
            ``distributed.LocalCluster`` for each flow run and closes it after.
        cluster_kwargs: keywords for that ``LocalCluster`` (e.g. ``n_workers=2``).
        client_kwargs: keywords for ``distributed.Client``.

    Example:
        >>> flow.run(executor=DaskExecutor(cluster_kwargs={"n_workers": 2}))  # doctest: +SKIP
    """

    remote = True

    def __init__(
        self,
        address: str | None = None,
        cluster_kwargs: Mapping[str, Any] | None = None,
        client_kwargs: Mapping[str, Any] | None = None,
    ) -> None:
        _distributed()  # a missing extra fails here, with the install line
        self.address = address
        self.cluster_kwargs = dict(cluster_kwargs or {})
        self.client_kwargs = dict(client_kwargs or {})
        self.client: Any = None
        self._cluster: Any = None
        #: Task runs submitted to the cluster in the current (or last) flow run.
        self.submitted = 0
        self._full: dict[str, Any] = {}

    def __getstate__(self) -> dict[str, Any]:  # a Flow holding it may be pickled
        state = dict(self.__dict__)
        state.update(client=None, _cluster=None, _full={})
        return state

    def start(self) -> None:
        distributed = _distributed()
        self.submitted = 0
        self._full = {}
        if self.address is not None:
            self.client = distributed.Client(self.address, **self.client_kwargs)
            return
        kwargs: dict[str, Any] = {"n_workers": 2, "threads_per_worker": 1, "processes": True}
        kwargs.update(dashboard_address=":0")  # a free port: never a clash with another cluster
        kwargs.update(self.cluster_kwargs)
        self._cluster = distributed.LocalCluster(**kwargs)
        self.client = distributed.Client(self._cluster, **self.client_kwargs)

    def shutdown(self) -> None:
        self._full = {}
        if self.client is not None:
            self.client.close()
            self.client = None
        if self._cluster is not None:
            self._cluster.close()
            self._cluster = None

    def _bridge(self, fut: Any, convert: Callable[[Any], Any]) -> cf.Future[Any]:
        """A ``concurrent.futures`` future settled when the Dask future is."""
        out: cf.Future[Any] = cf.Future()

        def done(f: Any) -> None:
            try:
                out.set_result(convert(f.result()))
            except BaseException as exc:
                out.set_exception(exc)

        fut.add_done_callback(done)
        return out

    def submit(self, fn: Callable[..., Any], *args: Any) -> cf.Future[Any]:
        if self.client is None:
            self.start()
        return self._bridge(self.client.submit(fn, *args, pure=False), lambda v: v)

    def submit_unit(self, runner: TaskRunner, unit: RunUnit) -> cf.Future[State]:
        if self.client is None:
            self.start()
        run_id = unit.keys.get("task_run_id") or uuid.uuid4().hex
        key = f"{unit.task.slug or unit.task.name}-{unit.full_name}-{run_id}"
        refs = {k: self._full[k] for k in input_refs(unit.inputs)}
        settings = {"checkpointing": config.checkpointing, "lock_lease": config.lock_lease}
        full = self.client.submit(_run_unit, runner, unit, refs, settings, key=key, pure=False)
        self._full[key] = full
        light = self.client.submit(_light, full, key, key=f"light-{key}", pure=False)
        self.submitted += 1
        return self._bridge(light, lambda state: self._attach(state, key))

    def _attach(self, state: State, key: str) -> State:
        """Keep the worker's copy only if the value lives nowhere else."""
        if isinstance(state._result, RemoteValue):
            state._result._fetcher = self._fetch
        else:
            # Inline or stored: holding the future would make Dask recompute the
            # task (run its body again) if the worker holding it were lost.
            full = self._full.pop(key, None)
            if full is not None:
                full.release()
        return state

    def _fetch(self, key: str) -> Any:
        if self.client is None or key not in self._full:
            raise RuntimeError(
                f"the value of {key} stayed on a Dask worker and the cluster is closed"
            )
        return self._full[key].result().result

    def gather(self, states: Mapping[Any, State]) -> None:
        """Fetch the values still on the workers into ``states`` (before the cluster closes)."""
        remote: list[RemoteValue] = []
        for state in states.values():
            for s in [state, *getattr(state, "map_states", [])]:
                if isinstance(s._result, RemoteValue):
                    remote.append(s._result)
        if not remote:
            return
        futures = [self._full[r.key] for r in remote]
        full_states = self.client.gather(futures)
        for r, full in zip(remote, full_states, strict=True):
            r.value = full.result

    def __repr__(self) -> str:
        where = self.address or f"LocalCluster({self.cluster_kwargs or ''})"
        return f"DaskExecutor({where})"
