"""The warm path: what a flow remembers between runs, and a target hit's short road.

A flow keeps its plan (order, edges, the targets it formatted) between runs
while it is unchanged, and a run whose target is present reads it before any
other setup. Each test here checks that what is remembered is dropped when
it no longer holds, and that a warm run says and does what the general path
does (logs, handlers, context, misses, shared targets).
"""

from __future__ import annotations

import logging

import pytest

from resultkit import Flow, Parameter, context, task
from resultkit.errors import FlowError
from resultkit.results import LocalResult
from resultkit.serializers import PickleSerializer
from resultkit.states import Cached, Failed, Pending, Success


def _messages(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.name == "resultkit"]


def test_a_task_added_after_a_run_is_run_and_its_clashing_target_refused(tmp_path):
    store = LocalResult(dir=tmp_path)
    ran = []

    def make(name):
        return task(name=name, target="shared.pkl", result=store)(lambda: ran.append(name))

    with Flow("grows", run_store="off") as flow:
        make("first")()
    assert flow.run().is_successful()
    assert flow.run().is_successful()  # warm: the plan is kept
    with flow:
        make("second")()
    assert [t.name for t in flow.sorted_tasks()] == ["first", "second"]
    with pytest.raises(FlowError, match="'first' and 'second' both have the target"):
        flow.run()
    assert ran == ["first"]


def test_a_changed_template_or_input_is_formatted_again(tmp_path):
    store = LocalResult(dir=tmp_path)

    @task(result=store, target="a-{x}.pkl")
    def echo(x):
        return x

    with Flow("reformat", run_store="off") as flow:
        n = Parameter("n", default=1)
        out = echo(n)
    assert flow.run().result[out].location.endswith("/a-1.pkl")
    warm = flow.run().result[out]
    assert isinstance(warm, Cached) and warm.location.endswith("/a-1.pkl")
    assert flow.run(parameters={"n": 2}).result[out].location.endswith("/a-2.pkl")
    flow.get_tasks("echo")[0].target = "b-{x}.pkl"
    again = flow.run(parameters={"n": 2}).result[out]
    assert not isinstance(again, Cached) and again.location.endswith("/b-2.pkl")


def test_values_that_are_equal_but_print_apart_are_never_taken_for_each_other(tmp_path):
    store = LocalResult(dir=tmp_path)

    @task(result=store, target="v-{x}.pkl")
    def echo(x):
        return x

    with Flow("floats", run_store="off") as flow:
        out = echo(Parameter("x", default=0.0))
    for value, name in [
        (0.0, "v-0.0.pkl"),
        (-0.0, "v--0.0.pkl"),
        (0, "v-0.pkl"),
        (False, "v-False.pkl"),
    ]:
        for _ in range(2):  # a cold run, then a warm one
            state = flow.run(parameters={"x": value}).result[out]
            assert state.location.endswith("/" + name), (value, state.location)


def test_a_warm_hit_logs_and_reaches_the_handlers_as_a_transition_does(tmp_path, caplog):
    seen = []

    def handler(task_, old, new):
        seen.append((type(old), type(new)))

    @task(result=LocalResult(dir=tmp_path), target="h-{i}.pkl", state_handlers=[handler])
    def value(i):
        return i * 10

    with Flow("handled", run_store="off") as flow:
        out = value(3)
    flow.run()
    seen.clear()
    with caplog.at_level(logging.INFO, logger="resultkit"):
        state = flow.run().result[out]
    assert isinstance(state, Cached) and state.result == 30
    assert seen == [(Pending, Cached)]
    target = str(tmp_path / "h-3.pkl")
    assert f"Task 'value': Cached: target file://{target} exists" in _messages(caplog)


def test_a_handler_that_raises_on_a_warm_hit_fails_the_task(tmp_path):
    calls = []

    def strict(task_, old, new):
        calls.append(type(new).__name__)
        if isinstance(new, Cached):
            raise RuntimeError("no cached values here")

    @task(result=LocalResult(dir=tmp_path), target="s-{i}.pkl", state_handlers=[strict])
    def value(i):
        return i

    with Flow("strict", run_store="off") as flow:
        out = value(1)
    assert flow.run().result[out].is_successful()
    state = flow.run().result[out]
    assert isinstance(state, Failed)
    assert "state handler strict raised RuntimeError: no cached values here" in state.message
    assert calls[-2:] == ["Cached", "Failed"]


def test_a_deleted_target_is_a_logged_miss_and_is_written_again(tmp_path, caplog):
    runs = []

    store = LocalResult(dir=tmp_path)

    @task(result=store, target="d-{i}.pkl")
    def value(i):
        runs.append(i)
        return {"i": i}

    with Flow("deleted", run_store="off") as flow:
        out = value(7)
    flow.run()
    assert store.delete("d-7.pkl")
    with caplog.at_level(logging.INFO, logger="resultkit"):
        state = flow.run().result[out]
    assert type(state) is Success and state.result == {"i": 7} and runs == [7, 7]
    assert state.cache_miss is not None and state.cache_miss.reason == "no target"
    assert any("target miss" in m and "no target" in m for m in _messages(caplog))
    assert isinstance(flow.run().result[out], Cached)


