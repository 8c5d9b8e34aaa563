"""The task runner: states, triggers, retries, mapping, checkpoints, targets, caches."""

from __future__ import annotations

import logging
import pickle
import subprocess
import sys
import textwrap
import threading
import time
import warnings
from datetime import datetime, timedelta, timezone

import numpy as np
import pytest
from fsspec.implementations.memory import MemoryFileSystem

from conftest import Counter
from resultkit import (
    Flow,
    Parameter,
    Resume,
    Task,
    cache_validators,
    config,
    context,
    task,
    unmapped,
)
from resultkit.errors import FlowError, ResultKitWarning
from resultkit.executors import ThreadExecutor
from resultkit.results import FSSpecResult, LocalResult, MemoryResult
from resultkit.signals import FAIL, SKIP
from resultkit.states import Retrying
from resultkit.triggers import (
    all_failed,
    all_finished,
    always_run,
    any_failed,
    any_successful,
    manual_only,
)

pytestmark = pytest.mark.usefixtures("fresh_caches")


# == the seed's examples, with our names ==================================================
def test_seed_checkpointing_examples(tmp_path):
    class MyTask(Task):
        def run(self):
            return 42

    class_task = MyTask(checkpoint=True, result=LocalResult(dir=tmp_path))

    @task(checkpoint=True, result=LocalResult(dir=tmp_path))
    def func_task():
        return 99

    with Flow("seed") as flow:
        a = class_task()
        b = func_task()
    state = flow.run()
    assert state.is_successful()
    assert state.result[a].result == 42 and state.result[b].result == 99
    stored = sorted(p.name for p in tmp_path.iterdir() if not p.name.endswith(".rkmeta"))
    assert len(stored) == 2
    assert {LocalResult(dir=tmp_path).read(n).value for n in stored} == {42, 99}


def test_seed_target_example(tmp_path):
    runs = Counter()

    @task(target="func_task_target.txt", checkpoint=True, result=LocalResult(dir=tmp_path))
    def func_task():
        runs()
        return 99

    with Flow("t") as flow:
        ref = func_task()
    first = flow.run()
    second = flow.run()
    assert runs.n == 1
    assert first.result[ref].result == second.result[ref].result == 99
    assert not first.result[ref].is_cached() and second.result[ref].is_cached()
    assert (tmp_path / "func_task_target.txt").exists()


def test_seed_templated_target(tmp_path):
    @task(target="{date:%A}/{task_name}.txt", checkpoint=True, result=LocalResult(dir=tmp_path))
    def func_task():
        return 99

    with Flow("t") as flow:
        ref = func_task()
    state = flow.run()
    day = datetime.now(timezone.utc).strftime("%A")
    assert (tmp_path / day / "func_task.txt").exists()
    assert state.result[ref].location.endswith(f"{day}/func_task.txt")


def test_seed_output_caching_examples():
    task_1 = Task(cache_for=timedelta(hours=1))
    task_2 = Task(cache_for=timedelta(hours=1), cache_validator=cache_validators.all_parameters)
    assert task_1.cache_validator is cache_validators.duration_only
    assert task_2.cache_validator is cache_validators.all_parameters


def test_target_read_by_second_process_without_running(tmp_path):
    script = textwrap.dedent(
        f"""
        import sys
        from resultkit import task, Flow
        from resultkit.results import LocalResult

        @task(target="answer.txt", checkpoint=True, result=LocalResult(dir={str(tmp_path)!r}))
        def answer():
            print("BODY RAN")
            return 42

        with Flow("p") as flow:
            ref = answer()
        state = flow.run()
        print("cached" if state.result[ref].is_cached() else "computed", state.result[ref].result)
        """
    )
    first = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, check=True
    )
    second = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, check=True
    )
    assert "BODY RAN" in first.stdout and "computed 42" in first.stdout
    assert "BODY RAN" not in second.stdout and "cached 42" in second.stdout


