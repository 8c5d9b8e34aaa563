"""Running flows and tasks: triggers, retries, mapping, targets and caches."""

from __future__ import annotations

import collections
import concurrent.futures as cf
import logging
import threading
import time
import uuid
import warnings
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import Any

from ..caching.hashing import UnhashableInputError, inputs_token
from ..errors import (
    FlowError,
    ResultCorruptError,
    ResultError,
    ResultKitWarning,
    ResultNotFoundError,
    SerializationError,
    SerializerMismatchError,
)
from ..results import ConstantResult, LocalResult, Result
from .context import config, context
from .executors import Executor, LocalExecutor
from .flow import Edge, Flow, _Constant
from .signals import FAIL, PAUSE, SKIP
from .state import (
    Cached,
    Failed,
    Finished,
    Mapped,
    Paused,
    Pending,
    Resume,
    Retrying,
    Running,
    Skipped,
    State,
    Success,
    TriggerFailed,
)
from .task import Parameter, Task

__all__ = ["FlowRunner", "TaskRunner", "template_keys"]

logger = logging.getLogger("resultkit")

_warned_checkpoint_off: set[str] = set()
_warned_lock = threading.Lock()


def template_keys(when: datetime) -> dict[str, Any]:
    """The date keys for a run started at ``when``: ``date``, ``today``... and ``_nodash`` forms."""
    keys: dict[str, Any] = {"date": when}
    for name, delta in (("today", 0), ("yesterday", -1), ("tomorrow", 1)):
        day = when + timedelta(days=delta)
        keys[name] = day.strftime("%Y-%m-%d")
        keys[f"{name}_nodash"] = day.strftime("%Y%m%d")
    return keys


@dataclass
class _Unit:
    """One task run to do: a task, or one child of a mapped task."""

    task: Task
    upstream: list[tuple[Edge, State]]
    inputs: dict[str, Any]
    map_index: int | None = None
    prior: State | None = None
    keys: dict[str, Any] = field(default_factory=dict)
    target_location: str | None = None
    target_exists: bool | None = None


