"""Failing reproductions from the attack on this round's warm-flow changes.

Each test is a real flow on real files (no mocks) that the warm-path round
broke; it passes on 2056a0f (before the round) and fails now.
"""

from __future__ import annotations

import pytest

from resultkit import Flow, task
from resultkit.results import LocalResult
from resultkit.runs import get_run


def test_a_resume_that_only_finds_targets_records_how_the_run_ended(tmp_path):
    # A Ctrl-C after the last task wrote its target (a state handler raises it on
    # the Success), before the run recorded its end: the run stays "running".
    store = LocalResult(dir=tmp_path / "out")
    runs = str(tmp_path / "runs")
    interrupt = [True]

    def ctrl_c_on_success(task, old, new):
        if interrupt[0] and new.is_successful():
            raise KeyboardInterrupt
        return new

    @task(checkpoint=True, result=store)
    def extract():
        return 1

    @task(target="load.pkl", result=store, state_handlers=[ctrl_c_on_success])
    def load(x):
        return x + 1

    with Flow("interrupted", run_store=runs) as flow:
        out = load(extract())
    with pytest.raises(KeyboardInterrupt):
        flow.run(run_id="r1")
    assert get_run("r1", runs).status == "running"
    interrupt[0] = False
    state = flow.resume("r1")  # extract from its record, load from its target
    assert state.is_successful() and state.result[out].is_cached()
    # The resume ended the run: its record must say so (it said so before the round).
    assert get_run("r1", runs).status == "Success"