def test_design_example(tmp_path):
    @task(target="{date:%A}/{task_name}.txt", checkpoint=True, result=LocalResult(dir=tmp_path))
    def extract():
        return [1, 2, 3]

    class Load(Task):
        def run(self, rows):
            return len(rows)

    with Flow("etl") as flow:
        Parameter("day", default="mon")
        rows = extract()
        loaded = Load(
            cache_for=timedelta(hours=1), cache_validator=cache_validators.all_parameters
        )(rows)
    state = flow.run(parameters={"day": "tue"})
    assert state.is_successful()
    assert state.result[rows].result == [1, 2, 3] and not state.result[rows].is_cached()
    again = flow.run(parameters={"day": "tue"})
    assert again.result[rows].is_cached() and again.result[loaded].is_cached()
    other_day = flow.run(parameters={"day": "wed"})
    assert not other_day.result[loaded].is_cached()


# == states ========================================================================
def test_failed_task_carries_exception_and_flow_fails():
    @task
    def boom():
        raise ValueError("bad input 7")

    with Flow("f") as flow:
        ref = boom()
    state = flow.run()
    assert state.is_failed() and not state.is_successful()
    assert isinstance(state.result[ref].exception, ValueError)
    assert "bad input 7" in state.result[ref].message


def test_fail_signal_does_not_retry():
    runs = Counter()

    @task(max_retries=3)
    def fails():
        runs()
        raise FAIL("no point retrying")

    with Flow("f") as flow:
        ref = fails()
    state = flow.run()
    assert state.result[ref].is_failed() and runs.n == 1


# == retries =======================================================================
def test_retries_then_success_without_rerunning_upstream(caplog):
    up_runs, runs = Counter(), Counter()

    @task
    def upstream():
        up_runs()
        return 5

    @task(max_retries=2, retry_delay=timedelta(milliseconds=10))
    def flaky(x):
        runs()
        if runs.n < 3:
            raise ConnectionError("try again")
        return x * 2

    with Flow("r") as flow:
        ref = flaky(upstream())
    with caplog.at_level(logging.INFO, logger="resultkit"):
        state = flow.run()
    assert state.is_successful() and state.result[ref].result == 10
    assert runs.n == 3 and up_runs.n == 1
    assert state.result[ref].run_count == 3
    assert sum("Retrying" in r.getMessage() for r in caplog.records) == 2


def test_retries_exhausted_fail():
    @task(max_retries=1, retry_delay=timedelta(0))
    def always():
        raise RuntimeError("still broken")

    with Flow("r") as flow:
        ref = always()
    state = flow.run()
    assert state.result[ref].is_failed() and state.result[ref].run_count == 2


def test_retrying_state_resumes_from_persisted_inputs():
    runs = Counter()

    @task
    def upstream():
        runs()
        return 21

    @task
    def double(x):
        return 2 * x

    with Flow("r") as flow:
        ref = double(upstream())
    from resultkit.results import ConstantResult

    persisted = pickle.loads(
        pickle.dumps(Retrying("later", cached_inputs={"x": ConstantResult(4)}))
    )
    state = flow.run(task_states={ref: persisted})
    assert state.result[ref].result == 8


# == triggers ======================================================================
def _two_upstreams(first_fails: bool, second_fails: bool, trigger):
    @task
    def a():
        if first_fails:
            raise ValueError("a")
        return 1

    @task
    def b():
        if second_fails:
            raise ValueError("b")
        return 2

    @task(trigger=trigger)
    def c():
        return "ran"

    with Flow("t") as flow:
        ref = c(upstream_tasks=[a(), b()])
    return flow.run().result[ref]


@pytest.mark.parametrize(
    "trigger,fails,runs",
    [
        (None, (False, False), True),
        (None, (True, False), False),
        (all_failed, (True, True), True),
        (all_failed, (True, False), False),
        (any_successful, (True, False), True),
        (any_successful, (True, True), False),
        (any_failed, (False, True), True),
        (any_failed, (False, False), False),
        (all_finished, (True, True), True),
        (always_run, (False, True), True),
    ],
)
def test_triggers(trigger, fails, runs):
    state = _two_upstreams(*fails, trigger)
    if runs:
        assert state.is_successful() and state.result == "ran"
    else:
        assert state.is_failed() and type(state).__name__ == "TriggerFailed"


