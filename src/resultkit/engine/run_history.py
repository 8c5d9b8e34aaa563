"""Reading run records: the runs a store holds, and the states a resume starts from."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from ..errors import FlowError, ResultError, ResultNotFoundError
from ..results import Result, StorageResult
from ..serializers import JSONSerializer
from .deferred import StoredValue
from .runs import default_run_store, run_store_from
from .state import Paused, State, Success

if TYPE_CHECKING:
    from .flow import Flow
    from .task import Task

logger = logging.getLogger("resultkit")

__all__ = ["RunInfo", "TaskRecord", "read_run", "list_runs", "resumed_states"]


@dataclass
class TaskRecord:
    """What a run recorded of one task run."""

    index: int
    name: str
    map_index: int | None
    state: str
    message: str | None
    location: str | None = None
    inputs: dict[str, str] = field(default_factory=dict)
    run_count: int = 0
    #: The digest of the stored value and the tokens of the inputs, when recorded.
    digest: str | None = None
    input_tokens: dict[str, str] | None = None


@dataclass
class RunInfo:
    """A recorded run: its flow, status and the task runs it finished."""

    run_id: str
    flow: str
    status: str
    started: str
    ended: str | None = None
    flow_file: str | None = None
    parameters: dict[str, Any] = field(default_factory=dict)
    tasks: list[TaskRecord] = field(default_factory=list)
    #: How many task runs the run recorded (known without reading their records).
    recorded: int = 0


def read_run(store: StorageResult, run_id: str, *, tasks: bool = True) -> RunInfo:
    """The recorded run ``run_id``; :class:`~resultkit.errors.FlowError` if there is none.

    ``tasks=False`` reads only the run's document and parameters (no task records).
    """
    docs = store.copy()
    docs.serializer = JSONSerializer()
    docs.location = None
    try:
        doc = docs.read(f"{run_id}/run.json").value
        params = store.read(f"{run_id}/parameters").value
    except ResultNotFoundError:
        raise FlowError(
            f"no run {run_id!r} is recorded in {store.root_url} (a run is recorded once a "
            "task stores its value: a checkpoint or a target); list the recorded runs with "
            "resultkit.runs.list_runs(), or give the run_store that run used"
        ) from None
    info = RunInfo(
        run_id=run_id,
        flow=str(doc["flow"]),
        status=str(doc["status"]),
        started=str(doc["started"]),
        ended=doc.get("ended"),
        flow_file=doc.get("flow_file"),
        parameters=dict(params),
    )
    prefix = store.storage_key(f"{run_id}/tasks") + "/"
    keys = sorted(k for k in store.storage.list(prefix) if k.endswith(".json"))
    info.recorded = len(keys)
    if not tasks:
        return info
    for key in keys:
        name = key[len(prefix) :]
        if not name.endswith(".json") or "/" in name:
            continue
        try:
            rec = docs.read(f"{run_id}/tasks/{name}").value
        except (ResultError, FileNotFoundError):
            continue  # written by a run killed mid-write: that task runs again
        info.tasks.append(
            TaskRecord(
                index=int(name.split(".")[0]),
                name=str(rec["name"]),
                map_index=rec.get("map_index"),
                state=str(rec["state"]),
                message=rec.get("message"),
                location=rec.get("location"),
                inputs=dict(rec.get("inputs") or {}),
                run_count=int(rec.get("run_count") or 0),
                digest=rec.get("digest"),
                input_tokens=rec.get("input_tokens"),
            )
        )
    return info


def list_runs(store: StorageResult | str | None = None) -> list[RunInfo]:
    """The runs recorded in ``store`` (default: the default run store), newest first.

    Their task records are not read (``get_run(run_id)`` reads them): listing
    costs one listing and two small reads a run.

    Example:
        >>> for run in list_runs():                                   # doctest: +SKIP
        ...     print(run.run_id, run.flow, run.status, run.started)
    """
    found = run_store_from(store, "list_runs(store)") if store is not None else default_run_store()
    if found is None:
        return []
    runs = []
    root = found.storage_key("run.json")[: -len("run.json")]  # the store's own prefix
    for key in found.storage.list(root):
        rel = key[len(root) :]
        if rel.endswith("/run.json") and rel.count("/") == 1:
            try:
                runs.append(read_run(found, rel.split("/")[0], tasks=False))
            except (FlowError, ResultError):
                continue
    return sorted(runs, key=lambda r: r.started, reverse=True)


def resumed_states(
    flow: Flow, info: RunInfo, reader: Any, run_store: StorageResult
) -> tuple[dict[Task, State], dict[tuple[int, int], State]]:
    """The states a resume starts from: of whole tasks, and of mapped children by position.

    ``reader(task)`` is the Result a task's values are read with.
    """
    if info.flow != flow.name:
        raise FlowError(
            f"run {info.run_id!r} is a run of flow {info.flow!r}, not {flow.name!r}; resume it "
            "with that flow"
        )
    whole: dict[Task, State] = {}
    children: dict[tuple[int, int], State] = {}
    for rec in info.tasks:
        if rec.index >= len(flow.tasks) or flow.tasks[rec.index].name != rec.name:
            raise FlowError(
                f"run {info.run_id!r} recorded task #{rec.index} as {rec.name!r}, but this flow's "
                f"task #{rec.index} is "
                f"{flow.tasks[rec.index].name if rec.index < len(flow.tasks) else 'missing'!r}: "
                "the flow changed since; start a new run instead"
            )
        task = flow.tasks[rec.index]
        if rec.state == "Paused":
            inputs: dict[str, Result] = {
                k: StoredValue(run_store, loc) for k, loc in rec.inputs.items()
            }
            state: State = Paused(f"resumed: {rec.message}", cached_inputs=inputs)
        elif rec.location is not None:
            result = reader(task)
            if not _still_there(result, rec):
                logger.info(
                    "Run %s: the value task %r stored at %s is gone or was overwritten since; "
                    "it runs again",
                    info.run_id,
                    rec.name,
                    rec.location,
                )
                continue
            state = Success(f"resumed from {rec.location}", StoredValue(result, rec.location))
            # Reused only for the same inputs (checked where the task would run).
            state.resumed_inputs = rec.input_tokens  # type: ignore[attr-defined]
        else:
            continue
        state.run_count = rec.run_count
        if rec.map_index is None:
            whole[task] = state
        else:
            children[(rec.index, int(rec.map_index))] = state
    return whole, children


def _still_there(result: Any, rec: TaskRecord) -> bool:
    """Whether the recorded value is still at its location, with the digest recorded."""
    if not isinstance(result, StorageResult):
        return True  # a Prefect-1-style Result: no record to compare
    try:
        found = result.stat(rec.location)
        if found is None or not result.exists(rec.location):  # a record left alone
            return False
    except ResultError:
        return False
    return rec.digest is None or found.digest == rec.digest
