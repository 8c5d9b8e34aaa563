"""Public homes of the runner's names, signals, and Prefect 1 compatibility of the context."""

from __future__ import annotations

import importlib
import pathlib
import types
from datetime import timedelta

import pytest

import resultkit
from resultkit import Flow, Task, context, task
from resultkit.errors import ResultKitError, UnhashableInputError

SRC = pathlib.Path(resultkit.__file__).parent

PUBLIC = {
    "resultkit": ["Task", "task", "Flow", "Parameter", "unmapped", "context", "config", "Resume"],
    "resultkit.states": ["State", "Success", "Failed", "Cached", "Mapped", "Paused", "Resume"],
    "resultkit.triggers": ["all_successful", "manual_only", "always_run", "any_failed"],
    "resultkit.executors": ["Executor", "LocalExecutor", "ThreadExecutor"],
    "resultkit.signals": ["Signal", "SKIP", "FAIL", "PAUSE"],
    "resultkit.cache_validators": ["never_use", "duration_only", "all_inputs", "all_parameters"],
}


@pytest.mark.parametrize("module", sorted(PUBLIC))
def test_public_homes_export_their_names(module):
    mod = importlib.import_module(module)
    for name in PUBLIC[module]:
        assert name in mod.__all__ and getattr(mod, name) is not None


def test_engine_package_is_internal_and_re_exports_nothing():
    import resultkit.engine as engine

    assert "internal" in (engine.__doc__ or "").lower()
    assert getattr(engine, "__all__", []) == []
    # Only its submodules (attributes once imported); no re-exported class or object.
    exported = {k: v for k, v in vars(engine).items() if not k.startswith("_")}
    assert all(isinstance(v, types.ModuleType) for v in exported.values()), exported


def test_signals_live_in_resultkit_signals_and_are_not_resultkit_errors():
    from resultkit.signals import FAIL, PAUSE, SKIP, Signal

    for signal in (Signal, SKIP, FAIL, PAUSE):
        assert signal.__module__ == "resultkit.signals"
        assert not issubclass(signal, ResultKitError)
        assert issubclass(signal, Exception)
    with pytest.raises(ImportError):
        importlib.import_module("resultkit.engine.signals")


def test_except_resultkit_error_does_not_swallow_a_skip():
    from resultkit.signals import SKIP

    @task
    def careful():
        try:
            raise SKIP("not today")
        except ResultKitError:  # a library error would be handled here; a signal is not
            return "swallowed"

    with Flow("skip-through") as flow:
        ref = careful()
    state = flow.run().result[ref]
    assert state.is_skipped() and state.message == "not today"


def test_unhashable_input_error_lives_in_errors():
    from resultkit.caching import input_token

    assert UnhashableInputError.__module__ == "resultkit.errors"
    assert issubclass(UnhashableInputError, ResultKitError)
    assert issubclass(UnhashableInputError, TypeError)
    import threading

    with pytest.raises(UnhashableInputError, match="lock"):
        input_token(threading.Lock())


def test_runner_modules_are_small():
    sizes = {
        p.relative_to(SRC).as_posix(): len(p.read_text().splitlines())
        for folder in ("engine", "caching")
        for p in (SRC / folder).glob("*.py")
    }
    assert "engine/runner.py" not in sizes or sizes["engine/runner.py"] < 250
    too_big = {name: n for name, n in sizes.items() if n > 350}
    assert not too_big, too_big


def test_task_run_count_and_loop_count_in_context():
    seen = []

    @task(max_retries=2, retry_delay=timedelta(0))
    def flaky():
        seen.append((context.task_run_count, context.task_loop_count))
        if len(seen) < 3:
            raise ConnectionError("again")
        return "ok"

    with Flow("counts") as flow:
        ref = flaky()
    state = flow.run().result[ref]
    assert state.result == "ok" and state.run_count == 3
    assert seen == [(1, 1), (2, 1), (3, 1)]


def test_task_run_count_continues_from_a_retrying_state():
    from resultkit.states import Retrying

    seen = []

    @task
    def once():
        seen.append(context.task_run_count)
        return 1

    with Flow("counts-resume") as flow:
        ref = once()
    flow.run(task_states={ref: Retrying("again", run_count=2, cached_inputs={})})
    assert seen == [3]


def test_base_task_run_returns_none():
    assert Task().run() is None