def test_manual_only_pauses_then_resumes_without_rerunning_upstream():
    up_runs = Counter()

    @task
    def prepare():
        up_runs()
        return 3

    @task(trigger=manual_only)
    def approve(x):
        return x + 1

    @task
    def after(y):
        return y * 10

    with Flow("m") as flow:
        a = approve(prepare())
        b = after(a)
    state = flow.run()
    assert state.is_paused() and state.result[a].is_paused()
    assert state.result[a].cached_inputs["x"].value == 3
    assert state.result[b].is_pending()
    resumed = flow.run(task_states={a: Resume()})
    assert resumed.is_successful()
    assert resumed.result[a].result == 4 and resumed.result[b].result == 40
    assert up_runs.n == 1


def test_skip_propagates():
    @task
    def skipper():
        raise SKIP("nothing to do today")

    @task
    def child(x):
        return x

    @task(skip_on_upstream_skip=False, trigger=always_run)
    def cleanup():
        return "cleaned"

    with Flow("s") as flow:
        s = skipper()
        c = child(s)
        k = cleanup(upstream_tasks=[s])
    state = flow.run()
    assert state.result[s].is_skipped() and state.result[s].message == "nothing to do today"
    assert state.result[c].is_skipped()
    assert state.result[k].result == "cleaned"
    assert state.is_successful()  # skipped counts as success


# == mapping ========================================================================
def test_map_with_unmapped_and_names(tmp_path):
    seen = []

    @task(target="m/{task_full_name}-{map_index}.pkl", result=LocalResult(dir=tmp_path))
    def add(x, y):
        seen.append(context.task_full_name)
        return x + y

    @task
    def total(xs):
        return sum(xs)

    with Flow("m") as flow:
        m = add.map([1, 2, 3], unmapped(10))
        t = total(m)
    state = flow.run()
    assert state.result[m].is_mapped()
    assert state.result[m].result == [11, 12, 13] and state.result[t].result == 36
    assert sorted(seen) == ["add[0]", "add[1]", "add[2]"]
    assert sorted(p.name for p in (tmp_path / "m").iterdir() if p.suffix == ".pkl") == [
        "add[0]-0.pkl",
        "add[1]-1.pkl",
        "add[2]-2.pkl",
    ]
    again = flow.run()
    assert all(s.is_cached() for s in again.result[m].map_states)


def test_map_over_mapped_and_failed_child_fails_reduce():
    @task
    def inc(x):
        if x == 2:
            raise ValueError("two")
        return x + 1

    @task
    def total(xs):
        return sum(xs)

    with Flow("m") as flow:
        m = inc.map([0, 1, 2])
        m2 = inc.map(m)
        t = total(m)
    state = flow.run()
    kids = state.result[m].map_states
    assert [k.is_successful() for k in kids] == [True, True, False]
    assert [k.is_successful() for k in state.result[m2].map_states] == [True, False, False]
    assert state.result[t].is_failed()


def test_mapped_target_collision_is_an_error_before_running(tmp_path):
    runs = Counter()

    @task(target="same.pkl", result=LocalResult(dir=tmp_path))
    def body(x):
        runs()
        return x

    with Flow("m") as flow:
        m = body.map([1, 2])
    state = flow.run()
    assert state.result[m].is_failed()
    assert "{map_index}" in state.result[m].message and "same.pkl" in state.result[m].message
    assert runs.n == 0


class CountingMemoryFS(MemoryFileSystem):
    """A real in-memory filesystem that counts metadata calls."""

    calls = {"info": 0, "ls": 0}

    def info(self, path, **kwargs):
        CountingMemoryFS.calls["info"] += 1
        return super().info(path, **kwargs)

    def ls(self, path, detail=True, **kwargs):
        CountingMemoryFS.calls["ls"] += 1
        return super().ls(path, detail=detail, **kwargs)


def test_mapped_targets_checked_in_bulk():
    fs = CountingMemoryFS(skip_instance_cache=True)
    result = FSSpecResult(fs, "/bulk-test")

    @task(target="out/{map_index}.pkl", result=result)
    def square(x):
        return x * x

    with Flow("bulk") as flow:
        m = square.map(list(range(1000)))
    flow.run()
    CountingMemoryFS.calls.update(info=0, ls=0)
    state = flow.run()
    assert all(s.is_cached() for s in state.result[m].map_states)
    assert CountingMemoryFS.calls["ls"] == 1
    assert CountingMemoryFS.calls["info"] < 50  # not one request per child


