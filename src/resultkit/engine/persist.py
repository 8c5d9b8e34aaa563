"""The persist phase of a task run: write the target or the checkpoint after a success."""

from __future__ import annotations

import threading
from collections.abc import Mapping
from typing import Any

from ..errors import MissingTemplateKeyError, ResultError, warn_user
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
        warn_user(
            f"checkpointing is off globally (config.checkpointing / RESULTKIT_CHECKPOINTING), "
            f"so task {task.name!r} does not write its {what}; turn it back on with "
            "config.checkpointing = True"
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
        result = formatted_for(task, result, keys)
    return result, target


def formatted_for(
    task: Task, result: Result, keys: Mapping[str, Any], template: Any = None
) -> Result:
    """``result.format_map(keys, template)`` for a task's run (its target, or with no
    ``template`` its checkpoint's location): the Result's own errors pass through, but a
    missing key names the ways a flow gives one (the Result's "Pass key=..." fits a
    direct write)."""
    hook = f"Result hook {type(result).__name__}.format_map"
    try:
        args = (keys,) if template is None else (keys, template)  # as a subclass may define it
        return call_user(hook, result.format_map, *args, passthrough=(ResultError,))
    except MissingTemplateKeyError as exc:
        what = "target" if template is not None else "result location"
        shown = template if template is not None else exc.location
        raise MissingTemplateKeyError(
            f"task {task.name!r}: its {what} {shown!r} needs the key {exc.key!r}, which "
            f"this run does not have (keys: {', '.join(exc.given) or 'none'}). Give the task "
            f"an input named {exc.key!r}, add Parameter({exc.key!r}) to the flow, or run it "
            f"with flow.run({exc.key}=...) (or inside `with context({exc.key}=...)`); double "
            "the braces for a literal brace",
            key=exc.key,
            given=exc.given,
            location=exc.location,
        ) from None


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
