"""Scheduling a flow run: tasks in dependency order on an executor, mapped tasks as children."""

from __future__ import annotations

import collections
import concurrent.futures as cf
import logging
import uuid
from collections.abc import Iterable, Mapping
from datetime import datetime, timezone
from typing import Any

from ..caching import CacheStore, ResultCacheStore
from ..errors import FlowError
from ..results import ConstantResult, LocalResult, StorageResult
from ._plan import FlowPlan, plan_of
from ._start import start_task
from .context import config, context, default_cache_store
from .executors import Executor, LocalExecutor, ThreadExecutor
from .flow import Flow, _Constant
from .mapping import MappedRun
from .output_cache import OutputCaching
from .prefetch import read_mapped_hits, settle_target_hits
from .preflight import check_run_id, refuse_recorded, refuse_shared_targets
from .run_history import read_run, resumed_states
from .runs import RunRecords, default_run_store, flow_file, run_store_from
from .state import Failed, Finished, Paused, Resume, State, Success
from .task import Task
from .task_runner import TaskRunner
from .transitions import internal_error
from .unit import RunUnit, template_keys
from .write_batch import WriteBatch, WriteQueued

__all__ = ["FlowRunner"]

logger = logging.getLogger("resultkit")


def _any_paused(states: Iterable[State]) -> bool:
    for s in states:  # noqa: SIM110 (a loop costs less than any(): every task of a run)
        if s.is_paused():
            return True
    return False