class TaskRunner:
    """Runs one task (or one mapped child) to a final state."""

    def __init__(self, flow: Flow, flow_keys: Mapping[str, Any]) -> None:
        self.flow = flow
        self.flow_keys = flow_keys
        # The task run in progress on this thread: (task, its current state).
        self._current = threading.local()
        self._default_result: Result | None = None

    # -- helpers -----------------------------------------------------------------------
    def result_for(self, task: Task) -> Result | None:
        res = task.result or self.flow.result
        if res is None and task.target is not None:
            if self._default_result is None:  # one per run, not one per child
                self._default_result = LocalResult()
            res = self._default_result
        return res

    def keys_for(
        self, task: Task, inputs: Mapping[str, Any], map_index: int | None
    ) -> dict[str, Any]:
        params = dict(self.flow_keys.get("parameters", {}))
        full_name = task.name if map_index is None else f"{task.name}[{map_index}]"
        keys: dict[str, Any] = dict(params)
        keys.update(context.to_dict())
        keys.update(
            task_name=task.name,
            task_full_name=full_name,
            task_slug=task.slug,
            task_run_id=uuid.uuid4().hex,
            map_index=map_index,
            task_tags=sorted(task.tags),
        )
        keys.update(inputs)
        keys.pop("caches", None)
        return keys

    def format_target(self, task: Task, keys: Mapping[str, Any]) -> str | None:
        if task.target is None:
            return None
        result = self.result_for(task)
        assert result is not None
        return str(result.format_map(keys, task.target).location)

    def _log(self, task_full_name: str, state: State) -> State:
        """Record a state change: log it and call the task's state handlers."""
        msg = f": {state.message}" if state.message else ""
        logger.info("Task '%s': %s%s", task_full_name, type(state).__name__, msg)
        run = getattr(self._current, "run", None)
        if run is not None:
            task, old = run
            for handler in task.state_handlers:
                replaced = handler(task, old, state)
                if replaced is not None:
                    state = replaced
            self._current.run = (task, state)
        return state

    # -- the run -------------------------------------------------------------------------
    def run(self, unit: _Unit) -> State:
        self._current.run = (unit.task, unit.prior or Pending())
        try:
            return self._run(unit)
        finally:
            self._current.run = None

    def _run(self, unit: _Unit) -> State:
        task = unit.task
        keys = unit.keys or self.keys_for(task, unit.inputs, unit.map_index)
        name = keys["task_full_name"]
        prior = unit.prior
        if isinstance(prior, Finished):
            return prior
        upstream_states = [s for _, s in unit.upstream]

        if any(not s.is_finished() for s in upstream_states):
            return self._log(name, Pending("an upstream task has not finished"))
        if task.skip_on_upstream_skip and any(s.is_skipped() for s in upstream_states):
            return self._log(name, Skipped("an upstream task was skipped"))
        inputs = dict(unit.inputs)
        if prior is not None and prior.cached_inputs:
            inputs.update({k: r.value for k, r in prior.cached_inputs.items()})
        if not isinstance(prior, Resume):
            try:
                if not task.trigger(upstream_states):
                    return self._log(
                        name,
                        TriggerFailed(
                            f"trigger {getattr(task.trigger, '__name__', task.trigger)} "
                            "was not met by the upstream states"
                        ),
                    )
            except PAUSE as sig:
                return self._log(name, Paused(str(sig), cached_inputs=_as_results(inputs)))

        with context(self.flow_keys, keys):
            return self._run_with_caches(task, unit, inputs, keys, name)

    def _run_with_caches(
        self, task: Task, unit: _Unit, inputs: dict[str, Any], keys: dict[str, Any], name: str
    ) -> State:
        result = self.result_for(task)
        # 1. Target: a stored value at the formatted target wins.
        target = unit.target_location
        if task.target is not None and result is not None:
            try:
                target = target or self.format_target(task, keys)
            except ResultError as exc:
                return self._log(name, Failed(f"target: {exc}", exception=exc))
            try:
                hit = self._read_target(task, result, target, unit.target_exists, name)
            except ResultError as exc:
                return self._log(name, Failed(f"target: {exc}", exception=exc))
            if hit is not None:
                return self._log(name, hit)

        # 2. Output cache (cache_for / cache_validator / cache_key). With a
        # target, the target is the cache and cache_for its expiry.
        tokens: dict[str, str] | None = None
        param_tokens: dict[str, str] = {}
        cache_key = task.cache_key or task.name
        if unit.map_index is not None:  # each mapped child has its own cache
            cache_key = f"{cache_key}[{unit.map_index}]"
        if task.cache_for is not None and task.target is None:
            try:
                tokens = inputs_token(inputs)
                param_tokens = inputs_token(self.flow_keys.get("parameters", {}))
            except UnhashableInputError as exc:
                warnings.warn(
                    f"task {name!r}: output caching is off for this run, an input cannot be "
                    f"hashed: {exc}",
                    ResultKitWarning,
                    stacklevel=2,
                )
                tokens = None
            if tokens is not None:
                for candidate in reversed(context.caches.get(cache_key, [])):
                    if task.cache_validator(candidate, tokens, param_tokens):
                        hit = Cached(
                            f"from the output cache {cache_key!r}",
                            candidate._result,
                            input_tokens=candidate.cached_input_tokens,
                            cached_parameters=candidate.cached_parameters,
                            cached_result_expiration=candidate.cached_result_expiration,
                        )
                        return self._log(name, hit)

        # 3. Run, with retries.
        state = self._run_body(task, inputs, name, unit)
        if not isinstance(state, Success) or isinstance(state, Skipped):
            return state

        # 4. Persist: target or checkpoint.
        try:
            state = self._persist(task, result, state, keys, target, name)
        except ResultError as exc:
            return self._log(name, Failed(f"could not write the result: {exc}", exception=exc))

        # 5. Remember in the output cache.
        if task.cache_for is not None and tokens is not None:
            cached = Cached(
                "cached output",
                state._result,
                input_tokens=tokens,
                cached_parameters=param_tokens,
                cached_result_expiration=datetime.now(timezone.utc) + task.cache_for,
            )
            context.caches.setdefault(cache_key, []).append(cached)
        return state

    def _read_target(
        self, task: Task, result: Result, target: str | None, exists_hint: bool | None, name: str
    ) -> State | None:
        """The Cached state from the target, or None for a miss.

        Missing is a miss; an unreadable target (corrupt, written by another
        serializer, undeserializable) is a miss with a warning, and is then
        recomputed and overwritten. Storage failures (access denied, network)
        are not misses: they raise and fail the task.
        """
        assert target is not None
        if exists_hint is False:
            return None
        try:
            stored = result.read(target)  # a missing target costs what exists() would
        except ResultNotFoundError:
            return None
        except (ResultCorruptError, SerializerMismatchError, SerializationError) as exc:
            warnings.warn(
                f"task {name!r}: the target {target} could not be used ({exc}); "
                "running the task and writing it again",
                ResultKitWarning,
                stacklevel=2,
            )
            return None
        if task.cache_for is not None and stored.record is not None:
            expires = stored.record.written_at + task.cache_for
            if expires <= datetime.now(timezone.utc):
                logger.info("Task '%s': target %s expired at %s", name, target, expires)
                return None
        return Cached(f"target {target} exists", stored)

    def _run_body(self, task: Task, inputs: dict[str, Any], name: str, unit: _Unit) -> State:
        run_count = unit.prior.run_count if isinstance(unit.prior, Retrying) else 0
        while True:
            run_count += 1
            self._log(name, Running("running" if run_count == 1 else f"run {run_count}"))
            try:
                value = task.run(**inputs)
            except SKIP as sig:
                return self._log(name, Skipped(str(sig) or "skipped"))
            except PAUSE as sig:
                return self._log(name, Paused(str(sig), cached_inputs=_as_results(inputs)))
            except FAIL as sig:
                return self._log(name, Failed(str(sig) or "failed", exception=sig))
            except Exception as exc:
                if run_count <= task.max_retries:
                    retry = Retrying(
                        f"{type(exc).__name__}: {exc}; retry {run_count} of "
                        f"{task.max_retries} in {task.retry_delay.total_seconds():g}s",
                        start_time=datetime.now(timezone.utc) + task.retry_delay,
                        run_count=run_count,
                        exception=exc,
                        cached_inputs=_as_results(inputs),
                    )
                    self._log(name, retry)
                    time.sleep(task.retry_delay.total_seconds())
                    continue
                logger.debug("Task '%s' raised", name, exc_info=True)
                failed = Failed(f"{type(exc).__name__}: {exc}", exception=exc)
                failed.run_count = run_count
                return self._log(name, failed)
            success = Success("finished", ConstantResult(value))
            success.run_count = run_count
            return success

    def _persist(
        self,
        task: Task,
        result: Result | None,
        state: State,
        keys: dict[str, Any],
        target: str | None,
        name: str,
    ) -> State:
        value = state.result
        asks = task.target is not None or task.checkpoint is True
        if result is None or (task.checkpoint is False and task.target is None):
            return self._log(name, state)
        if not config.checkpointing:
            if asks:
                with _warned_lock:
                    first = task.name not in _warned_checkpoint_off
                    _warned_checkpoint_off.add(task.name)
                if first:
                    warnings.warn(
                        f"checkpointing is off globally (config.checkpointing / "
                        f"RESULTKIT_CHECKPOINTING), so task {task.name!r} does not write its "
                        f"{'target' if task.target is not None else 'checkpoint'}",
                        ResultKitWarning,
                        stacklevel=2,
                    )
            return self._log(name, state)
        if target is not None:
            written = result.write(value, target)
        else:
            written = result.format_map(keys).write(value)
        out = Success(f"finished; result at {written.location}", written)
        out.run_count = state.run_count
        return self._log(name, out)


