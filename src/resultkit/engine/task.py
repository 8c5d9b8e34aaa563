"""Tasks: ``Task`` (subclass and override ``run``), ``@task``, ``Parameter``, ``unmapped``."""

from __future__ import annotations

import copy
import functools
import inspect
import itertools
from collections.abc import Callable, Iterable
from datetime import timedelta
from typing import TYPE_CHECKING, Any, overload

from .._suggest import suggest_keywords
from ..caching.validators import CacheValidator
from ..errors import FlowError
from ..results import Result
from ._cache_settings import cache_settings
from .triggers import Trigger, all_successful

if TYPE_CHECKING:
    from .flow import Flow

__all__ = ["Task", "FunctionTask", "task", "Parameter", "unmapped", "Unmapped"]

#: Keywords of ``Task.__call__``/``map``; a task's ``run`` cannot use them as inputs.
RESERVED_INPUTS = frozenset({"upstream_tasks", "mapped", "task_args", "flow"})
_ids = itertools.count(1)
_NO_DEFAULT = object()


class Unmapped:
    """Marks an argument of ``task.map(...)`` that every child gets whole."""

    def __init__(self, value: Any) -> None:
        self.value = value


def unmapped(value: Any) -> Unmapped:
    """Pass ``value`` whole to every mapped child: ``add.map(xs, unmapped(10))``."""
    return Unmapped(value)