# == template keys and context ================================================================
def test_template_keys_available(tmp_path):
    captured = {}

    @task
    def look(x):
        captured.update(context.to_dict())
        return x

    with Flow("keys") as flow:
        Parameter("region", default="eu")
        look(5)
    with context(user_key="mine"):
        flow.run(parameters={"region": "us"})
    for key in (
        "date",
        "today",
        "yesterday",
        "tomorrow",
        "today_nodash",
        "yesterday_nodash",
        "tomorrow_nodash",
        "task_name",
        "task_full_name",
        "task_slug",
        "task_run_id",
        "map_index",
        "flow_name",
        "flow_run_id",
        "parameters",
        "region",
        "x",
        "user_key",
    ):
        assert key in captured, key
    assert isinstance(captured["date"], datetime)
    assert captured["today"] == captured["date"].strftime("%Y-%m-%d")
    assert captured["today_nodash"] == captured["date"].strftime("%Y%m%d")
    assert captured["region"] == "us" and captured["parameters"] == {"region": "us"}
    assert captured["flow_name"] == "keys" and captured["x"] == 5 and captured["user_key"] == "mine"


def test_target_uses_parameters_inputs_and_user_keys(tmp_path):
    @task(target="{region}/{flow_name}/{n}-{extra}.pkl", result=LocalResult(dir=tmp_path))
    def t(n):
        return n

    with Flow("tk") as flow:
        Parameter("region")
        ref = t(7)
    with context(extra="x"):
        state = flow.run(parameters={"region": "eu"})
    assert state.result[ref].location.endswith("eu/tk/7-x.pkl")


def test_inputs_named_like_result_arguments(tmp_path):
    @task(target="{location}-{value}.pkl", result=LocalResult(dir=tmp_path))
    def t(location, value):
        return f"{location}:{value}"

    with Flow("c") as flow:
        ref = t("here", 3)
    state = flow.run()
    assert state.result[ref].result == "here:3"
    assert state.result[ref].location.endswith("here-3.pkl")


def test_callable_target(tmp_path):
    @task(
        target=lambda **kw: f"call/{kw['task_name']}-{kw['n'] * 2}.pkl",
        result=LocalResult(dir=tmp_path),
    )
    def t(n):
        return n

    with Flow("c") as flow:
        ref = t(21)
    assert flow.run().result[ref].location.endswith("call/t-42.pkl")


def test_missing_target_key_fails_task_with_named_key(tmp_path):
    @task(target="{nope}.pkl", result=LocalResult(dir=tmp_path))
    def t():
        return 1

    with Flow("c") as flow:
        ref = t()
    state = flow.run()
    assert state.result[ref].is_failed() and "'nope'" in state.result[ref].message


def test_unsafe_target_from_input_is_refused(tmp_path):
    @task(target="{name}.pkl", result=LocalResult(dir=tmp_path / "r"))
    def t(name):
        return 1

    with Flow("c") as flow:
        ref = t("../../escape")
    state = flow.run()
    assert state.result[ref].is_failed() and ".." in state.result[ref].message
    assert not (tmp_path / "escape.pkl").exists()


# == checkpointing =========================================================================
def test_none_result_is_checkpointed(tmp_path):
    runs = Counter()

    @task(target="none.pkl", result=LocalResult(dir=tmp_path))
    def nothing():
        runs()
        return None

    with Flow("n") as flow:
        ref = nothing()
    flow.run()
    state = flow.run()
    assert runs.n == 1 and state.result[ref].is_cached() and state.result[ref].result is None


def test_flow_result_is_default_and_checkpoint_none_follows_config(tmp_path, monkeypatch):
    @task
    def one():
        return 1

    @task(checkpoint=False)
    def two():
        return 2

    with Flow("fr", result=LocalResult(dir=tmp_path, location="{task_name}.pkl")) as flow:
        one()
        two()
    flow.run()
    assert (tmp_path / "one.pkl").exists() and not (tmp_path / "two.pkl").exists()
    (tmp_path / "one.pkl").unlink()
    monkeypatch.setattr(config, "checkpointing", False)
    flow.run()
    assert not (tmp_path / "one.pkl").exists()


