"""The persist phase of a task run: write the target or the checkpoint after a success."""

from __future__ import annotations

import threading
import warnings
from collections.abc import Mapping
from typing import Any

from ..errors import ResultError, ResultKitWarning
from ..results import FormattedLocation, Result
from .context import config
from .state import State, Success
from .task import Task
from .transitions import call_user

__all__ = ["persist", "where_to_write", "written_state"]

# Tasks already warned that the global switch stops their writes (one warning each).
_warned_checkpoint_off: set[str] = set()
_warned_lock = threading.Lock()


def _warn_checkpointing_off(task: Task) -> None:
    with _warned_lock:
        first = task.name not in _warned_checkpoint_off
        _warned_checkpoint_off.add(task.name)
    if first:
        what = "target" if task.target is not None else "checkpoint"
        warnings.warn(
            f"checkpointing is off globally (config.checkpointing / RESULTKIT_CHECKPOINTING), "
            f"so task {task.name!r} does not write its {what}; turn it back on with "
            "config.checkpointing = True",
            ResultKitWarning,
            stacklevel=3,
        )


def where_to_write(
    task: Task,
    result: Result | None,
    keys: Mapping[str, Any],
    target: FormattedLocation | None,
) -> tuple[Result, FormattedLocation | None] | None:
    """The Result to write with and the target (None: the Result's own location), or None.

    None when the task writes nothing (no Result, ``checkpoint=False``
    without a target, or checkpointing off globally, which warns). Raises
    :class:`~resultkit.errors.ResultError` when a checkpoint's location
    cannot be formatted.
    """
    if result is None or (task.checkpoint is False and task.target is None):
        return None
    if not config.checkpointing:
        if task.target is not None or task.checkpoint is True:
            _warn_checkpointing_off(task)
        return None
    if target is None:  # a checkpoint: the Result's own location, formatted once
        hook = f"Result hook {type(result).__name__}.format_map"
        result = call_user(hook, result.format_map, keys, passthrough=(ResultError,))
    return result, target


def written_state(state: State, written: Result) -> Success:
    """The Success that replaces ``state`` once its value is stored as ``written``."""
    out = Success(f"finished; result at {written.location}", written)
    out.run_count = state.run_count
    return out


def persist(
    task: Task,
    result: Result | None,
    state: State,
    keys: Mapping[str, Any],
    target: FormattedLocation | None,
) -> State:
    """The success to record: ``state`` itself, or a Success holding the written Result.

    Raises :class:`~resultkit.errors.ResultError` when the write fails, and
    :class:`~resultkit.engine.transitions.UserCodeError` when the Result's
    own code raised something else.
    """
    where = where_to_write(task, result, keys, target)
    if where is None:
        return state
    writer, location = where
    hook = f"Result hook {type(writer).__name__}.write"
    written = call_user(hook, writer.write, state.result, location, passthrough=(ResultError,))
    return written_state(state, written)