class FlowRunner:
    """Runs a flow's tasks in dependency order on an executor."""

    def __init__(self, flow: Flow, executor: Executor | None = None) -> None:
        self.flow = flow
        self.executor = executor or LocalExecutor()
        self._started_at: str | None = None  # of the recorded run a resume continues

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

    def _cache_store(self, context_keys: Mapping[str, Any]) -> CacheStore:
        """The output cache store of this run.

        The ``caches`` key (``flow.run(caches=...)`` or ``with context(caches=...)``),
        else ``Flow(cache_store=...)``, else the default: ``config.cache_store``,
        ``RESULTKIT_CACHE_STORE``, the folder under ``RESULTKIT_HOME``.
        """
        store = context_keys.get("caches", context.get("caches"))
        if store is None:
            own = getattr(self.flow, "cache_store", None)
            return own if own is not None else default_cache_store()
        if isinstance(store, StorageResult):
            return ResultCacheStore(store)
        if not isinstance(store, CacheStore):
            raise FlowError(
                f"flow {self.flow.name!r}: the 'caches' key must be a CacheStore (get/put), "
                "e.g. resultkit.caching.OutputCache(), or a Result to keep entries on, got "
                f"{type(store).__name__}"
            )
        return store

    def run(
        self,
        parameters: Mapping[str, Any] | None = None,
        task_states: Mapping[Task, State] | None = None,
        context_keys: Mapping[str, Any] | None = None,
        run_id: str | None = None,
        resumed: tuple[Mapping[Task, State], Mapping[tuple[int, int], State]] | None = None,
    ) -> State:
        """Run the flow; its State's result maps each task reference to its State.

        ``resumed`` holds the states a resume starts from (of tasks, and of
        mapped children by task position and map index).
        """
        flow = self.flow
        params = self._check_parameters(dict(parameters or {}))
        store = self._cache_store(context_keys or {})
        given = dict(task_states or {})
        prior: dict[Task, State] = {}
        if given:
            for t, s in flow.last_states.items():
                if isinstance(s, Finished):
                    prior[t] = s
            prior.update(given)
        if resumed is not None:
            prior = {**resumed[0], **prior}
        flow_run_id = uuid.uuid4().hex if run_id is None else run_id
        check_run_id(flow_run_id)
        flow_keys: dict[str, Any] = dict(context_keys or {})
        flow_keys.update(template_keys(datetime.now(timezone.utc)))
        flow_keys.update(flow_name=flow.name, flow_run_id=flow_run_id, parameters=params)
        logger.info("Flow '%s': run %s starting", flow.name, flow_run_id)

        states: dict[Task, State] = {}
        caching = OutputCaching(store, flow.name, params, flow.result, flow_keys.get("refresh"))
        plan = plan_of(flow)
        runner = TaskRunner(flow, flow_keys, caching, plan.targets)
        if resumed is not None:
            runner.child_priors = dict(resumed[1])
        if config.batch_writes and isinstance(self.executor, (LocalExecutor, ThreadExecutor)):
            runner.batch = WriteBatch()  # Dask's workers write their own values
        store_of_runs = self._run_store()
        if store_of_runs is not None:
            if run_id is not None and resumed is None:
                refuse_recorded(store_of_runs, run_id)
            runner.records = RunRecords(store_of_runs, flow_run_id, flow, plan.positions)
            runner.records.start(
                params, flow_keys.get("flow_file") or flow.defined_in or flow_file()
            )
            if resumed is not None and self._started_at:
                runner.records.keep_started(self._started_at)  # a resume keeps the run's start
            # Once here, not once per task run on the workers; and a named run is
            # resumable even if it stores nothing.
            if self.executor.remote or (run_id is not None and resumed is None):
                runner.records.start_now()
        with context(flow_keys):
            refuse_shared_targets(flow, runner, plan)
        self.executor.start()
        try:
            with context(flow_keys):
                self._loop(runner, states, prior, plan)
            self.executor.gather(states)  # values kept on workers, before they go
        finally:
            if runner.batch is not None:
                runner.batch.abandon()  # stopped mid-layer (Ctrl-C): release held target locks
            self.executor.shutdown()
        flow.last_states = dict(states)
        public = {t: s for t, s in states.items() if not isinstance(t, _Constant)}
        refs = [states[t] for t in flow.reference_tasks() if t in states]
        if _any_paused(states.values()):
            final: State = Paused("a task is paused; resume it with task_states={task: Resume()}")
        elif all(s.is_successful() for s in refs):
            final = Success("all reference tasks succeeded")
        else:
            final = Failed("some reference tasks failed")
        final._result = ConstantResult(public)
        final.run_id = flow_run_id
        if runner.records is not None:
            # A resume ends a run that has records (even if it wrote none itself).
            resuming = resumed is not None
            runner.records.finish(final, others_may_record=self.executor.remote or resuming)
        logger.info("Flow '%s': %s (run %s)", flow.name, type(final).__name__, flow_run_id)
        return final

    def _run_store(self) -> StorageResult | None:
        own = getattr(self.flow, "run_store", None)
        if own is not None:
            return run_store_from(own, f"Flow({self.flow.name!r}, run_store=...)")
        return default_run_store()

    def resume(
        self,
        run_id: str,
        task_states: Mapping[Task, State] | None = None,
        context_keys: Mapping[str, Any] | None = None,
    ) -> State:
        """Run again the recorded run ``run_id``, reusing what it finished (see ``Flow.resume``)."""
        store = self._run_store()
        if store is None:
            raise FlowError(
                f"flow {self.flow.name!r}: run records are off (run_store 'off'), so there is "
                "nothing to resume; set a run_store before the run"
            )
        info = read_run(store, run_id)
        self._started_at = info.started
        runner_flow = self.flow
        default = LocalResult()  # a target's Result when neither task nor flow has one
        whole, children = resumed_states(
            runner_flow, info, lambda t: t.result or runner_flow.result or default, store
        )
        given = dict(task_states or {})
        for t, s in list(given.items()):
            recorded = whole.get(t)
            if isinstance(recorded, Finished):
                logger.info("Task '%s' finished in run %s: %s not applied", t.name, run_id, s)
                del given[t]  # approved and done: approving again must not run it twice
            elif isinstance(s, Resume) and recorded is not None and recorded.cached_inputs:
                given[t] = Resume(s.message, cached_inputs=recorded.cached_inputs)
        logger.info(
            "Flow '%s': resuming run %s (%d task runs recorded)", info.flow, run_id, len(info.tasks)
        )
        declared = {p.name for p in self.flow.parameters()}
        params = {k: v for k, v in info.parameters.items() if k in declared}
        return self.run(
            parameters=params,
            task_states=None,
            context_keys=context_keys,
            run_id=run_id,
            resumed=({**whole, **given}, children),
        )

    def _loop(
        self,
        runner: TaskRunner,
        states: dict[Task, State],
        prior: Mapping[Task, State],
        plan: FlowPlan,
    ) -> None:
        # Each task starts once all its upstream tasks have a state.
        waiting = dict(plan.waits_for)
        releases = plan.releases
        ready = collections.deque(plan.roots)
        futures: dict[cf.Future[State], tuple[Task, int | None]] = {}
        mapped: dict[Task, MappedRun] = {}
        batch = runner.batch
        # The default executor runs each task here, at once: its states need no future.
        inline = self.executor if type(self.executor) is LocalExecutor else None

        def settle(t: Task) -> None:
            for down in releases[t]:
                waiting[down] -= 1
                if waiting[down] == 0:
                    ready.append(down)

        def record(t: Task, index: int | None, state: State) -> None:
            if index is None:
                states[t] = state
                settle(t)
            elif mapped[t].child_done(index, state):
                states[t] = mapped.pop(t).finish()
                settle(t)

        def write_batch(batch: WriteBatch) -> None:
            for unit, state in batch.flush():
                record(unit.task, unit.map_index, state)

        while True:
            while ready:
                # A layer: every task whose upstream tasks all have a state.
                layer: list[tuple[Task, int | None, RunUnit]] = []
                children = False  # whether the layer holds mapped children
                while ready:
                    t = ready.popleft()
                    if type(t) is _Constant:  # start_task's first case, without the call
                        states[t] = plan.constant_state(t)
                        settle(t)
                        continue
                    try:
                        for i, u in start_task(t, runner, states, prior, mapped, plan):
                            layer.append((t, i, u))
                            children = children or i is not None
                    except Exception as exc:  # a bug in resultkit: this task fails, the run goes on
                        logger.error("Task '%s': internal error", t.name, exc_info=True)
                        states[t] = internal_error(t, exc)
                        mapped.pop(t, None)
                    if t in states:  # settled at once (constant, parameter, reused, failed map)
                        settle(t)
                pending = [u for _, _, u in layer]
                if self.executor.remote:  # a hit never takes a worker
                    hits = settle_target_hits(runner, pending)
                elif children:  # children's targets read at once, not one after the other
                    hits = read_mapped_hits(runner, pending)
                else:
                    hits = {}
                for n, (t, index, unit) in enumerate(layer):
                    if hits and n in hits:
                        record(t, index, hits[n])
                    elif inline is not None:
                        state = inline.run_here(runner, unit)
                        if not isinstance(state, WriteQueued):  # else when its batch is written
                            record(t, index, state)
                            continue  # the batch did not grow
                    else:
                        futures[self.executor.submit_unit(runner, unit)] = (t, index)
                    if batch is not None and batch.full:  # bounded: unwritten values wait
                        write_batch(batch)
            if batch is not None and len(batch) and (batch.full or all(f.done() for f in futures)):
                write_batch(batch)  # children finish; their downstream tasks may be ready
                continue
            if not futures:
                return
            done, _ = cf.wait(list(futures), return_when=cf.FIRST_COMPLETED)
            for fut in done:
                t, index = futures.pop(fut)
                try:
                    state = fut.result()
                except Exception as exc:  # TaskRunner.run does not raise; an executor may
                    logger.error("Task '%s': internal error", t.name, exc_info=True)
                    state = internal_error(t, exc)
                if not isinstance(state, WriteQueued):  # recorded when its batch is written
                    record(t, index, state)