def test_global_off_warns_once_for_targets(tmp_path, monkeypatch):
    monkeypatch.setattr(config, "checkpointing", False)
    from resultkit.engine import persist

    monkeypatch.setattr(persist, "_warned_checkpoint_off", set())

    @task(target="t.pkl", result=LocalResult(dir=tmp_path))
    def t():
        return 1

    with Flow("off") as flow:
        t()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        flow.run()
        flow.run()
    relevant = [w for w in caught if "checkpointing is off" in str(w.message)]
    assert len(relevant) == 1 and "'t'" in str(relevant[0].message)
    assert not (tmp_path / "t.pkl").exists()


@pytest.mark.parametrize(
    "raw,expected", [("false", False), ("0", False), ("true", True), ("", True)]
)
def test_checkpointing_environment_variable(raw, expected):
    code = "from resultkit import config; print(config.checkpointing)"
    out = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        check=True,
        env={"RESULTKIT_CHECKPOINTING": raw, "PATH": "/usr/bin:/bin"},
    )
    assert out.stdout.strip() == str(expected)


def test_checkpointing_environment_variable_rejects_garbage():
    code = "import resultkit"
    out = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        env={"RESULTKIT_CHECKPOINTING": "maybe", "PATH": "/usr/bin:/bin"},
    )
    assert out.returncode != 0 and "RESULTKIT_CHECKPOINTING" in out.stderr


def test_corrupt_target_recomputes_and_warns(tmp_path):
    runs = Counter()

    @task(target="c.pkl", result=LocalResult(dir=tmp_path))
    def t():
        runs()
        return {"good": True}

    with Flow("c") as flow:
        ref = t()
    flow.run()
    data = bytearray((tmp_path / "c.pkl").read_bytes())
    data[-3] ^= 0xFF
    (tmp_path / "c.pkl").write_bytes(bytes(data))
    with pytest.warns(ResultKitWarning, match="c.pkl"):
        state = flow.run()
    assert runs.n == 2 and state.result[ref].result == {"good": True}
    assert not state.result[ref].is_cached()
    assert LocalResult(dir=tmp_path).read("c.pkl").value == {"good": True}


def test_target_with_cache_for_expires(tmp_path):
    runs = Counter()

    @task(target="e.pkl", result=LocalResult(dir=tmp_path), cache_for=timedelta(hours=1))
    def t():
        runs()
        return runs.n

    with Flow("e") as flow:
        ref = t()
    flow.run()
    assert flow.run().result[ref].is_cached() and runs.n == 1
    ref.cache_for = timedelta(seconds=0)
    state = flow.run()
    assert runs.n == 2 and not state.result[ref].is_cached() and state.result[ref].result == 2


# == output caching ==========================================================================
def _cached_flow(validator, cache_key=None):
    runs = Counter()

    @task(cache_for=timedelta(hours=1), cache_validator=validator, cache_key=cache_key)
    def compute(x, y):
        runs()
        return x + y

    with Flow("oc") as flow:
        a = Parameter("a", default=1)
        b = Parameter("b", default=2)
        ref = compute(a, 100)
        compute(b, 100)  # a second use under the same key
    return flow, ref, runs


def test_never_use():
    flow, ref, runs = _cached_flow(cache_validators.never_use)
    flow.run()
    flow.run()
    assert runs.n == 4


def test_duration_only_and_expiry():
    flow, ref, runs = _cached_flow(cache_validators.duration_only)
    flow.run()
    assert runs.n == 1  # the second use hits the first one's cache (same key, valid)
    state = flow.run()
    assert runs.n == 1 and state.result[ref].is_cached()
    assert "output cache" in state.result[ref].message
    for t in flow.get_tasks("compute"):  # entries written from now on expire in 0.2 s
        t.cache_for = timedelta(milliseconds=200)
    context.caches.clear()
    flow.run()
    assert runs.n == 2  # the second use hits the new, unexpired entry
    time.sleep(0.3)
    flow.run()
    assert runs.n == 3


def test_all_inputs():
    flow, ref, runs = _cached_flow(cache_validators.all_inputs)
    state = flow.run(parameters={"a": 1, "b": 2})
    assert runs.n == 2
    state = flow.run(parameters={"a": 2, "b": 1})
    assert runs.n == 2 and state.result[ref].is_cached() and state.result[ref].result == 102
    flow.run(parameters={"a": 5, "b": 5})
    assert runs.n == 3


