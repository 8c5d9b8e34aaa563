"""Run records: what a flow run finished, kept on a Result backend, so it can be resumed.

A run writes, as it goes, one small JSON record per task run whose value is
stored (a checkpoint or a target it wrote) and per paused task (its inputs
written as values beside it), under ``<run_id>/`` of the run store::

    <run_id>/run.json                   flow, parameters' location, status, times
    <run_id>/parameters                 the parameters (the store's serializer)
    <run_id>/tasks/0003.json            task #3 of the flow finished; its value's location
    <run_id>/tasks/0004.17.json         mapped child 17 of task #4
    <run_id>/inputs/0005/<name>         a paused task's input

Values are never inline: a record names a location. Tasks are numbered by
their position in the flow (the order the flow file builds them), which is
the same in every process that builds the flow from the same code.
``flow.resume(run_id)`` reuses every recorded task (its value read from its
location when needed) and runs the rest.
"""

from __future__ import annotations

import logging
import os
import sys
from collections.abc import Mapping
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any

from ..caching import inputs_token, readable_location
from ..errors import (
    ConfigurationError,
    ResultError,
    warn_user,
)
from ..results import LocalResult, StorageResult, from_url
from ..serializers import JSONSerializer
from .context import config, home_folder
from .state import Cached, Paused, State, Success

if TYPE_CHECKING:
    from .flow import Flow
    from .task import Task

__all__ = ["RunRecords", "run_store_from", "default_run_store", "flow_file"]

logger = logging.getLogger("resultkit")

#: The setting that turns run records off (``RESULTKIT_RUN_STORE=off``, ``config.run_store = "off"``).
OFF = "off"


def run_store_from(value: Any, what: str) -> StorageResult | None:
    """The run store a setting names: a StorageResult, a URL or folder, or ``"off"`` (None)."""
    if value is False or (isinstance(value, str) and value.strip().lower() == OFF):
        return None
    if isinstance(value, StorageResult):
        return value
    if isinstance(value, str) and value.strip():
        return from_url(value.strip())
    raise ConfigurationError(
        f"{what} must be a Result (e.g. S3Result(...)), a URL or folder, or 'off'; got {value!r}"
    )


#: Default run stores made so far (see :func:`default_run_store`).
_DEFAULT_STORES: dict[tuple[str, str | None, str | None], LocalResult] = {}


def default_run_store() -> StorageResult | None:
    """Where runs are recorded when the flow names no ``run_store``.

    ``config.run_store`` if set, else the environment variable
    ``RESULTKIT_RUN_STORE`` (a URL, or ``off``), else the folder ``runs``
    under ``RESULTKIT_HOME`` (default ``~/.resultkit``), beside the
    default output cache store.
    """
    if config.run_store is not None:
        return run_store_from(config.run_store, "config.run_store")
    env = os.environ.get("RESULTKIT_RUN_STORE", "")
    if env.strip():
        return run_store_from(env, "RESULTKIT_RUN_STORE")
    folder = home_folder("runs")
    # One Result per folder and the settings a LocalResult reads from the environment
    # when it is made, not one each run (a construction is ~0.2 ms: most of an empty run).
    environ = os.environ
    made = (folder, environ.get("RESULTKIT_SIGNING_KEY"), environ.get("RESULTKIT_LOCAL_EXCHANGE"))
    store = _DEFAULT_STORES.get(made)
    if store is not None and not os.path.isdir(folder):
        store = None  # gone or replaced since: made again (and refused if not a folder)
    if store is None:
        store = LocalResult(dir=folder)
        if len(_DEFAULT_STORES) >= 16:
            _DEFAULT_STORES.clear()
        _DEFAULT_STORES[made] = store
    return store


def _now() -> str:
    return datetime.now(timezone.utc).isoformat()


def _stored_location(state: State) -> str | None:
    """Where the state's value is stored for another process (a deferred one too), or None."""
    return readable_location(state._result)


