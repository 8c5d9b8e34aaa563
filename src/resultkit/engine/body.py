"""The body of a task run: the user's function, its signals and its retries."""

from __future__ import annotations

import time
from collections.abc import Mapping
from datetime import datetime, timezone
from typing import Any

from ..results import ConstantResult, Result
from ..signals import FAIL, PAUSE, SKIP
from .context import context
from .state import Failed, Paused, Retrying, Running, Skipped, State, Success
from .task import Task
from .transitions import StopRun, TaskRun, describe, transition

__all__ = ["run_body", "as_results", "enter"]


def as_results(inputs: Mapping[str, Any]) -> dict[str, Result]:
    return {k: ConstantResult(v) for k, v in inputs.items()}


def _counted(state: State, run_count: int) -> State:
    """``state`` with the number of times the body ran (Prefect 1's ``run_count``)."""
    state.run_count = run_count
    return state


def enter(run: TaskRun, new: State) -> None:
    """Move to an intermediate state (Running, Retrying); a handler replacing it ends the run."""
    state = transition(run, new)
    if not isinstance(state, type(new)):
        raise StopRun(state)  # already recorded: the handler's state is the run's last


def run_body(run: TaskRun, task: Task, inputs: dict[str, Any], run_count: int) -> State:
    """The body's outcome: a recorded final state, or a Success still to persist."""
    while True:
        enter(run, Running("running" if run_count == 1 else f"run {run_count}"))
        try:
            with context(task_run_count=run_count, task_loop_count=1):
                value = task.run(**inputs)
        except SKIP as sig:
            return transition(run, _counted(Skipped(str(sig) or "skipped"), run_count))
        except PAUSE as sig:
            paused = Paused(str(sig), cached_inputs=as_results(inputs))
            return transition(run, _counted(paused, run_count))
        except FAIL as sig:
            failed = Failed(str(sig) or "failed", exception=sig)
            return transition(run, _counted(failed, run_count))
        except Exception as exc:
            if run_count <= task.max_retries:
                delay = task.retry_delay.total_seconds()
                retry = Retrying(
                    f"{describe(exc)}; retry {run_count} of {task.max_retries} in {delay:g}s",
                    start_time=datetime.now(timezone.utc) + task.retry_delay,
                    run_count=run_count,
                    exception=exc,
                    cached_inputs=as_results(inputs),
                )
                enter(run, retry)
                time.sleep(delay)
                run_count += 1
                continue
            failed = Failed(describe(exc), exception=exc)
            failed.run_count = run_count
            return transition(run, failed)
        success = Success("finished", ConstantResult(value))
        success.run_count = run_count
        return success
