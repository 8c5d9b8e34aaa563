"""Task and flow states."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime, timezone
from typing import Any

from ..caching.explain import CacheMiss
from ..results import ConstantResult, Result
from .deferred import ChildValues

__all__ = [
    "State",
    "Pending",
    "Running",
    "Finished",
    "Success",
    "Cached",
    "Mapped",
    "Skipped",
    "Failed",
    "TriggerFailed",
    "Retrying",
    "Paused",
    "Resume",
]


#: Copied for each state's value: a copy costs a fraction of a ConstantResult's construction.
_CONSTANT = ConstantResult()
_CONSTANT_ATTRIBUTES = dict(_CONSTANT.__dict__)
_new = object.__new__
_UTC = timezone.utc
_now = datetime.now


def _constant(value: Any) -> ConstantResult:
    """A ConstantResult holding ``value`` (each state has its own): a copy of ``_CONSTANT``
    made in one step (what ``Result.copy`` does, then the value set)."""
    made = _new(ConstantResult)
    made.__dict__ = {**_CONSTANT_ATTRIBUTES, "value": value}
    return made


class State:
    """The state of a task or flow run.

    ``result`` is the value (for a flow: a dict mapping each task reference
    to its State); ``message`` says why; a failed state carries the exception
    in ``exception``. ``location`` is where the value is stored, if anywhere.
    ``cache_miss`` says why a task with a cache or a target ran (a
    :class:`~resultkit.caching.explain.CacheMiss`), else ``None``.
    """

    cache_miss: CacheMiss | None = None
    #: A flow run's id (``flow.run(run_id=...)``, else generated), for ``flow.resume``.
    run_id: str | None = None

    def __init__(
        self,
        message: str | None = None,
        result: Any = None,
        *,
        exception: BaseException | None = None,
        cached_inputs: Mapping[str, Result] | None = None,
    ) -> None:
        self.message = message
        self._result: Result = result if isinstance(result, Result) else _constant(result)
        self.exception = exception
        #: Inputs kept for a later rerun (Retrying, Paused), as Results.
        self.cached_inputs: dict[str, Result] | None = (
            dict(cached_inputs) if cached_inputs is not None else None
        )
        self.timestamp = _now(_UTC)
        #: How many times the task body ran to reach this state.
        self.run_count = 0

    @property
    def result(self) -> Any:
        return self._result.value

    @property
    def location(self) -> str | None:
        loc = self._result.location
        return (
            loc if isinstance(loc, str) and not isinstance(self._result, ConstantResult) else None
        )

    def is_pending(self) -> bool:
        return isinstance(self, Pending)

    def is_running(self) -> bool:
        return isinstance(self, Running)

    def is_finished(self) -> bool:
        return isinstance(self, Finished)

    def is_successful(self) -> bool:
        return isinstance(self, Success)

    def is_failed(self) -> bool:
        return isinstance(self, Failed)

    def is_cached(self) -> bool:
        return isinstance(self, Cached)

    def is_mapped(self) -> bool:
        return isinstance(self, Mapped)

    def is_skipped(self) -> bool:
        return isinstance(self, Skipped)

    def is_retrying(self) -> bool:
        return isinstance(self, Retrying)

    def is_paused(self) -> bool:
        return isinstance(self, Paused)

    def __repr__(self) -> str:
        msg = f": {self.message}" if self.message else ""
        return f"<{type(self).__name__}{msg}>"


class Pending(State):
    """Not run yet (for example because an upstream task is paused)."""


class Running(State):
    """The task body is running."""


class Finished(State):
    """Base of the final states."""


class Success(Finished):
    """The task finished and produced ``result``."""


class Cached(Success):
    """A success served from a cache or a target, without running the task."""

    def __init__(
        self,
        message: str | None = None,
        result: Any = None,
        *,
        cached_inputs: Mapping[str, Result] | None = None,
        input_tokens: Mapping[str, str] | None = None,
        cached_parameters: Mapping[str, str] | None = None,
        cached_result_expiration: datetime | None = None,
        exception: BaseException | None = None,
    ) -> None:
        super().__init__(message, result, cached_inputs=cached_inputs, exception=exception)
        #: Tokens (hashes) of the inputs and parameters of the run that made
        #: this cache; validators compare these, never the values themselves.
        self.cached_input_tokens = dict(input_tokens) if input_tokens else {}
        self.cached_parameters = dict(cached_parameters) if cached_parameters else {}
        self.cached_result_expiration = cached_result_expiration


class Mapped(Success):
    """A mapped task; ``map_states`` holds each child's state."""

    def __init__(self, message: str | None = None, map_states: list[State] | None = None):
        self.map_states: list[State] = list(map_states or [])
        # The children's values are gathered when asked for: on a remote executor
        # they stay on the workers until then.
        super().__init__(message, ChildValues(self.map_states))


class Skipped(Success):
    """Skipped (by a SKIP signal or an upstream skip); counts as a success."""


class Failed(Finished):
    """The task raised (``exception``) or failed its trigger."""


class TriggerFailed(Failed):
    """The task's trigger refused to run it (e.g. an upstream task failed)."""


class Retrying(Pending):
    """Failed, will run again at ``start_time`` with ``cached_inputs``."""

    def __init__(
        self,
        message: str | None = None,
        result: Any = None,
        *,
        start_time: datetime | None = None,
        run_count: int = 0,
        exception: BaseException | None = None,
        cached_inputs: Mapping[str, Result] | None = None,
    ) -> None:
        super().__init__(message, result, exception=exception, cached_inputs=cached_inputs)
        self.start_time = start_time or datetime.now(timezone.utc)
        self.run_count = run_count


class Paused(Pending):
    """Waiting for approval (``manual_only`` trigger); keeps its inputs in ``cached_inputs``."""


class Resume(Pending):
    """Pass as ``flow.run(task_states={task: Resume()})`` to continue a paused task."""
