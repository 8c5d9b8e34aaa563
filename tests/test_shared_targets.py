"""Two tasks of one flow never share a target; damaged records under cache_for recompute."""

from __future__ import annotations

import json
from datetime import timedelta
from pathlib import Path

import pytest

from resultkit import Flow, task
from resultkit.errors import FlowError, ResultKitWarning
from resultkit.results import LocalResult


def test_two_tasks_with_the_same_target_fail_the_flow_before_it_runs(tmp_path):
    ran = []

    @task(target="shared.pkl", result=LocalResult(dir=tmp_path))
    def first():
        ran.append("first")
        return 1

    @task(target="shared.pkl", result=LocalResult(dir=tmp_path))
    def second():
        ran.append("second")
        return 2

    with Flow("shared") as flow:
        first()
        second()
    with pytest.raises(FlowError, match="'first' and 'second' both have the target"):
        flow.run()
    assert ran == []


def test_targets_that_collide_only_at_run_time_fail_the_second_task(tmp_path):
    @task
    def name():
        return "same"

    @task(target="{n}.pkl", result=LocalResult(dir=tmp_path))
    def a(n):
        return "a"

    @task(target="{n}.pkl", result=LocalResult(dir=tmp_path))
    def b(n):
        return "b"

    with Flow("late-collision") as flow:
        n = name()
        ra = a(n)
        rb = b(n)
    states = flow.run().result
    outcomes = sorted([states[ra].is_successful(), states[rb].is_successful()])
    assert outcomes == [False, True]
    failed = states[ra] if states[ra].is_failed() else states[rb]
    assert "is also the target of task" in failed.message


@pytest.mark.parametrize(
    "written_at", ["2026-11-25T10:00:00", "9999-12-31T23:59:59+00:00", "1970-01-01T00:00:00+00:00"]
)
def test_an_implausible_record_time_under_cache_for_recomputes(tmp_path, written_at):
    calls = []

    @task(target="t.pkl", result=LocalResult(dir=tmp_path), cache_for=timedelta(hours=1))
    def work():
        calls.append(1)
        return len(calls)

    with Flow("times") as flow:
        ref = work()
    assert flow.run().result[ref].result == 1
    sidecar = tmp_path / "t.pkl.rkmeta"
    record = json.loads(sidecar.read_text())
    record["written_at"] = written_at
    sidecar.write_text(json.dumps(record))
    with pytest.warns(Warning, match="could not be used"):
        state = flow.run().result[ref]
    assert state.is_successful() and not state.is_cached() and state.result == 2


def test_a_damaged_target_warning_points_at_the_users_flow_run(tmp_path):
    """The warning names the caller's line (flow.run), not the library line that noticed."""

    @task(target="d.pkl", result=LocalResult(dir=tmp_path))
    def work():
        return 1

    with Flow("damaged") as flow:
        work()
    flow.run()
    (tmp_path / "d.pkl").write_bytes(b"not what the record says")
    with pytest.warns(ResultKitWarning, match="could not be used") as caught:
        flow.run()  # this line
    (warning,) = [w for w in caught if "could not be used" in str(w.message)]
    assert warning.filename == __file__
    lines = Path(__file__).read_text().splitlines()
    assert "flow.run()  # this line" in lines[warning.lineno - 1]
