"""A flow's graph coloured by what a recorded run finished: graphviz DOT source, or a text tree."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from collections import Counter
from dataclasses import dataclass

from ..engine.flow import Flow, _Constant
from ..engine.run_history import RunInfo
from ..engine.task import Parameter, Task
from ._common import CliError, shown

__all__ = ["TaskMark", "marks_of", "dot_source", "text_tree", "write_graph"]

#: Fill colours of the states a record can give a task (graphviz X11 names).
FILLS = {"stored": "palegreen", "partly": "lightgoldenrod", "paused": "plum",
         "not recorded": "gray90", "parameter": "white"}  # fmt: skip
#: Formats ``dot -T`` renders, by the output file's suffix.
RENDERED = {".svg": "svg", ".png": "png", ".pdf": "pdf"}


@dataclass
class TaskMark:
    """What the run recorded of one task: its kind of state and a label to show."""

    kind: str  # "stored", "partly" (some mapped children), "paused", "not recorded", "parameter"
    label: str


def _drawn(task: Task) -> bool:
    return not isinstance(task, _Constant)


def marks_of(flow: Flow, info: RunInfo) -> dict[Task, TaskMark]:
    """Each task of ``flow`` (by its position, as a resume matches them) with its recorded mark.

    >>> from resultkit import Flow, task
    >>> from resultkit.runs import RunInfo, TaskRecord
    >>> @task
    ... def one():
    ...     return 1
    >>> with Flow("f") as flow:
    ...     t = one()
    >>> info = RunInfo("r", "f", "Success", "now", tasks=[TaskRecord(0, "one", None, "Success", None)])
    >>> marks_of(flow, info)[t].label
    'stored'
    """
    whole = {r.index: r for r in info.tasks if r.map_index is None}
    children = Counter(r.index for r in info.tasks if r.map_index is not None)
    marks: dict[Task, TaskMark] = {}
    for i, task in enumerate(flow.tasks):
        if not _drawn(task):
            continue
        rec = whole.get(i)
        if isinstance(task, Parameter):  # its value is the run's, recorded with the run
            marks[task] = TaskMark("parameter", "parameter")
        elif rec is not None and rec.name == task.name:
            kind = "paused" if rec.state == "Paused" else "stored"
            marks[task] = TaskMark(kind, kind)
        elif children[i]:
            n = children[i]
            marks[task] = TaskMark(
                "partly", f"{n} mapped {'child' if n == 1 else 'children'} stored"
            )
        else:
            marks[task] = TaskMark("not recorded", "not recorded")
    return marks


def _edges(flow: Flow) -> list[tuple[Task, Task, bool]]:
    seen: set[tuple[int, int]] = set()
    edges = []
    for e in flow.edges:
        if _drawn(e.upstream) and _drawn(e.downstream):
            pair = (id(e.upstream), id(e.downstream))
            if pair not in seen:
                seen.add(pair)
                edges.append((e.upstream, e.downstream, e.mapped))
    return edges


def dot_source(flow: Flow, info: RunInfo) -> str:
    """The graphviz DOT source of ``flow``, each task filled by what run ``info`` recorded."""
    marks = marks_of(flow, info)
    ids = {task: f"t{i}" for i, task in enumerate(flow.tasks)}
    title = f"flow {flow.name!r}, run {info.run_id} ({info.status})"
    lines = [
        "digraph run {",
        f"  label={json.dumps(title, ensure_ascii=False)}; labelloc=t; rankdir=LR;",
        '  node [shape=box, style="rounded,filled", fontname="Helvetica"];',
    ]
    for task in flow.sorted_tasks():
        if task in marks:
            mark = marks[task]
            label = json.dumps(f"{task.name}\n{mark.label}", ensure_ascii=False)
            lines.append(f"  {ids[task]} [label={label}, fillcolor={FILLS[mark.kind]}];")
    for up, down, mapped in _edges(flow):
        style = ' [style=dashed, label="map"]' if mapped else ""
        lines.append(f"  {ids[up]} -> {ids[down]}{style};")
    lines.append("}")
    return "\n".join(lines) + "\n"


def text_tree(flow: Flow, info: RunInfo) -> str:
    """``flow`` as an indented tree from its first tasks, each with what run ``info`` recorded.

    A task fed by several others is drawn under the first; later it shows
    as ``(above)``.
    """
    marks = marks_of(flow, info)
    below: dict[Task, list[tuple[Task, bool]]] = {t: [] for t in marks}
    has_upstream: set[Task] = set()
    for up, down, mapped in _edges(flow):
        below[up].append((down, mapped))
        has_upstream.add(down)
    lines = [f"flow {flow.name!r}, run {info.run_id} ({info.status})"]
    drawn: set[Task] = set()

    def draw(task: Task, mapped: bool, indent: str, branch: str) -> None:
        via = "map: " if mapped else ""
        if task in drawn:
            lines.append(f"{indent}{branch}{via}{task.name} (above)")
            return
        drawn.add(task)
        lines.append(f"{indent}{branch}{via}{task.name}  [{marks[task].label}]")
        nested = "" if not branch else indent + ("    " if branch == "└── " else "│   ")
        kids = below[task]
        for k, (kid, kid_mapped) in enumerate(kids):
            draw(kid, kid_mapped, nested, "└── " if k == len(kids) - 1 else "├── ")

    for task in flow.sorted_tasks():
        if task in marks and task not in has_upstream:
            draw(task, False, "", "")
    return "\n".join(lines) + "\n"


def write_graph(flow: Flow, info: RunInfo, path: str) -> dict[str, str]:
    """Write the graph to ``path`` as its suffix says; what was written (path and format).

    ``.svg``/``.png``/``.pdf`` are drawn by graphviz's ``dot`` when it is
    installed; without it the text tree is written beside, to ``.txt``.
    ``.dot``/``.gv`` is the DOT source, ``.txt`` the text tree.
    """
    stem, suffix = os.path.splitext(path)
    suffix = suffix.lower()
    if suffix not in (*RENDERED, ".dot", ".gv", ".txt"):
        raise CliError(
            f"--graph {shown(path)}: name a .svg, .png, .pdf (drawn by graphviz), "
            ".dot (its source) or .txt (a text tree) file"
        )
    folder = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(folder):
        raise CliError(f"--graph {shown(path)}: the folder {shown(folder)} does not exist")
    dot = shutil.which("dot")
    if suffix in RENDERED and dot is not None:
        done = subprocess.run(
            [dot, f"-T{RENDERED[suffix]}", "-o", path],
            input=dot_source(flow, info),
            capture_output=True,
            text=True,
            timeout=60,
        )
        if done.returncode != 0:
            raise CliError(f"graphviz's dot could not draw {shown(path)}: {shown(done.stderr)}")
        return {"path": path, "format": RENDERED[suffix]}
    if suffix in (".dot", ".gv"):
        text, kind = dot_source(flow, info), "dot"
    else:  # .txt, or a drawing without graphviz
        text, kind = text_tree(flow, info), "text"
        path = stem + ".txt"
    with open(path, "w", encoding="utf-8") as f:
        f.write(text)
    return {"path": path, "format": kind}