class Task:
    """A unit of work. Subclass and override :meth:`run`, or use :func:`task`.

    Args:
        name: shown in logs and states; ``{task_name}`` in templates.
        slug: a unique id in the flow (default: name and a counter).
        tags: free-form labels.
        max_retries: how many times to rerun after an exception.
        retry_delay: wait between retries (default: none).
        trigger: when to run given the upstream states (default ``all_successful``).
        skip_on_upstream_skip: skip when an upstream task was skipped (default True).
        cache_for: keep the output in the cache for this long.
        cache_validator: decides whether a cached output is still valid
            (default ``duration_only``); see :mod:`resultkit.cache_validators`.
        cache_key: share the cache under this key (between tasks and flows).
        checkpoint: ``True`` writes the value to ``result`` after success;
            ``None`` follows ``config.checkpointing``; ``False`` never writes.
        result: where the value is written (default: the flow's ``result``).
        target: a location template or callable; if something is stored there
            the task is Cached without running, otherwise its value is written there.
        state_handlers: callables ``handler(task, old_state, new_state)`` called on
            every state change of a run: each mapped child's, the mapped parent's
            (Running, then Mapped) and a Parameter's (Success). A handler that
            returns a State replaces the new state; one that raises fails the
            task with a message naming it.
        code_version, target_validator, refresh_cache, cache_ignore: when the
            cache ends; see :mod:`resultkit.engine._cache_settings`.

    Example:
        >>> class Double(Task):
        ...     def run(self, x):
        ...         return 2 * x
        >>> Double().run(4)
        8
    """

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if "__init__" in cls.__dict__:  # a misspelt keyword names the near one
            cls.__init__ = suggest_keywords(cls.__init__)  # type: ignore[method-assign]

    def __init__(
        self,
        name: str | None = None,
        slug: str | None = None,
        tags: Iterable[str] | None = None,
        max_retries: int = 0,
        retry_delay: timedelta | None = None,
        trigger: Trigger | None = None,
        skip_on_upstream_skip: bool = True,
        cache_for: timedelta | None = None,
        cache_validator: CacheValidator | None = None,
        cache_key: str | None = None,
        checkpoint: bool | None = None,
        result: Result | None = None,
        target: str | Callable[..., str] | None = None,
        state_handlers: Iterable[Callable[[Task, Any, Any], Any]] | None = None,
        single_flight: bool = True,
        code_version: str | None = None,
        target_validator: CacheValidator | None = None,
        refresh_cache: bool = False,
        cache_ignore: Iterable[str] | None = None,
    ) -> None:
        self.name = name or type(self).__name__
        self.slug = slug or f"{self.name}-{next(_ids)}"
        self.tags = set(tags or ())
        if not isinstance(max_retries, int) or max_retries < 0:
            raise FlowError(f"task {self.name!r}: max_retries must be an int >= 0")
        self.max_retries = max_retries
        self.retry_delay = retry_delay or timedelta(0)
        if not isinstance(self.retry_delay, timedelta):
            raise FlowError(f"task {self.name!r}: retry_delay must be a datetime.timedelta")
        self.trigger: Trigger = trigger or all_successful
        self.skip_on_upstream_skip = skip_on_upstream_skip
        # cache_for, the validators, code_version, refresh, ignore: see _cache_settings
        (self.cache_for, self.cache_validator, self.code_version, self.target_validator,
         self.refresh_cache, self.cache_ignore) = cache_settings(
            self, cache_for, cache_validator, target, code_version, target_validator,
            refresh_cache, cache_ignore)  # fmt: skip
        self.cache_key = cache_key
        self.checkpoint = checkpoint
        if result is not None and not isinstance(result, Result):
            raise FlowError(
                f"task {self.name!r}: result must be a resultkit Result (e.g. LocalResult()), "
                f"got {type(result).__name__}"
            )
        self.result = result
        if target is not None and not (isinstance(target, str) or callable(target)):
            raise FlowError(f"task {self.name!r}: target must be a str template or a callable")
        self.target = target
        self.state_handlers = list(state_handlers or [])
        #: With a target, concurrent runs (threads, processes, machines) that miss
        #: it compute it once: one takes a lock on the result's storage, the
        #: others wait and read its value. ``False`` opts the task out.
        self.single_flight = bool(single_flight)
        self._check_signature()

    # -- the body -----------------------------------------------------------------
    def run(self, *args: Any, **kwargs: Any) -> Any:
        """The task's work; override it. Its parameters are the task's inputs.

        The base task does nothing and returns None (as in Prefect 1). The
        ``*args, **kwargs`` signature lets subclasses (and type checkers)
        override it with any inputs.
        """
        return None

    def _run_signature(self) -> inspect.Signature:
        return inspect.signature(self.run)

    def _check_signature(self) -> None:
        sig = self._run_signature()
        for p in sig.parameters.values():
            if p.kind in (p.VAR_POSITIONAL, p.VAR_KEYWORD) and type(self).run is not Task.run:
                raise FlowError(
                    f"task {self.name!r}: run() cannot take *args or **kwargs; name each input"
                )
            if p.name in RESERVED_INPUTS:
                raise FlowError(
                    f"task {self.name!r}: input name {p.name!r} is reserved "
                    f"({', '.join(sorted(RESERVED_INPUTS))}); rename it"
                )

    # -- building flows -------------------------------------------------------------
    def copy(self, **overrides: Any) -> Task:
        new = copy.copy(self)
        new.tags = set(self.tags)
        for key, value in overrides.items():
            setattr(new, key, value)
        new.slug = overrides.get("slug") or f"{new.name}-{next(_ids)}"
        return new

    def bind_inputs(self, args: tuple[Any, ...], kwargs: dict[str, Any]) -> dict[str, Any]:
        """Name each argument by the ``run`` signature; clear error when they do not fit."""
        sig = self._run_signature()
        try:
            bound = sig.bind_partial(*args, **kwargs)
        except TypeError as exc:
            raise FlowError(
                f"task {self.name!r} was called with arguments that do not fit run{sig}: {exc}"
            ) from exc
        return dict(bound.arguments)

    def __call__(
        self,
        *args: Any,
        upstream_tasks: Iterable[Any] | None = None,
        mapped: bool = False,
        task_args: dict[str, Any] | None = None,
        flow: Flow | None = None,
        **kwargs: Any,
    ) -> Task:
        """Add a copy of this task to the active flow, with these inputs; return the copy."""
        from .flow import Flow

        flow = flow or Flow.active()
        if flow is None:
            raise FlowError(
                f"task {self.name!r} was called outside a flow. Call it inside "
                "'with Flow(\"name\") as flow:', or call task.run(...) to run the body directly."
            )
        new = self.copy(**(task_args or {}))
        inputs = new.bind_inputs(args, kwargs)
        flow.set_dependencies(
            new, upstream_tasks=upstream_tasks, keyword_inputs=inputs, mapped=mapped
        )
        return new

    def map(
        self,
        *args: Any,
        upstream_tasks: Iterable[Any] | None = None,
        task_args: dict[str, Any] | None = None,
        flow: Flow | None = None,
        **kwargs: Any,
    ) -> Task:
        """Run one child per element of the mapped inputs (``unmapped(x)`` is passed whole)."""
        return self(
            *args,
            upstream_tasks=upstream_tasks,
            mapped=True,
            task_args=task_args,
            flow=flow,
            **kwargs,
        )

    def set_upstream(
        self, task: Task, key: str | None = None, mapped: bool = False, flow: Flow | None = None
    ) -> None:
        from .flow import Flow

        flow = flow or Flow.active()
        if flow is None:
            raise FlowError("set_upstream needs an active flow (or flow=...)")
        flow.add_edge(task, self, key=key, mapped=mapped)

    def set_downstream(
        self, task: Task, key: str | None = None, mapped: bool = False, flow: Flow | None = None
    ) -> None:
        task.set_upstream(self, key=key, mapped=mapped, flow=flow)

    def __repr__(self) -> str:
        return f"<Task: {self.name}>"

    __hash__ = object.__hash__


