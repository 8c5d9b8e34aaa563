"""``resultkit runs``, ``runs show`` and ``resume`` through ``python -m resultkit``, on Local.

One flow file dies (SIGKILL) in the middle of its map on its first run; the
commands list the run, show it, draw it and finish it. Error paths and the
graph's text are checked in-process (cheaper than a subprocess each).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import textwrap
from collections import Counter
from pathlib import Path

import pytest

from resultkit._cli._graph import dot_source, text_tree
from resultkit._cli.run import load_flow
from resultkit.cli import main
from resultkit.runs import get_run

FLOW = textwrap.dedent(
    """
    import os, signal, uuid
    from pathlib import Path
    from resultkit import Flow, Parameter, task
    from resultkit.results import LocalResult

    HERE = Path(__file__).parent

    def mark(name):
        (HERE / "marks" / f"{name}.{uuid.uuid4().hex}").touch()  # one file per body run

    @task(checkpoint=True)
    def numbers(n):
        mark("numbers")
        return list(range(n))

    @task(checkpoint=True)
    def square(x):
        if x == 6 and not (HERE / "killed-once").exists():
            (HERE / "killed-once").touch()
            os.kill(os.getpid(), signal.SIGKILL)  # the first run dies mid-map
        mark(f"square-{x}")
        return x * x

    @task(checkpoint=True)
    def total(xs):
        mark("total")
        return sum(xs)

    with Flow("squares", result=LocalResult(dir=str(HERE / "values"))) as flow:
        total(square.map(numbers(Parameter("n", default=3))))
    """
)

TREE = """\
flow 'squares', run {run_id} (running)
n  [parameter]
└── numbers  [stored]
    └── map: square  [6 mapped children stored]
        └── total  [not recorded]
