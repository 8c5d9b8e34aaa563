"""Targets are formatted exactly once, and a target error is the failure of one task run."""

from __future__ import annotations

import uuid

import pytest

from resultkit import Flow, Parameter, task
from resultkit.results import FormattedLocation, LocalResult, MemoryResult


class SpyResult(MemoryResult):
    """A MemoryResult that records the type of every location the runner hands back to it."""

    seen: list[tuple[str, type]] = []

    def read(self, location=None, **kwargs):
        SpyResult.seen.append(("read", type(location)))
        return super().read(location, **kwargs)

    def write(self, value, location=None, **kwargs):
        SpyResult.seen.append(("write", type(location)))
        return super().write(value, location, **kwargs)

    def exists_many(self, locations):
        SpyResult.seen.extend(("exists_many", type(loc)) for loc in locations)
        return super().exists_many(locations)


@pytest.fixture
def root():
    return f"/targets-{uuid.uuid4().hex}"


def test_input_with_braces_is_stored_as_written(root):
    @task(target="{name}.pkl", result=MemoryResult(root=root))
    def keep(name):
        return name

    with Flow("braces") as flow:
        ref = keep("a{x}b")
    first = flow.run()
    assert first.result[ref].is_successful(), first.result[ref].message
    assert first.result[ref].location.endswith("/a{x}b.pkl")
    second = flow.run()
    assert second.result[ref].is_cached() and second.result[ref].result == "a{x}b"


def test_parameter_with_braces_is_stored_as_written(tmp_path):
    @task(target="{region}/out.pkl", result=LocalResult(dir=tmp_path))
    def out():
        return 1

    with Flow("braces-param") as flow:
        Parameter("region")
        ref = out()
    state = flow.run(parameters={"region": "eu{1}"})
    assert state.result[ref].is_successful(), state.result[ref].message
    assert (tmp_path / "eu{1}" / "out.pkl").exists()


def test_runner_passes_formatted_locations_back(root):
    SpyResult.seen = []

    @task(target="{name}.pkl", result=SpyResult(root=root))
    def keep(name):
        return name

    with Flow("spy") as flow:
        one = keep("x{y}")
        many = keep.map(["p{q}", "r"])
    first = flow.run()
    second = flow.run()
    assert first.result[one].is_successful() and second.result[one].is_cached()
    assert all(s.is_cached() for s in second.result[many].map_states)
    calls = {call for call, _ in SpyResult.seen}
    assert calls == {"read", "write", "exists_many"}
    assert {kind for _, kind in SpyResult.seen} == {FormattedLocation}


def test_mapped_child_with_braces_does_not_escape_run(root):
    @task(target="{name}.pkl", result=MemoryResult(root=root))
    def keep(name):
        return name

    with Flow("braces-map") as flow:
        m = keep.map(["ok", "a{x}b"])
    first = flow.run()
    assert [s.is_successful() for s in first.result[m].map_states] == [True, True]
    second = flow.run()
    assert all(s.is_cached() for s in second.result[m].map_states)
    assert second.result[m].result == ["ok", "a{x}b"]


def test_target_errors_in_a_mapped_task_fail_only_that_child(root):
    ran = []

    def target(**keys):
        if keys["name"] == "broken":
            raise RuntimeError("no target for broken")
        return f"{keys['name']}.pkl"

    @task(target=target, result=MemoryResult(root=root))
    def keep(name):
        ran.append(name)
        return name

    with Flow("child-errors") as flow:
        m = keep.map(["good", "../escape", "broken", "fine"])
    state = flow.run()  # never raises
    kids = state.result[m].map_states
    assert [k.is_successful() for k in kids] == [True, False, False, True]
    assert ".." in kids[1].message and kids[1].message.startswith("target")
    assert "no target for broken" in kids[2].message
    assert sorted(ran) == ["fine", "good"]


def test_missing_key_in_a_mapped_target_is_a_failed_child(root):
    @task(target="{name}-{nope}.pkl", result=MemoryResult(root=root))
    def keep(name):
        return name

    with Flow("missing-map") as flow:
        m = keep.map(["a", "b"])
    state = flow.run()
    assert state.result[m].is_mapped()
    assert all(k.is_failed() and "'nope'" in k.message for k in state.result[m].map_states)


def test_other_tasks_of_the_flow_are_not_affected(root):
    @task(target="{name}.pkl", result=MemoryResult(root=root))
    def keep(name):
        return name

    @task(target="other/{label}.pkl", result=MemoryResult(root=root))
    def other(label):
        return label.upper()

    @task
    def plain():
        return 7

    with Flow("neighbours") as flow:
        m = keep.map(["../bad", "a{b}"])
        o = other("x{y}")
        p = plain()
    state = flow.run()
    assert [k.is_successful() for k in state.result[m].map_states] == [False, True]
    assert state.result[o].result == "X{Y}" and state.result[o].location.endswith("other/x{y}.pkl")
    assert state.result[p].result == 7
    again = flow.run()
    assert again.result[o].is_cached() and again.result[m].map_states[1].is_cached()


def test_bulk_check_failure_falls_back_to_each_child(root):
    class NoBulk(MemoryResult):
        def exists_many(self, locations):
            raise NotImplementedError

    @task(target="{map_index}.pkl", result=NoBulk(root=root))
    def square(x):
        return x * x

    with Flow("no-bulk") as flow:
        m = square.map([1, 2])
    assert flow.run().result[m].result == [1, 4]
    assert all(s.is_cached() for s in flow.run().result[m].map_states)


def test_prefect1_style_result_in_a_mapped_task():
    """A Result overriding read/write/exists (no ResultNotFoundError): exists() comes first."""
    from resultkit.results import Result

    class DictResult(Result):
        store: dict = {}

        def read(self, location=None, **kwargs):
            new = self.format(location, **kwargs)
            new.value = self.store[new.location]  # KeyError when missing
            return new

        def write(self, value, location=None, **kwargs):
            new = self.format(location, **kwargs)
            new.value = value
            self.store[new.location] = value
            return new

        def exists(self, location=None, **kwargs):
            return self.format(location, **kwargs).location in self.store

    @task(target="{name}.txt", result=DictResult())
    def keep(name):
        return name.upper()

    with Flow("p1-map") as flow:
        m = keep.map(["a{b}", "c"])
        one = keep("d{e}")
    first = flow.run()
    assert first.is_successful(), [s.message for s in first.result[m].map_states]
    assert DictResult.store == {"a{b}.txt": "A{B}", "c.txt": "C", "d{e}.txt": "D{E}"}
    second = flow.run()
    assert all(s.is_cached() for s in second.result[m].map_states)
    assert second.result[one].is_cached() and second.result[one].result == "D{E}"