def test_all_parameters():
    flow, ref, runs = _cached_flow(cache_validators.all_parameters)
    flow.run(parameters={"a": 1, "b": 2})
    assert runs.n == 1  # second use: same parameters, unexpired -> cached (inputs ignored)
    flow.run(parameters={"a": 1, "b": 2})
    assert runs.n == 1
    flow.run(parameters={"a": 1, "b": 3})
    assert runs.n == 2


def test_partial_inputs_only():
    flow, ref, runs = _cached_flow(cache_validators.partial_inputs_only(validate_on=["y"]))
    flow.run(parameters={"a": 1, "b": 2})
    assert runs.n == 1  # y (100) matches for both uses
    context.caches.clear()
    flow, ref, runs = _cached_flow(cache_validators.partial_inputs_only(validate_on=["x"]))
    flow.run(parameters={"a": 1, "b": 2})
    assert runs.n == 2


def test_partial_parameters_only():
    flow, ref, runs = _cached_flow(cache_validators.partial_parameters_only(validate_on=["a"]))
    flow.run(parameters={"a": 1, "b": 2})
    flow.run(parameters={"a": 1, "b": 99})
    assert runs.n == 1
    flow.run(parameters={"a": 2, "b": 99})
    assert runs.n == 2


def test_cache_key_shared_between_flows():
    runs = Counter()

    @task(cache_for=timedelta(hours=1), cache_key="shared-answer")
    def answer():
        runs()
        return 42

    @task(cache_for=timedelta(hours=1), cache_key="shared-answer")
    def same_answer():
        runs()
        return -1

    with Flow("one") as f1:
        answer()
    with Flow("two") as f2:
        ref = same_answer()
    f1.run()
    state = f2.run()
    assert runs.n == 1 and state.result[ref].result == 42 and state.result[ref].is_cached()


def test_numpy_inputs_hashed_for_caching():
    runs = Counter()

    @task(cache_for=timedelta(hours=1), cache_validator=cache_validators.all_inputs)
    def total(arr):
        runs()
        return float(arr.sum())

    with Flow("np") as flow:
        p = Parameter("arr")
        total(p)
    flow.run(parameters={"arr": np.arange(10)})
    flow.run(parameters={"arr": np.arange(10)})
    assert runs.n == 1
    flow.run(parameters={"arr": np.arange(11)})
    assert runs.n == 2


def test_unhashable_input_disables_caching_with_warning():
    runs = Counter()

    @task(cache_for=timedelta(hours=1), cache_validator=cache_validators.all_inputs)
    def use(lock):
        runs()
        return 1

    with Flow("u") as flow:
        use(threading.Lock())
    with pytest.warns(ResultKitWarning, match="cannot be hashed"):
        flow.run()
    with pytest.warns(ResultKitWarning):
        flow.run()
    assert runs.n == 2 and len(context.caches) == 0


# == building and running ====================================================================
def test_missing_and_unknown_parameters():
    @task
    def t(x):
        return x

    with Flow("p") as flow:
        t(Parameter("needed"))
    with pytest.raises(FlowError, match="needed"):
        flow.run()
    with pytest.raises(FlowError, match="unknown_one"):
        flow.run(parameters={"needed": 1, "unknown_one": 2})


def test_call_outside_flow_is_clear():
    @task
    def t():
        return 1

    with pytest.raises(FlowError, match="outside a flow"):
        t()
    assert t.run() == 1


def test_bad_arguments_named():
    @task
    def t(x):
        return x

    with Flow("b"), pytest.raises(FlowError, match="run"):
        t(1, 2)


def test_reserved_input_names_refused():
    with pytest.raises(FlowError, match="reserved"):

        @task
        def t(mapped):
            return mapped


def test_thread_executor_runs_independent_tasks_concurrently():
    barrier = threading.Barrier(2, timeout=10)

    @task
    def meet(i):
        barrier.wait()  # only passes if both run at the same time
        return i

    with Flow("par", executor=ThreadExecutor(max_workers=2)) as flow:
        a = meet(1)
        b = meet(2)
    state = flow.run()
    assert state.is_successful() and state.result[a].result == 1 and state.result[b].result == 2