"""


@pytest.fixture
def project(tmp_path: Path) -> Path:
    (tmp_path / "marks").mkdir()
    (tmp_path / "flows.py").write_text(FLOW)
    return tmp_path


def rk(home: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("RESULTKIT_")}
    env["RESULTKIT_HOME"] = str(home / "home")  # runs recorded in home/runs (the default)
    return subprocess.run(
        [sys.executable, "-m", "resultkit", *args],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=home,
        env=env,
    )


def bodies(project: Path) -> Counter[str]:
    return Counter(p.name.split(".")[0] for p in (project / "marks").iterdir())


def test_a_killed_run_is_listed_shown_drawn_and_resumed_without_running_a_body_twice(project):
    killed = rk(project, "run", "flows.py", "--param", "n=10")
    assert killed.returncode == -9, killed.stderr
    first = Counter(["numbers"] + [f"square-{i}" for i in range(6)])
    assert bodies(project) == first

    listed = rk(project, "runs", "--json")
    assert listed.returncode == 0, listed.stderr
    [run] = json.loads(listed.stdout)["runs"]
    assert (run["flow"], run["status"], run["task_runs"]) == ("squares", "running", 7)
    assert run["flow_file"] == str(project / "flows.py")  # the flow's file, not the CLI's
    run_id = run["run_id"]

    store = str(project / "home" / "runs")
    shown = rk(project, "runs", "show", run_id, "--store", store)
    assert shown.returncode == 0, shown.stderr
    assert f"run {run_id} of flow 'squares': running" in shown.stdout
    rows = [line.split() for line in shown.stdout.splitlines() if line.startswith("square ")]
    assert [r[1] for r in rows] == [str(i) for i in range(6)]  # map indexes, in order
    assert all(r[2] == "Success" and r[3].startswith("file://") for r in rows)

    drawn = rk(project, "runs", "show", run_id, "--graph", "run.svg", "--json")
    assert drawn.returncode == 0, drawn.stderr
    graph = json.loads(drawn.stdout)["graph"]
    if shutil.which("dot"):
        assert graph == {"path": "run.svg", "format": "svg"}
        assert "<svg" in (project / "run.svg").read_text()
    else:  # without graphviz: the text tree, beside
        assert graph == {"path": "run.txt", "format": "text"}
        assert (project / "run.txt").read_text() == TREE.format(run_id=run_id)
        assert not (project / "run.svg").exists()

    resumed = rk(project, "resume", run_id)
    assert resumed.returncode == 0, resumed.stdout + resumed.stderr
    assert "numbers  Resumed" in resumed.stdout  # the live table's last frame
    assert "Success" in resumed.stdout and "5 ran, 0 cached, 7 resumed, 0 failed" in resumed.stdout
    every_once = Counter(["numbers", "total"] + [f"square-{i}" for i in range(10)])
    assert bodies(project) == every_once

    again = rk(project, "resume", run_id, "--json")  # a finished run: nothing runs
    assert again.returncode == 0, again.stderr
    summary = json.loads(again.stdout)
    assert (summary["state"], summary["run_id"], summary["ran"]) == ("Success", run_id, 0)
    assert summary["resumed"] == 12  # numbers, 10 squares, total
    assert bodies(project) == every_once
    assert get_run(run_id, store).status == "Success"


def _one_error(code: int, capsys: pytest.CaptureFixture[str]) -> str:
    err = capsys.readouterr().err
    assert code == 2, err
    assert "Traceback" not in err and len(err.strip().splitlines()) == 1, err
    return err.strip()


def test_errors_name_the_store_the_file_and_the_fix(project, monkeypatch, capsys):
    monkeypatch.chdir(project)
    monkeypatch.setenv("RESULTKIT_RUN_STORE", str(project / "runs"))
    (project / "killed-once").touch()  # this one runs to the end (in-process: no kill)
    assert main(["run", "flows.py", "--param", "n=2", "--json"]) == 0
    run_id = json.loads(capsys.readouterr().out)["run_id"]
    store = f"file://{project}/runs"

    error = _one_error(main(["resume", "nope"]), capsys)
    assert f"no run 'nope' is recorded in {store}" in error and "'resultkit runs'" in error
    # Options before or after "show RUN_ID" alike.
    assert main(["runs", "--json", "--store", str(project / "runs"), "show", run_id]) == 0
    assert json.loads(capsys.readouterr().out)["run_id"] == run_id
    error = _one_error(main(["runs", "show"]), capsys)
    assert "runs show needs the run's id" in error
    error = _one_error(main(["runs", "--graph", "g.svg"]), capsys)
    assert "--graph goes with 'runs show RUN_ID'" in error
    error = _one_error(main(["runs", "show", "../etc"]), capsys)
    assert "'../etc' is not a run id" in error
    error = _one_error(
        main(["runs", "show", "nope", "--store", str(project / "elsewhere")]), capsys
    )
    assert "--store" in error and "no such folder" in error

    (project / "other.py").write_text(FLOW.replace('Flow("squares"', 'Flow("cubes"'))
    error = _one_error(main(["resume", run_id, "other.py"]), capsys)
    assert "is a run of flow 'squares', not 'cubes'" in error
    changed = FLOW.replace("    total(square", "    total([1])\n    total(square")
    (project / "changed.py").write_text(changed)
    error = _one_error(main(["resume", run_id, "changed.py"]), capsys)
    assert "the flow changed since" in error
    (project / "flows.py").rename(project / "moved.py")
    error = _one_error(main(["resume", run_id]), capsys)
    assert f"ran the flow from {project / 'flows.py'}, which no longer exists" in error
    assert f"resultkit resume {run_id} FILE.py" in error
    error = _one_error(main(["runs", "show", run_id, "--graph", "g.svg"]), capsys)
    assert "--graph g.svg --file FILE.py" in error
    error = _one_error(main(["runs", "show", run_id, "--graph", "g.jpg", "--file", "moved.py"]),
                       capsys)  # fmt: skip
    assert "name a .svg, .png, .pdf" in error
    assert main(["resume", run_id, "moved.py", "--json"]) == 0  # the file, given
    assert json.loads(capsys.readouterr().out)["resumed"] == 4
    monkeypatch.setenv("RESULTKIT_RUN_STORE", "off")
    error = _one_error(main(["runs"]), capsys)
    assert "run records are off" in error and "--store URL" in error


def test_the_graph_as_text_and_dot(project, monkeypatch, capsys):
    monkeypatch.setenv("RESULTKIT_RUN_STORE", str(project / "runs"))
    (project / "killed-once").touch()
    assert main(["run", str(project / "flows.py"), "--json"]) == 0
    run_id = json.loads(capsys.readouterr().out)["run_id"]
    info = get_run(run_id)
    info.tasks = [r for r in info.tasks if r.name != "total" and r.map_index != 2]
    info.status = "running"  # as a run killed after its two first squares
    flow = load_flow(str(project / "flows.py"), None)
    assert text_tree(flow, info) == TREE.format(run_id=run_id).replace("6 mapped", "2 mapped")
    dot = dot_source(flow, info)
    assert 't1 [label="numbers\\nstored", fillcolor=palegreen];' in dot
    assert 't2 [label="square\\n2 mapped children stored", fillcolor=lightgoldenrod];' in dot
    assert 't3 [label="total\\nnot recorded", fillcolor=gray90];' in dot
    assert 't1 -> t2 [style=dashed, label="map"];' in dot
    assert main(["runs", "show", run_id, "--graph", str(project / "g.dot")]) == 0
    assert (project / "g.dot").read_text().startswith("digraph run {")


PAUSED = """
from pathlib import Path
from resultkit import Flow, task
from resultkit.results import LocalResult
from resultkit.triggers import manual_only

