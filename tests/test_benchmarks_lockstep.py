"""benchmarks/lockstep.py: two workers' timed runs go in turns, never at once, and pair up.

The workers are small scripts that use the harness's own ``timed`` (so the
protocol tested is the one the benchmark cases speak). Each run appends
"<name>+" when it starts and "<name>-" when it ends to one log: in turns means
the log reads A+ A- B+ B- B+ B- A+ A- ... with no run inside another.
"""

from __future__ import annotations

import statistics
import sys
import textwrap
import time
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parent.parent / "benchmarks"
sys.path.insert(0, str(BENCH))

import lockstep  # noqa: E402

WORKER = textwrap.dedent(
    """
    import json, sys
    sys.path.insert(0, {bench!r})
    import harness, lockstep
    name, log, runs = sys.argv[1], sys.argv[2], [int(n) for n in sys.argv[3].split(",")]
    lockstep.ACTIVE = True
    out = {{}}
    for i, repeat in enumerate(runs):
        case = f"case{{i}}"
        lockstep.start_case(case)
        def once():
            with open(log, "a") as f:
                f.write(name + "+\\n")
            sum(range(20000))  # some work to time
            with open(log, "a") as f:
                f.write(name + "-\\n")
        if repeat == -2:
            import subprocess, threading
            child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(600)"])
            with open(log, "a") as f:
                f.write(f"child{{child.pid}}\\n")
            threading.Event().wait()  # a worker that hangs in the middle, with a child
        if repeat < 0:
            raise SystemExit(3)  # a worker that dies in the middle
        def settle():  # as no_dirty_pages: untimed, before each run
            with open(log, "a") as f:
                f.write(name + "~\\n")
        times = harness.timed(once, repeat, settle if name.startswith("S") else None)
        lockstep.end_case()
        out[case] = {{"median": 0.0, "times": times}}
    print(json.dumps({{name: out}}))
    """
)


@pytest.fixture
def worker(tmp_path: Path):
    script = tmp_path / "worker.py"
    script.write_text(WORKER.format(bench=str(BENCH)))
    log = tmp_path / "runs.log"

    def command(name: str, *repeats: int) -> list[str]:
        return [sys.executable, str(script), name, str(log), ",".join(map(str, repeats))]

    return command, log


def _runs(log: Path) -> list[str]:
    return log.read_text().split()


def test_runs_alternate_in_turns_and_pair_by_index(worker):
    command, log = worker
    paired, ours, theirs = lockstep.run_in_lockstep(command("A", 4), command("B", 4), {})
    assert _runs(log) == ["A+", "A-", "B+", "B-", "B+", "B-", "A+", "A-"] * 2
    pairs = paired["case0"]
    assert len(pairs.ours) == len(pairs.theirs) == 4
    assert pairs.ours == ours["case0"]["times"] and pairs.theirs == theirs["case0"]["times"]
    ratios = [b / a for a, b in zip(pairs.ours, pairs.theirs, strict=True)]
    assert pairs.ratios == ratios and pairs.ratio == statistics.median(ratios)


def test_uneven_sides_pair_what_both_ran_and_the_rest_still_runs(worker):
    command, log = worker
    paired, ours, theirs = lockstep.run_in_lockstep(command("A", 2, 3), command("B", 5, 3), {})
    runs = _runs(log)
    assert runs.count("A+") == 5 and runs.count("B+") == 8  # nothing lost, every run done
    assert len(paired["case0"].ours) == 2  # only runs made in turns are paired
    assert len(theirs["case0"]["times"]) == 5
    assert len(paired["case1"].ours) == len(paired["case1"].theirs) == 3  # the next case pairs


def test_a_side_that_times_nothing_or_dies_ends_without_a_hang(worker):
    command, log = worker
    paired, _, theirs = lockstep.run_in_lockstep(command("A", 0, 2), command("B", 2, 2), {})
    assert "case0" not in paired  # nothing to pair with
    assert len(paired["case1"].ours) == 2
    assert len(theirs["case0"]["times"]) == 2  # B's runs of case0 ran anyway

    # A dies before its second case: no report, but the case it finished keeps its pairs
    # (from the runs' own lines); B is told to stop waiting.
    paired, lost, survivor = lockstep.run_in_lockstep(command("A", 2, -1), command("B", 2, 2), {})
    assert lost == {} and list(paired) == ["case0"] and len(paired["case0"].ours) == 2
    assert len(survivor["case1"]["times"]) == 2


def test_a_side_that_hangs_is_killed_and_the_other_finishes(worker):
    command, log = worker
    paired, hung, survivor = lockstep.run_in_lockstep(
        command("A", 2, -2), command("B", 2, 3), {}, silence_limit=1.0
    )
    assert hung == {}  # killed before its report
    assert len(paired["case0"].ours) == 2  # the case it finished keeps its pairs
    assert "case1" not in paired
    assert len(survivor["case1"]["times"]) == 3  # the other side ran its cases to the end
    runs = _runs(log)
    assert runs.count("A+") == 2
    child = int(next(r for r in runs if r.startswith("child"))[len("child") :])
    deadline = time.monotonic() + 10
    while _alive(child) and time.monotonic() < deadline:
        time.sleep(0.01)  # polling with a deadline: the kill is asynchronous
    assert not _alive(child), "the hung worker's own child must be killed with it"


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().split(")")[-1].split()[0] != "Z"  # a zombie has ended
    except FileNotFoundError:
        return False


def test_settling_runs_on_its_own_turn_just_before_each_timed_run(worker):
    command, log = worker
    lockstep.run_in_lockstep(command("S1", 3), command("S2", 3), {})
    runs = _runs(log)
    assert runs == ["S1~", "S1+", "S1-", "S2~", "S2+", "S2-", "S2~", "S2+", "S2-", "S1~", "S1+", "S1-"] + [
        "S1~", "S1+", "S1-", "S2~", "S2+", "S2-",
    ]  # fmt: skip


def test_settling_is_not_timed(monkeypatch):
    import harness

    clock = [0.0]
    monkeypatch.setattr(harness.time, "perf_counter", lambda: clock[0])

    def advance(seconds: float):
        def step() -> None:
            clock[0] += seconds

        return step

    assert harness.timed(advance(1.0), 3, settle=advance(100.0)) == [1.0, 1.0, 1.0]
    assert clock[0] == 303.0  # it did run, once before each call


def test_pairs_are_the_durations_the_case_reports(worker, tmp_path):
    """A case that scales its samples (one call of a sample of many, as timed_per_call)
    is paired in those units, not in the seconds of the whole timed run."""
    command, _ = worker
    script = Path(command("A", 1)[1])
    scaled = tmp_path / "scaled.py"
    source = script.read_text()
    run = 'times = harness.timed(once, repeat, settle if name.startswith("S") else None)'
    assert run in source
    scaled.write_text(source.replace(run, f"times = [t / 1000 for t in {run[8:]}]"))
    paired, ours, theirs = lockstep.run_in_lockstep(
        [sys.executable, str(scaled), *command("A", 2)[2:]], command("B", 2), {}
    )
    assert paired["case0"].ours == ours["case0"]["times"]  # scaled: what the case says
    assert paired["case0"].theirs == theirs["case0"]["times"]
    assert max(paired["case0"].ours) < min(paired["case0"].theirs)  # a thousandth of B's
