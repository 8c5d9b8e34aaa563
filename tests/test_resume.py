"""Run records and flow.resume: a run killed mid-way continues where it stopped."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from collections import Counter
from pathlib import Path

import pytest

from resultkit import Flow, Parameter, config, task
from resultkit.errors import FlowError
from resultkit.results import LocalResult
from resultkit.runs import get_run, list_runs
from resultkit.states import Resume
from resultkit.triggers import manual_only

FLOW = textwrap.dedent(
    """
    import os, signal, sys, uuid
    from pathlib import Path
    from resultkit import Flow, Parameter, task
    from resultkit.results import LocalResult
    from resultkit.states import Resume
    from resultkit.triggers import manual_only

    marks, store, mode = Path(sys.argv[1]), sys.argv[2], sys.argv[3]

    def mark(name):
        (marks / f"{name}.{uuid.uuid4().hex}").touch()  # one file per body run

    @task
    def numbers(n):
        mark("numbers")
        return list(range(n))

    @task
    def square(x):
        if x == 6 and mode == "run":
            os.kill(os.getpid(), signal.SIGKILL)  # the process dies mid-map
        mark(f"square-{x}")
        return x * x

    @task
    def total(xs):
        mark("total")
        return sum(xs)

    @task(trigger=manual_only)
    def publish(t):
        mark("publish")
        return f"published {t}"

    with Flow("resumable", result=LocalResult(dir=store + "/values"),
              run_store=store + "/runs") as flow:
        t = total(square.map(numbers(Parameter("n", default=3))))
        p = publish(t)

    if mode == "run":
        flow.run(parameters={"n": 10}, run_id="nightly-1")
    elif mode == "resume":
        state = flow.resume("nightly-1")
        print(type(state).__name__, state.run_id, state.result[t].result, state.result[p].is_paused())
    else:
        state = flow.resume("nightly-1", task_states={p: Resume()})
        print(type(state).__name__, state.result[p].result)
    """
)


def _run(tmp_path: Path, mode: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", FLOW, str(tmp_path / "marks"), str(tmp_path / "store"), mode],
        capture_output=True,
        text=True,
        timeout=120,
    )


def _bodies(tmp_path: Path) -> Counter[str]:
    return Counter(p.name.split(".")[0] for p in (tmp_path / "marks").iterdir())


def test_a_killed_run_resumes_in_a_new_process_and_no_body_runs_twice(tmp_path):
    (tmp_path / "marks").mkdir()
    killed = _run(tmp_path, "run")
    assert killed.returncode == -9, killed.stderr
    assert _bodies(tmp_path) == Counter(["numbers"] + [f"square-{i}" for i in range(6)])

    resumed = _run(tmp_path, "resume")
    assert resumed.returncode == 0, resumed.stderr
    # The recorded parameters (n=10, not the default 3), the same run id; the
    # manual_only task pauses again until approved.
    assert resumed.stdout.split() == ["Paused", "nightly-1", "285", "True"]
    expected = Counter(["numbers", "total"] + [f"square-{i}" for i in range(10)])
    assert _bodies(tmp_path) == expected  # every body exactly once across both processes

    approved = _run(tmp_path, "approve")
    assert approved.returncode == 0, approved.stderr
    assert approved.stdout.strip() == "Success published 285"
    assert _bodies(tmp_path) == expected + Counter(["publish"])

    [listed] = list_runs(str(tmp_path / "store" / "runs"))
    assert listed.recorded == 13 and listed.tasks == []  # counted, not read
    run = get_run("nightly-1", str(tmp_path / "store" / "runs"))
    assert (run.run_id, run.flow, run.status) == ("nightly-1", "resumable", "Success")
    assert run.parameters == {"n": 10}
    assert {r.name for r in run.tasks} == {"numbers", "square", "total", "publish"}


@pytest.fixture
def run_store(tmp_path):
    config.run_store = str(tmp_path / "runs")
    yield tmp_path / "runs"
    config.run_store = None


def test_run_ids_generated_named_and_checked(run_store, tmp_path):
    @task(result=LocalResult(dir=tmp_path / "v"), checkpoint=True)
    def one():
        return 1

    with Flow("ids") as flow:
        one()
    generated = flow.run()
    assert len(generated.run_id) == 32
    assert flow.run(run_id="mine").run_id == "mine"
    assert {r.run_id for r in list_runs()} == {generated.run_id, "mine"}
    for bad in ("", "a/b", "..", "x{y}", "a b"):
        with pytest.raises(FlowError, match="run_id"):
            flow.run(run_id=bad)


def test_resume_errors_name_the_run_and_the_fix(run_store, tmp_path):
    @task(result=LocalResult(dir=tmp_path / "v"), checkpoint=True)
    def one():
        return 1

    with Flow("first") as flow:
        one()
    flow.run(run_id="r")
    with pytest.raises(FlowError, match=r"run 'r' is already recorded .* flow.resume\('r'\)"):
        flow.run(run_id="r")  # a new run never mixes its records with an old one's
    with pytest.raises(FlowError, match="no run 'missing' is recorded"):
        flow.resume("missing")
    with Flow("second") as other:
        one()
    with pytest.raises(FlowError, match="is a run of flow 'first', not 'second'"):
        other.resume("r")


def test_only_stored_values_are_recorded_and_off_records_nothing(run_store, tmp_path):
    calls = Counter[str]()

    @task(result=LocalResult(dir=tmp_path / "v"), checkpoint=True)
    def stored(n):
        calls["stored"] += 1
        return n

    @task
    def unstored(x):
        calls["unstored"] += 1
        return x + 1

    with Flow("mixed") as flow:
        out = unstored(stored(Parameter("n", default=1)))
    flow.run(run_id="m")
    state = flow.resume("m")
    assert state.result[out].result == 2
    assert calls == {"stored": 1, "unstored": 2}  # no stored value: it runs again

    config.run_store = "off"
    flow.run(run_id="not-recorded")
    assert "not-recorded" not in {r.run_id for r in list_runs(str(run_store))}
    with pytest.raises(FlowError, match="run records are off"):
        flow.resume("m")


def test_resume_reruns_what_changed_since_the_record(run_store, tmp_path):
    """A record is reused only while its value and its inputs are those it recorded."""
    calls = Counter[str]()
    source = {"files": ["a", "b", "c"]}
    store = LocalResult(dir=tmp_path / "v", location="{task_name}.pkl")

    @task
    def list_files():  # stores nothing: it runs again on resume
        calls["list"] += 1
        return list(source["files"])

    @task(
        result=LocalResult(dir=tmp_path / "v", location="{task_name}-{name}.pkl"), checkpoint=True
    )
    def upper(name):
        calls[f"upper-{name}"] += 1
        return name.upper()

    @task(result=store, checkpoint=True)
    def fail_once(names):
        calls["fail_once"] += 1
        if calls["fail_once"] == 1:
            raise RuntimeError("first attempt fails")
        return "".join(names)

    with Flow("changing") as flow:
        out = fail_once(upper.map(list_files()))
    assert flow.run(run_id="c1").is_failed()
    source["files"] = ["x", "b", "c", "z"]  # the mapped input changed before the resume
    state = flow.resume("c1")
    assert state.result[out].result == "XBCZ"
    # b and c were recorded with the same inputs: reused; x and z are new.
    assert calls["upper-b"] == calls["upper-c"] == 1
    assert calls["upper-x"] == calls["upper-z"] == 1


def test_resume_reruns_a_task_whose_value_was_overwritten_or_deleted(run_store, tmp_path):
    calls = Counter[str]()
    store = LocalResult(dir=tmp_path / "v", location="{task_name}.pkl")

    @task(result=store, checkpoint=True)
    def make(n):
        calls["make"] += 1
        return n * 100

    @task
    def fail_first(x):
        calls["fail_first"] += 1
        if calls["fail_first"] == 1:
            raise RuntimeError("first attempt fails")
        return x

    with Flow("overwritten") as flow:
        out = fail_first(make(Parameter("n", default=1)))
    assert flow.run(run_id="o1").is_failed()
    assert flow.run(parameters={"n": 2}, run_id="o2").is_successful()  # rewrites make.pkl
    assert flow.resume("o1").result[out].result == 100  # not o2's 200
    assert calls["make"] == 3
    calls["fail_first"] = 0
    assert flow.run(run_id="o3").is_failed()
    assert store.delete("make.pkl")  # deleted behind the run store's back (a gc, a rule)
    assert flow.resume("o3").result[out].result == 100
    assert calls["make"] == 5  # o1, o2, the o1 resume, o3, the o3 resume


def test_a_run_id_is_claimed_at_start_and_hostile_ids_are_refused(run_store, tmp_path):
    @task
    def nothing_stored():
        return 1

    with Flow("claims") as flow:
        nothing_stored()
    flow.run(run_id="claimed")  # stores nothing, yet a named run can be resumed
    with pytest.raises(FlowError, match="already recorded"):
        flow.run(run_id="claimed")
    assert flow.resume("claimed").is_successful()
    for bad in ("a\nb", "x\x00", ".rklocks", "C:", "z" * 129, "-ok-but-.."[:0]):
        with pytest.raises(FlowError, match="run_id"):
            flow.run(run_id=bad)


def test_an_approved_task_is_not_run_again_by_a_second_approval(run_store, tmp_path):
    calls = Counter[str]()

    @task(result=LocalResult(dir=tmp_path / "v"), checkpoint=True, trigger=manual_only)
    def deploy():
        calls["deploy"] += 1
        return "deployed"

    with Flow("deploys") as flow:
        d = deploy()
    assert flow.run(run_id="d1").is_paused()
    assert flow.resume("d1", task_states={d: Resume()}).result[d].result == "deployed"
    assert flow.resume("d1", task_states={d: Resume()}).result[d].result == "deployed"
    assert calls["deploy"] == 1


def test_a_target_without_any_result_resumes(run_store, tmp_path, monkeypatch):
    monkeypatch.setenv("RESULTKIT_HOME", str(tmp_path / "home"))  # LocalResult()'s folder
    calls = Counter[str]()

    @task(target="made.pkl")  # neither task nor flow names a Result: LocalResult()
    def made():
        calls["made"] += 1
        return 7

    @task
    def fail_once(x):
        calls["fail"] += 1
        if calls["fail"] == 1:
            raise RuntimeError("first attempt fails")
        return x

    with Flow("no-result") as flow:
        out = fail_once(made())
    assert flow.run(run_id="t1").is_failed()
    assert flow.resume("t1").result[out].result == 7


def test_a_flow_whose_tasks_changed_is_refused_naming_the_task(run_store, tmp_path):
    @task(result=LocalResult(dir=tmp_path / "v"), checkpoint=True)
    def one():
        return 1

    @task(result=LocalResult(dir=tmp_path / "v"), checkpoint=True)
    def other():
        return 2

    with Flow("edited") as flow:
        one()
    flow.run(run_id="e1")
    with Flow("edited") as edited:
        other()  # the same flow name, its task renamed
    with pytest.raises(FlowError, match="recorded task #0 as 'one'.*is 'other'.*changed"):
        edited.resume("e1")


def test_ctrl_c_stops_a_run_and_a_failed_upstream_leaves_nothing_to_map(run_store, tmp_path):
    ran = []

    @task
    def interrupted(x):
        ran.append(x)
        if x == 2:
            raise KeyboardInterrupt  # the user pressed Ctrl-C during this child
        return x

    with Flow("ctrl-c") as flow:
        interrupted.map([1, 2, 3, 4])
    with pytest.raises(KeyboardInterrupt):
        flow.run()
    assert ran == [1, 2]  # no child ran after the interrupt

    @task
    def broken():
        raise ValueError("no list today")

    @task
    def each(x):
        return x

    with Flow("nothing-to-map") as flow:
        out = each.map(broken())
    state = flow.run().result[out]
    assert state.is_failed() and "upstream task(s) 'broken' did not succeed" in state.message


def test_a_resume_keeps_the_runs_start(run_store, tmp_path):
    calls = Counter[str]()

    @task(result=LocalResult(dir=tmp_path / "v"), checkpoint=True)
    def flaky():
        calls["flaky"] += 1
        if calls["flaky"] == 1:
            raise RuntimeError("first attempt fails")
        return 1

    with Flow("started") as flow:
        flaky()
    flow.run(run_id="s1")
    first = get_run("s1").started
    flow.resume("s1")
    assert get_run("s1").started == first


def test_the_run_records_the_file_that_built_the_flow(run_store, tmp_path, monkeypatch):
    (tmp_path / "pipeline_mod.py").write_text(
        "from resultkit import Flow, task\n"
        "@task\n"
        "def one():\n"
        "    return 1\n"
        "with Flow('from-a-module') as flow:\n"
        "    one()\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    import pipeline_mod  # a script elsewhere imports the module that builds the flow

    pipeline_mod.flow.run(run_id="mod-1")
    assert get_run("mod-1").flow_file == str(tmp_path / "pipeline_mod.py")
