"""Public home of run records: what flow runs finished, for ``flow.resume`` and the CLI.

Example:
    >>> from resultkit.runs import list_runs
    >>> for run in list_runs():                                  # doctest: +SKIP
    ...     print(run.run_id, run.flow, run.status, len(run.tasks))
"""

from __future__ import annotations

from .engine.run_history import RunInfo, TaskRecord, list_runs, read_run
from .engine.runs import default_run_store, run_store_from
from .results import StorageResult

__all__ = ["RunInfo", "TaskRecord", "list_runs", "get_run", "default_run_store"]


def get_run(run_id: str, store: StorageResult | str | None = None) -> RunInfo:
    """The recorded run ``run_id`` in ``store`` (default: the default run store).

    Raises :class:`~resultkit.errors.FlowError` naming the store when there is none.
    """
    found = run_store_from(store, "get_run(store)") if store is not None else default_run_store()
    if found is None:
        from .errors import FlowError

        raise FlowError("run records are off (RESULTKIT_RUN_STORE=off), so no run is recorded")
    return read_run(found, run_id)