def test_logging_one_line_per_state_and_cache_source(tmp_path, caplog):
    @task(target="l.pkl", result=LocalResult(dir=tmp_path))
    def t():
        return 1

    with Flow("log") as flow:
        t()
    flow.run()
    caplog.clear()
    with caplog.at_level(logging.INFO, logger="resultkit"):
        flow.run()
    lines = [r.getMessage() for r in caplog.records if r.getMessage().startswith("Task")]
    assert len(lines) == 1 and "Cached" in lines[0] and "l.pkl" in lines[0]


def test_memory_result_flow_checkpoint():
    result = MemoryResult(root="/flow-memory-test", location="{flow_name}/{task_name}.pkl")

    @task(checkpoint=True, result=result)
    def t():
        return "m"

    with Flow("mem") as flow:
        ref = t()
    state = flow.run()
    assert state.result[ref].location == "memory:///flow-memory-test/mem/t.pkl"
    assert result.read("mem/t.pkl").value == "m"


def test_diamond_waits_for_both_branches_with_threads():
    import time as _time

    @task
    def source():
        return 1

    @task
    def slow(x):
        _time.sleep(0.2)
        return x + 1

    @task
    def fast(x):
        return x + 10

    @task
    def join(a, b):
        return a + b

    with Flow("diamond", executor=ThreadExecutor(4)) as flow:
        s = source()
        j = join(slow(s), fast(s))
    state = flow.run()
    assert state.result[j].result == 13


def test_cycle_is_refused():
    @task
    def a(x=None):
        return 1

    with Flow("cyc") as flow:
        first = a()
        second = a(first)
        with pytest.raises(FlowError, match="cycle"):
            first.set_upstream(second, flow=flow)


def test_long_chain_runs_in_order():
    @task
    def inc(x):
        return x + 1

    with Flow("chain") as flow:
        x = inc(0)
        for _ in range(999):
            x = inc(x)
    assert flow.run().result[x].result == 1000


def test_checkpoint_write_failure_fails_the_task_with_the_reason(tmp_path):
    @task(checkpoint=True, result=LocalResult(dir=tmp_path, location="{task_name}.pkl"))
    def makes_lock():
        return threading.Lock()

    with Flow("wf") as flow:
        ref = makes_lock()
    state = flow.run()
    assert state.result[ref].is_failed()
    assert "could not write the result" in state.result[ref].message
    assert "PickleSerializer" in state.result[ref].message
    assert list(tmp_path.iterdir()) == []  # nothing partial left behind


def test_retrying_state_carries_inputs_as_results():
    from resultkit.results import Result

    changes = []
    seen = []

    def record(task_, old, new):
        changes.append((type(old).__name__, type(new).__name__, new))

    @task(max_retries=1, retry_delay=timedelta(0), state_handlers=[record])
    def once_broken(x):
        seen.append(x)
        if len(seen) == 1:
            raise OSError("transient")
        return x

    with Flow("rs") as flow:
        ref = once_broken(7)
    state = flow.run()
    assert state.result[ref].result == 7 and seen == [7, 7]
    names = [(old, new) for old, new, _ in changes]
    assert names == [
        ("Pending", "Running"),
        ("Running", "Retrying"),
        ("Retrying", "Running"),
        ("Running", "Success"),
    ]
    retrying = changes[1][2]
    assert isinstance(retrying.cached_inputs["x"], Result)
    assert retrying.cached_inputs["x"].value == 7
    assert isinstance(retrying.exception, OSError)


def test_state_handler_can_replace_a_state():
    from resultkit.states import Failed, Success

    def forgive(task_, old, new):
        return Success("forgiven", "fallback") if isinstance(new, Failed) else None

    @task(state_handlers=[forgive])
    def broken():
        raise ValueError("nope")

    with Flow("sh") as flow:
        ref = broken()
    state = flow.run()
    assert state.result[ref].result == "fallback" and state.result[ref].message == "forgiven"


def test_mapped_children_do_not_share_an_output_cache():
    runs = Counter()

    @task(cache_for=timedelta(hours=1))  # duration_only: inputs are not compared
    def square(x):
        runs()
        return x * x

    with Flow("mc") as flow:
        m = square.map([1, 2, 3])
    first = flow.run()
    second = flow.run()
    assert first.result[m].result == second.result[m].result == [1, 4, 9]
    assert runs.n == 3 and all(s.is_cached() for s in second.result[m].map_states)