class _ContextReading(PickleSerializer):
    """Records what the run's context holds while a value is read."""

    seen: list[tuple[str, str, int]] = []

    def deserialize(self, data):
        _ContextReading.seen.append((context.task_name, context.flow_name, context.i))
        return super().deserialize(data)


def test_a_warm_read_sees_the_runs_context(tmp_path):
    store = LocalResult(dir=tmp_path, serializer=_ContextReading())

    @task(result=store, target="c-{i}.pkl")
    def value(i):
        return i

    with Flow("context", run_store="off") as flow:
        value(5)
    flow.run()
    _ContextReading.seen.clear()
    flow.run()
    assert _ContextReading.seen == [("value", "context", 5)]


def test_two_tasks_formatting_one_target_from_inputs_still_clash_when_warm(tmp_path):
    store = LocalResult(dir=tmp_path)

    @task(result=store, target="same-{n}.pkl")
    def a(n):
        return "a"

    @task(result=store, target="same-{n}.pkl")
    def b(n):
        return "b"

    with Flow("clash", run_store="off") as flow:
        ra, rb = a(1), b(1)
    for _ in range(2):
        states = flow.run().result
        assert states[ra].result == "a"
        assert states[rb].is_failed() and "is also the target of task 'a'" in states[rb].message


@pytest.mark.parametrize("fresh_flow", [True, False])
def test_an_unusable_target_is_warned_about_once_a_run(tmp_path, fresh_flow):
    import warnings

    from resultkit.errors import ResultKitWarning

    def build() -> tuple[Flow, object]:
        @task(target="t.pkl", result=LocalResult(dir=tmp_path))
        def make():
            return 41

        with Flow("once") as flow:
            ref = make()
        return flow, ref

    flow, ref = build()
    flow.run()
    (tmp_path / "t.pkl.rkmeta").unlink()  # the payload has no record now: unusable
    if fresh_flow:
        flow, ref = build()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        state = flow.run()
    about = [w for w in caught if issubclass(w.category, ResultKitWarning)]
    assert len(about) == 1, [str(w.message) for w in about]
    assert "t.pkl" in str(about[0].message)
    assert state.result[ref].result == 41 and not state.result[ref].is_cached()
    assert flow.run().result[ref].is_cached()  # written again


def test_home_folder_follows_its_variables(tmp_path, monkeypatch):
    """The remembered home folders follow RESULTKIT_HOME, HOME and, for a relative
    home, the working folder."""
    from resultkit.engine.context import home_folder

    monkeypatch.setenv("RESULTKIT_HOME", str(tmp_path / "a"))
    assert home_folder("runs") == str(tmp_path / "a" / "runs")
    monkeypatch.setenv("RESULTKIT_HOME", str(tmp_path / "b"))
    assert home_folder("runs") == str(tmp_path / "b" / "runs")
    monkeypatch.setenv("RESULTKIT_HOME", "rel")
    monkeypatch.chdir(tmp_path)
    assert home_folder("cache") == str(tmp_path / "rel" / "cache")
    (tmp_path / "sub").mkdir()
    monkeypatch.chdir(tmp_path / "sub")
    assert home_folder("cache") == str(tmp_path / "sub" / "rel" / "cache")
    monkeypatch.delenv("RESULTKIT_HOME")
    monkeypatch.setenv("HOME", str(tmp_path / "h1"))
    assert home_folder("runs") == str(tmp_path / "h1" / ".resultkit" / "runs")
    monkeypatch.setenv("HOME", str(tmp_path / "h2"))
    assert home_folder("runs") == str(tmp_path / "h2" / ".resultkit" / "runs")


def test_template_keys_follow_the_day():
    """The day keys are remembered for one day only: the next run's day gives its own."""
    from datetime import datetime, timezone

    from resultkit.engine.unit import template_keys

    first = template_keys(datetime(2026, 2, 28, 23, 59, tzinfo=timezone.utc))
    assert (first["today"], first["tomorrow_nodash"]) == ("2026-02-28", "20260301")
    late = datetime(2026, 3, 1, 0, 0, 1, tzinfo=timezone.utc)
    second = template_keys(late)
    assert second["date"] is late
    assert (second["yesterday"], second["today_nodash"]) == ("2026-02-28", "20260301")
    second["today"] = "changed"  # a run's own copy: the next run is not affected
    assert template_keys(late)["today"] == "2026-03-01"


def test_constant_inputs_state_is_shared_between_runs_but_not_public():
    """Constant inputs' states are made once per flow shape; runs' public states hold
    only the tasks."""
    from resultkit import Flow, task

    with Flow("constants") as flow:
        out = task(lambda x: x + 1, name="inc")(41)
    first, second = flow.run(), flow.run()
    assert first.result[out].result == second.result[out].result == 42
    assert set(first.result) == {out}


def test_get_tasks_without_a_name_lists_every_task():
    """Prefect 1's ``flow.get_tasks()`` with no filter gives every task, in order."""
    from resultkit import Flow, task

    with Flow("two") as flow:
        a = task(lambda: 1, name="a")()
        b = task(lambda x: x, name="b")(a)
    assert flow.get_tasks() == [a, b]
    assert flow.get_tasks("b") == [b]