class RunRecords:
    """The records of one flow run on ``store`` (see the module docstring).

    Writing a record never fails a task: a failed write warns, and a resume
    then runs that task again.
    """

    def __init__(
        self,
        store: StorageResult,
        run_id: str,
        flow: Flow,
        positions: Mapping[int, int] | None = None,
    ) -> None:
        self.store = store
        self.run_id = run_id
        self.flow_name = flow.name
        self._tasks = list(flow.tasks)
        #: Each task's number by identity (``positions``: the flow's plan already has them).
        self._index = (
            positions if positions is not None else {id(t): i for i, t in enumerate(self._tasks)}
        )
        self._docs = store.copy()
        self._docs.serializer = JSONSerializer()
        self._docs.location = None
        self._values = store.copy()
        self._values.location = None

    def __getstate__(self) -> dict[str, Any]:
        state = dict(self.__dict__)
        state.pop("_index")  # identities change when sent to another process
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self._index = {id(t): i for i, t in enumerate(self._tasks)}

    # -- writing ------------------------------------------------------------------------
    def _task_key(self, task: Task, map_index: int | None) -> str:
        i = self._index[id(task)]
        return f"{i:04d}" if map_index is None else f"{i:04d}.{map_index}"

    def _warn(self, what: str, exc: Exception) -> None:
        warn_user(
            f"run {self.run_id}: could not record {what} ({exc}); a resume would run it again"
        )

    def start(self, parameters: Mapping[str, Any], flow_file: str | None) -> None:
        """Note the run's start; written with its first record (a run that stores
        nothing, such as one served by its targets, writes no record at all)."""
        self._parameters = dict(parameters)
        self._flow_file = flow_file
        self._started = _now()
        self._written = False

    def keep_started(self, started: str) -> None:
        """Record ``started`` as the run's start (a resume continues an earlier run)."""
        self._started = started

    def start_now(self) -> None:
        """Write the run's start now (before task runs go to other processes)."""
        try:
            self.ensure_started()
        except ResultError as exc:
            self._warn("the start of the run", exc)

    def ensure_started(self) -> None:
        """Write the run's document and parameters, once."""
        if not self._written:
            self._values.write(self._parameters, f"{self.run_id}/parameters")
            self._write_run("running", self._flow_file)
            self._written = True

    def _write_run(self, status: str, flow_file: str | None, ended: str | None = None) -> None:
        doc = {
            "run_id": self.run_id,
            "flow": self.flow_name,
            "status": status,
            "started": self._started,
            "ended": ended,
            "flow_file": flow_file,
        }
        self._docs.write(doc, f"{self.run_id}/run.json")

    def finish(self, final: State, others_may_record: bool = True) -> None:
        """Record how the run ended (``Success``, ``Failed``, ``Paused``), if it recorded anything.

        Task runs on other processes (Dask workers) may have started the
        records: with ``others_may_record`` the store is asked. Without it
        (task runs in this process, which share this object) it is not.
        """
        try:
            if self._written or (
                others_may_record and self._docs.exists(f"{self.run_id}/run.json")
            ):
                self._write_run(type(final).__name__, self._flow_file, _now())
        except ResultError as exc:
            self._warn("the end of the run", exc)

    def task_done(
        self, task: Task, map_index: int | None, state: State, inputs: Mapping[str, Any]
    ) -> None:
        """Record a task run's final state if a resume can reuse it.

        Recorded: a success whose value is stored (a checkpoint or a target
        it wrote), and a paused task with its inputs. A value found in a
        target or cache is found again on resume, so is not recorded.
        """
        if isinstance(state, Cached) or id(task) not in self._index:
            return  # found in a target or cache: found there again on resume
        key = self._task_key(task, map_index)
        record: dict[str, Any] = {
            "name": task.name,
            "map_index": map_index,
            "state": type(state).__name__,
            "message": state.message,
            "run_count": state.run_count,
        }
        try:
            if isinstance(state, Success) and not isinstance(state, Cached):
                location = _stored_location(state)
                if location is None:
                    return
                record["location"] = location
                # A resume reuses it only while both still hold: the same bytes at
                # the location, the same inputs (another run may have overwritten
                # the location; the flow's constants or upstream values may differ).
                stored = state._result.record
                record["digest"] = stored.digest if stored is not None else None
                record["input_tokens"] = inputs_token(inputs)
            elif isinstance(state, Paused):
                inputs = {}
                for name, value in (state.cached_inputs or {}).items():
                    at = f"{self.run_id}/inputs/{key}/{name}"
                    inputs[name] = str(self._values.write(value.value, at).location)
                record["inputs"] = inputs
            else:
                return
            self.ensure_started()
            self._docs.write(record, f"{self.run_id}/tasks/{key}.json")
        except ResultError as exc:
            self._warn(f"task {task.name!r}", exc)


def flow_file() -> str | None:
    """The file the flow process runs (recorded so ``resultkit resume`` can load the flow)."""
    main = sys.modules.get("__main__")
    path = getattr(main, "__file__", None)
    return os.path.abspath(path) if isinstance(path, str) else None