class FunctionTask(Task):
    """A task whose body is a plain function (what ``@task`` makes)."""

    def __init__(self, fn: Callable[..., Any], name: str | None = None, **kwargs: Any) -> None:
        if not callable(fn):
            raise FlowError(f"@task needs a function, got {type(fn).__name__}")
        self.run = fn  # type: ignore[method-assign]
        functools.update_wrapper(self, fn)
        super().__init__(name=name or getattr(fn, "__name__", "task"), **kwargs)

    def _check_signature(self) -> None:
        for p in inspect.signature(self.run).parameters.values():
            if p.kind in (p.VAR_POSITIONAL, p.VAR_KEYWORD):
                raise FlowError(
                    f"task {self.name!r}: the function cannot take *args or **kwargs; "
                    "name each input"
                )
            if p.name in RESERVED_INPUTS:
                raise FlowError(
                    f"task {self.name!r}: input name {p.name!r} is reserved "
                    f"({', '.join(sorted(RESERVED_INPUTS))}); rename it"
                )


@overload
def task(fn: Callable[..., Any], /) -> FunctionTask: ...
@overload
def task(
    fn: None = None, /, **task_kwargs: Any
) -> Callable[[Callable[..., Any]], FunctionTask]: ...


def task(fn: Callable[..., Any] | None = None, /, **task_kwargs: Any) -> Any:
    """Turn a function into a task, with or without arguments.

    Example:
        >>> @task
        ... def add(x, y):
        ...     return x + y
        >>> @task(max_retries=2, retry_delay=timedelta(seconds=1))
        ... def flaky():
        ...     return 1
    """
    if fn is not None:
        return FunctionTask(fn, **task_kwargs)
    return lambda f: FunctionTask(f, **task_kwargs)


class Parameter(Task):
    """A flow input, given to ``flow.run(parameters={...})``.

    Args:
        name: the parameter's name (also a template key).
        default: used when the run does not give it.
        required: fail the run when it is not given (default: required when
            there is no default).

    Example:
        >>> day = Parameter("day", default="mon")
    """

    def __init__(
        self, name: str, default: Any = _NO_DEFAULT, required: bool | None = None, **kwargs: Any
    ) -> None:
        if not isinstance(name, str) or not name.isidentifier():
            raise FlowError(f"a Parameter name must be an identifier, got {name!r}")
        self.default = None if default is _NO_DEFAULT else default
        self.required = (default is _NO_DEFAULT) if required is None else required
        super().__init__(name=name, slug=name, **kwargs)
        from .flow import Flow

        active = Flow.active()
        if active is not None:  # a Parameter declared in a flow belongs to it
            active.add_task(self)

    def copy(self, **overrides: Any) -> Task:
        new = super().copy(**overrides)
        new.slug = self.slug
        return new

    def run(self) -> Any:
        from .context import context

        params = context.get("parameters", {})
        if self.name in params:
            return params[self.name]
        if self.required:
            raise FlowError(f"parameter {self.name!r} is required but was not given")
        return self.default

    def __call__(self, *args: Any, **kwargs: Any) -> Task:
        raise FlowError(f"Parameter {self.name!r} is not called; pass it to other tasks")

    def __repr__(self) -> str:
        return f"<Parameter: {self.name}>"


Task.__init__ = suggest_keywords(Task.__init__)  # type: ignore[method-assign]
