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

__all__ = ["persist"]

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
    if result is None or (task.checkpoint is False and task.target is None):
        return state
    if not config.checkpointing:
        if task.target is not None or task.checkpoint is True:
            _warn_checkpointing_off(task)
        return state
    hook = f"Result hook {type(result).__name__}"
    if target is None:  # a checkpoint: the Result's own location, formatted once
        result = call_user(
            f"{hook}.format_map", result.format_map, keys, passthrough=(ResultError,)
        )
    written = call_user(
        f"{hook}.write", result.write, state.result, target, passthrough=(ResultError,)
    )
    out = Success(f"finished; result at {written.location}", written)
    out.run_count = state.run_count
    return out