def _as_results(inputs: Mapping[str, Any]) -> dict[str, Result]:
    return {k: ConstantResult(v) for k, v in inputs.items()}


class FlowRunner:
    """Runs a flow's tasks in dependency order on an executor."""

    def __init__(self, flow: Flow, executor: Executor | None = None) -> None:
        self.flow = flow
        self.executor = executor or LocalExecutor()

    def _check_parameters(self, parameters: Mapping[str, Any]) -> dict[str, Any]:
        declared = {p.name: p for p in self.flow.parameters()}
        unknown = sorted(set(parameters) - set(declared))
        if unknown:
            raise FlowError(
                f"flow {self.flow.name!r} has no parameter(s) {unknown}; its parameters are "
                f"{sorted(declared) or 'none'}"
            )
        values = {}
        for name, p in declared.items():
            if name in parameters:
                values[name] = parameters[name]
            elif p.required:
                raise FlowError(
                    f"flow {self.flow.name!r} needs parameter {name!r}: "
                    f"flow.run(parameters={{{name!r}: ...}})"
                )
            else:
                values[name] = p.default
        return values

    def run(
        self,
        parameters: Mapping[str, Any] | None = None,
        task_states: Mapping[Task, State] | None = None,
        context_keys: Mapping[str, Any] | None = None,
    ) -> State:
        flow = self.flow
        params = self._check_parameters(dict(parameters or {}))
        given = dict(task_states or {})
        prior: dict[Task, State] = {}
        if given:
            for t, s in flow.last_states.items():
                if isinstance(s, Finished):
                    prior[t] = s
            prior.update(given)
        flow_run_id = uuid.uuid4().hex
        flow_keys: dict[str, Any] = dict(context_keys or {})
        flow_keys.update(template_keys(datetime.now(timezone.utc)))
        flow_keys.update(flow_name=flow.name, flow_run_id=flow_run_id, parameters=params)
        logger.info("Flow '%s': run %s starting", flow.name, flow_run_id)

        states: dict[Task, State] = {}
        runner = TaskRunner(flow, flow_keys)
        self.executor.start()
        try:
            with context(flow_keys):
                self._loop(runner, states, prior)
        finally:
            self.executor.shutdown()
        flow.last_states = dict(states)
        public = {t: s for t, s in states.items() if not isinstance(t, _Constant)}
        refs = [states[t] for t in flow.reference_tasks() if t in states]
        if any(s.is_paused() for s in states.values()):
            final: State = Paused("a task is paused; resume it with task_states={task: Resume()}")
        elif all(s.is_successful() for s in refs):
            final = Success("all reference tasks succeeded")
        else:
            final = Failed("some reference tasks failed")
        final._result = ConstantResult(public)
        logger.info("Flow '%s': %s", flow.name, type(final).__name__)
        return final

    def _loop(
        self, runner: TaskRunner, states: dict[Task, State], prior: Mapping[Task, State]
    ) -> None:
        flow = self.flow
        order = flow.sorted_tasks()
        # Each task starts once all its upstream tasks have a state.
        waiting = {t: len({e.upstream for e in flow.upstream_edges(t)}) for t in order}
        ready = collections.deque(t for t in order if waiting[t] == 0)
        futures: dict[cf.Future[State], tuple[Task, int | None]] = {}
        children: dict[Task, list[State | None]] = {}

        def settle(t: Task) -> None:
            for down in {e.downstream for e in flow.downstream_edges(t)}:
                waiting[down] -= 1
                if waiting[down] == 0:
                    ready.append(down)

        unfinished: dict[Task, int] = {}  # mapped task -> children still running
        while True:
            while ready:
                t = ready.popleft()
                self._start(t, runner, states, prior, futures, children)
                if t in children:
                    unfinished[t] = len(children[t])
                if t in states:  # settled at once (constant, parameter, reused, failed map)
                    settle(t)
            if not futures:
                return
            done, _ = cf.wait(list(futures), return_when=cf.FIRST_COMPLETED)
            for fut in done:
                t, index = futures.pop(fut)
                try:
                    state = fut.result()
                except Exception as exc:  # a bug in the runner itself: fail the task loudly
                    state = Failed(f"internal error: {type(exc).__name__}: {exc}", exception=exc)
                if index is None:
                    states[t] = state
                    settle(t)
                else:
                    kids = children[t]
                    kids[index] = state
                    unfinished[t] -= 1
                    if unfinished[t] == 0:
                        states[t] = Mapped(
                            f"{len(kids)} mapped children", [k for k in kids if k is not None]
                        )
                        runner._log(t.name, states[t])
                        settle(t)

    def _start(
        self,
        t: Task,
        runner: TaskRunner,
        states: dict[Task, State],
        prior: Mapping[Task, State],
        futures: dict[cf.Future[State], tuple[Task, int | None]],
        children: dict[Task, list[State | None]],
    ) -> None:
        flow = self.flow
        edges = flow.upstream_edges(t)
        if isinstance(t, _Constant):
            states[t] = Success(result=t.value)
            return
        if isinstance(prior.get(t), Finished):
            states[t] = prior[t]
            return
        if isinstance(t, Parameter):
            value = runner.flow_keys["parameters"].get(t.name, t.default)
            states[t] = runner._log(t.name, Success(f"parameter {t.name}", value))
            return
        mapped_edges = [e for e in edges if e.mapped]
        if not mapped_edges:
            upstream: list[tuple[Edge, State]] = []
            for e in edges:
                up = states[e.upstream]
                upstream.append((e, up))
                if isinstance(up, Mapped):  # a reduce step: every child counts for the trigger
                    upstream.extend((e, child) for child in up.map_states)
            inputs = {e.key: states[e.upstream].result for e in edges if e.key is not None}
            unit = _Unit(t, upstream, inputs, prior=prior.get(t))
            futures[self.executor.submit(runner.run, unit)] = (t, None)
            return
        # Mapped: one child per element of the mapped inputs.
        try:
            units = self._children(t, edges, mapped_edges, runner, states, prior.get(t))
        except FlowError as exc:
            states[t] = runner._log(t.name, Failed(str(exc), exception=exc))
            return
        if not units:
            states[t] = runner._log(t.name, Mapped("no elements to map over", []))
            return
        children[t] = [None] * len(units)
        for i, unit in enumerate(units):
            futures[self.executor.submit(runner.run, unit)] = (t, i)

    def _children(
        self,
        t: Task,
        edges: list[Edge],
        mapped_edges: list[Edge],
        runner: TaskRunner,
        states: dict[Task, State],
        prior: State | None,
    ) -> list[_Unit]:
        lengths = {}
        for e in mapped_edges:
            value = states[e.upstream].result
            try:
                lengths[e.key or e.upstream.name] = len(value)
            except TypeError:
                raise FlowError(
                    f"task {t.name!r} maps over {e.key or e.upstream.name!r}, which is a "
                    f"{type(value).__name__}, not a sequence"
                ) from None
        if len(set(lengths.values())) > 1:
            raise FlowError(f"task {t.name!r} maps over inputs of different lengths: {lengths}")
        n = next(iter(lengths.values()))
        units = []
        for i in range(n):
            upstream: list[tuple[Edge, State]] = []
            inputs: dict[str, Any] = {}
            for e in edges:
                up = states[e.upstream]
                if e.mapped:
                    # A child's trigger sees the matching child upstream, if mapped.
                    upstream.append((e, up.map_states[i] if isinstance(up, Mapped) else up))
                    value = up.result[i]
                else:
                    upstream.append((e, up))
                    value = up.result
                if e.key is not None:
                    inputs[e.key] = value
            unit = _Unit(t, upstream, inputs, map_index=i, prior=prior)
            unit.keys = runner.keys_for(t, inputs, i)
            units.append(unit)
        if t.target is not None and units:
            self._check_targets(t, units, runner)
        return units

    def _check_targets(self, t: Task, units: list[_Unit], runner: TaskRunner) -> None:
        seen: dict[str, int] = {}
        for unit in units:
            try:
                with context(runner.flow_keys, unit.keys):
                    loc = runner.format_target(t, unit.keys)
            except ResultError as exc:
                raise FlowError(f"task {t.name!r}[{unit.map_index}]: target: {exc}") from exc
            assert loc is not None
            if loc in seen:
                raise FlowError(
                    f"mapped task {t.name!r}: children {seen[loc]} and {unit.map_index} both "
                    f"have the target {loc}; include {{map_index}} (or an input) in the target "
                    "so each child has its own"
                )
            seen[loc] = unit.map_index  # type: ignore[assignment]
            unit.target_location = loc
        result = runner.result_for(t)
        assert result is not None
        found = result.exists_many([u.target_location for u in units])  # type: ignore[misc]
        for unit, exists in zip(units, found, strict=True):
            unit.target_exists = exists
