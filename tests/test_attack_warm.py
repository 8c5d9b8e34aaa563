"""Failing reproductions from the attack on this round's warm-flow changes.

Each test is a real flow on real files (no mocks) that the warm-path round
broke; it passes on 2056a0f (before the round) and fails now.
"""

from __future__ import annotations

import shutil

import pytest

from resultkit import Flow, task
from resultkit.errors import ConfigurationError
from resultkit.results import LocalResult
from resultkit.runs import get_run
from resultkit.states import Resume
from resultkit.triggers import manual_only


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


def test_approving_a_paused_task_whose_target_is_there_records_how_the_run_ended(tmp_path):
    store = LocalResult(dir=tmp_path / "out")
    runs = str(tmp_path / "runs")

    @task(checkpoint=True, result=store)
    def extract():
        return 1

    @task(target="load.pkl", result=store, trigger=manual_only)
    def load(x):
        return x + 1

    with Flow("approved", run_store=runs) as flow:
        out = load(extract())
    assert flow.run(run_id="p1").is_paused()
    assert get_run("p1", runs).status == "Paused"
    store.write(2, "load.pkl")  # another run wrote the target meanwhile
    state = flow.resume("p1", task_states={out: Resume()})
    assert state.is_successful() and state.result[out].is_cached()
    assert get_run("p1", runs).status == "Success"


def test_a_runs_folder_replaced_by_a_file_is_refused_on_every_run(tmp_path, monkeypatch):
    # The default run store is made once per folder: the check its construction
    # made (the folder is a folder) no longer runs for the process's later runs.
    monkeypatch.setenv("RESULTKIT_HOME", str(tmp_path / "home"))
    monkeypatch.delenv("RESULTKIT_RUN_STORE", raising=False)

    @task(checkpoint=True, result=LocalResult(dir=tmp_path / "out"))
    def extract():
        return 1

    with Flow("recorded") as flow:
        extract()
    assert flow.run(run_id="first").is_successful()
    runs = tmp_path / "home" / "runs"
    shutil.rmtree(runs)
    runs.write_text("not a folder")
    # A fresh process (or the release before) refuses this before anything runs.
    with pytest.raises(ConfigurationError, match="exists and is not a folder"):
        flow.run(run_id="second")
