"""State changes of a task run, and failures of user code outside the task body.

Every state change goes through :func:`transition`: the task's state handlers
see it (and may replace it), then it is logged. User code the runner calls
besides the body (a trigger, a cache validator, a Result hook, a cache
store) is called through :func:`call_user`, so an exception from it becomes
an ordinary Failed state naming what raised, never an internal error.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any, TypeVar

from .state import Failed, Pending, State
from .task import Task

__all__ = [
    "TaskRun",
    "StopRun",
    "UserCodeError",
    "transition",
    "finish",
    "call_user",
    "describe",
    "internal_error",
    "log_state",
]

logger = logging.getLogger("resultkit")

T = TypeVar("T")


class TaskRun:
    """One run in progress: a task (a mapped child, a mapped parent, a parameter) and its state.

    Without a ``state``, the run starts Pending; that Pending state is made
    when it is first needed (a task without state handlers never looks at
    it), or at once for a task with handlers, which see it.
    """

    __slots__ = ("task", "name", "_state")

    def __init__(self, task: Task, name: str, state: State | None = None) -> None:
        self.task = task
        self.name = name
        self._state = state if state is not None or not task.state_handlers else Pending()

    @property
    def state(self) -> State:
        if self._state is None:
            self._state = Pending()
        return self._state

    @state.setter
    def state(self, state: State) -> None:
        self._state = state


class StopRun(Exception):
    """The run ends at once in ``state``, already recorded (a state handler raised or chose it)."""

    def __init__(self, state: State) -> None:
        super().__init__(state.message)
        self.state = state


class UserCodeError(Exception):
    """User code outside the task body raised ``exc``; ``what`` names it ("trigger t")."""

    def __init__(self, what: str, exc: BaseException) -> None:
        super().__init__(f"{what} raised {describe(exc)}")
        self.what = what
        self.exc = exc

    def failed(self) -> Failed:
        """The Failed state of the task run it interrupted."""
        return Failed(str(self), exception=self.exc)


def name_of(fn: Any) -> str:
    """How messages name a callable: its ``__name__``, else its type."""
    return str(getattr(fn, "__name__", None) or type(fn).__name__)


def describe(exc: BaseException) -> str:
    """``Type: message``; never an empty text, even for ``NotImplementedError()``."""
    kind = type(exc).__name__
    text = str(exc).strip()
    if text:
        return f"{kind}: {text}"
    if isinstance(exc, NotImplementedError):
        hint = "a method it needs is not implemented; implement it in the subclass"
    else:
        hint = "the exception has no message"
    return f"{kind} ({hint}; the traceback is in state.exception)"


def call_user(
    what: str,
    fn: Callable[..., T],
    *args: Any,
    passthrough: tuple[type[BaseException], ...] = (),
) -> T:
    """Call user code; any exception but ``passthrough`` becomes a :class:`UserCodeError`."""
    try:
        return fn(*args)
    except passthrough:
        raise
    except UserCodeError:
        raise  # already named (a validator called by a cache store)
    except Exception as exc:
        raise UserCodeError(what, exc) from exc


def log_state(name: str, state: State) -> None:
    """Log a run's new state, as every transition does."""
    if not logger.isEnabledFor(logging.INFO):
        return  # nor DEBUG: the message is not even formatted
    msg = f": {state.message}" if state.message else ""
    logger.info("Task '%s': %s%s", name, type(state).__name__, msg)
    if isinstance(state, Failed) and state.exception is not None:
        logger.debug("Task '%s' failed", name, exc_info=state.exception)


def _call_handler(run: TaskRun, handler: Any, old: State, new: State) -> State:
    """One handler's verdict: ``new`` or its replacement; raises what the handler raised."""
    replaced = handler(run.task, old, new)
    if replaced is None:
        return new
    if not isinstance(replaced, State):
        raise TypeError(f"it returned a {type(replaced).__name__}; return a State or None")
    return replaced


def transition(run: TaskRun, new: State) -> State:
    """Move ``run`` to ``new`` through the state handlers, log it, and return the final state.

    Raises :class:`StopRun` when a handler raised: the run must end in that
    Failed state (already logged and seen by the handlers).
    """
    state = new
    handlers = run.task.state_handlers
    if handlers:
        old = run.state
        for handler in handlers:
            try:
                state = _call_handler(run, handler, old, state)
            except Exception as exc:
                raise StopRun(_handler_failed(run, handler, exc, old, state)) from exc
    log_state(run.name, state)
    run._state = state
    return state


def _handler_failed(run: TaskRun, handler: Any, exc: Exception, old: State, new: State) -> State:
    """The state after ``handler`` raised on ``old -> new``.

    The handlers see that failure once; one raising again ends it there, so
    a handler that always raises cannot recurse.
    """
    message = (
        f"state handler {name_of(handler)} raised {describe(exc)} "
        f"(on the change to {type(new).__name__})"
    )
    state: State = Failed(message, exception=exc)
    for other in run.task.state_handlers:
        try:
            state = _call_handler(run, other, old, state)
        except Exception as again:
            state = Failed(
                f"{message}; then state handler {name_of(other)} raised {describe(again)} "
                "on that failure",
                exception=exc,
            )
            break
    log_state(run.name, state)
    run.state = state
    return state


def finish(run: TaskRun, state: State) -> State:
    """:func:`transition` for a run's last state: a handler failure is the final state."""
    try:
        return transition(run, state)
    except StopRun as stop:
        return stop.state


def internal_error(task: Task, exc: BaseException) -> State:
    """The final state of a run of ``task`` stopped by a bug in resultkit (``exc``)."""
    failed = Failed(
        f"internal error in resultkit: {describe(exc)}; please report it", exception=exc
    )
    return finish(TaskRun(task, task.name, Pending()), failed)
