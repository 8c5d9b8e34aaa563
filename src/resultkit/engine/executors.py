"""Executors: where task runs happen."""

from __future__ import annotations

import concurrent.futures as cf
import contextvars
import logging
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .state import State
    from .task_runner import TaskRunner
    from .unit import RunUnit

__all__ = ["Executor", "LocalExecutor", "ThreadExecutor"]

logger = logging.getLogger("resultkit")


class Executor:
    """Runs submitted callables and hands back futures."""

    #: Whether task runs happen in other processes that keep their values
    #: (the flow process then sees deferred values, see ``engine.deferred``).
    remote = False

    def start(self) -> None:
        """Prepare (called once per flow run)."""

    def shutdown(self) -> None:
        """Release resources (called once per flow run)."""

    def submit(self, fn: Callable[..., Any], *args: Any) -> cf.Future[Any]:
        raise NotImplementedError

    def submit_unit(self, runner: TaskRunner, unit: RunUnit) -> cf.Future[State]:
        """Run one task run (or mapped child) to its state."""
        return self.submit(runner.run, unit)

    def gather(self, states: Mapping[Any, State]) -> None:
        """Bring values kept elsewhere into ``states`` (called before :meth:`shutdown`)."""


class LocalExecutor(Executor):
    """Runs each task in order, in the calling thread (the default)."""

    def submit(self, fn: Callable[..., Any], *args: Any) -> cf.Future[Any]:
        fut: cf.Future[Any] = cf.Future()
        try:
            fut.set_result(fn(*args))
        except Exception as exc:  # Ctrl-C and SystemExit stop the run, as in plain Python
            fut.set_exception(exc)
        return fut

    def run_here(self, runner: TaskRunner, unit: RunUnit) -> State:
        """``unit``'s state, run in this thread: :meth:`submit_unit` without a future."""
        try:
            return runner.run(unit)
        except Exception as exc:  # TaskRunner.run does not raise; Ctrl-C stops the run
            # Imported here, not per call: executors are imported before the engine.
            from .transitions import internal_error

            logger.error("Task '%s': internal error", unit.task.name, exc_info=True)
            return internal_error(unit.task, exc)


class ThreadExecutor(Executor):
    """Runs independent tasks concurrently in a thread pool.

    Args:
        max_workers: threads in the pool (default: ``concurrent.futures``' default).
    """

    def __init__(self, max_workers: int | None = None) -> None:
        self.max_workers = max_workers
        self._pool: cf.ThreadPoolExecutor | None = None

    def start(self) -> None:
        self._pool = cf.ThreadPoolExecutor(self.max_workers, thread_name_prefix="resultkit")

    def shutdown(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=True)
            self._pool = None

    def submit(self, fn: Callable[..., Any], *args: Any) -> cf.Future[Any]:
        if self._pool is None:
            self.start()
        assert self._pool is not None
        ctx = contextvars.copy_context()  # each task sees the flow's context
        return self._pool.submit(ctx.run, fn, *args)