@task(checkpoint=True)
def extract():
    return 41

@task(trigger=manual_only)
def publish(x):
    (Path(__file__).parent / "published").write_text(str(x + 1))
    return x + 1

with Flow("gated", result=LocalResult(dir=str(Path(__file__).parent / "values"))) as flow:
    publish(extract())
"""


def test_a_paused_run_waits_until_resume_approves_its_task(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("RESULTKIT_RUN_STORE", str(tmp_path / "runs"))
    (tmp_path / "gated.py").write_text(PAUSED)
    assert main(["run", str(tmp_path / "gated.py"), "--json"]) == 1  # not a success: paused
    run_id = json.loads(capsys.readouterr().out)["run_id"]
    assert main(["resume", run_id]) == 1
    assert f"approve with resultkit resume {run_id} --approve publish" in capsys.readouterr().out
    assert not (tmp_path / "published").exists()
    error = _one_error(main(["resume", run_id, "--approve", "extract"]), capsys)
    assert "no paused task of that name (paused: publish)" in error
    assert main(["resume", run_id, "--approve", "publish", "--json"]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert (summary["state"], summary["ran"], summary["resumed"]) == ("Success", 1, 1)
    assert (tmp_path / "published").read_text() == "42"  # from the input recorded at the pause


def test_the_readme_session_a_failed_run_resumed(tmp_path, monkeypatch, capsys):
    """README "Command line": etl.py fails on its load, then resumes with only load run."""
    readme = (Path(__file__).resolve().parent.parent / "README.md").read_text()
    source = readme.split("`etl.py`:\n\n```python\n", 1)[1].split("```", 1)[0]
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.delenv("RESULTKIT_HOME", raising=False)
    monkeypatch.delenv("RESULTKIT_RUN_STORE", raising=False)
    monkeypatch.delenv("DB_UP", raising=False)
    (tmp_path / "etl.py").write_text(source)
    assert main(["run", "etl.py", "--json"]) == 1
    failed = json.loads(capsys.readouterr().out)
    assert (failed["ran"], failed["failed"]) == (4, 1)
    assert main(["runs", "--json"]) == 0
    [run] = json.loads(capsys.readouterr().out)["runs"]
    assert (run["run_id"], run["status"], run["task_runs"]) == (failed["run_id"], "Failed", 4)
    assert main(["runs", "show", run["run_id"], "--graph", "etl.txt"]) == 0
    assert "wrote the flow's graph to etl.txt" in capsys.readouterr().out
    assert "└── map: clean  [3 mapped children stored]" in (tmp_path / "etl.txt").read_text()
    monkeypatch.setenv("DB_UP", "1")
    assert main(["resume", run["run_id"], "--json"]) == 0
    resumed = json.loads(capsys.readouterr().out)
    assert (resumed["state"], resumed["ran"], resumed["resumed"]) == ("Success", 1, 4)
    assert (tmp_path / ".resultkit" / "runs" / run["run_id"] / "run.json").is_file()


def test_a_flow_with_its_own_run_store(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("RESULTKIT_RUN_STORE", str(tmp_path / "default-runs"))
    source = PAUSED.replace(
        'with Flow("gated", result=',
        'with Flow("gated", run_store=str(Path(__file__).parent / "own"), result=',
    )
    (tmp_path / "gated.py").write_text(source)
    assert main(["run", str(tmp_path / "gated.py"), "--json"]) == 1
    run_id = json.loads(capsys.readouterr().out)["run_id"]
    assert (tmp_path / "own" / run_id / "run.json").is_file()
    error = _one_error(main(["resume", run_id]), capsys)  # looked for in the default store
    assert f"recorded in file://{tmp_path}/default-runs" in error and "--store URL" in error
    # Given the file, its Flow(run_store=...) is where the run is found.
    assert main(["resume", run_id, str(tmp_path / "gated.py"), "--approve", "publish"]) == 0
    assert (tmp_path / "published").read_text() == "42"
    capsys.readouterr()
    assert main(["runs", "--store", str(tmp_path / "own"), "--json"]) == 0
    [run] = json.loads(capsys.readouterr().out)["runs"]
    assert (run["run_id"], run["status"]) == (run_id, "Success")
