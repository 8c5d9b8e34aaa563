"""``resultkit runs``, ``runs show RUN_ID``, ``resume RUN_ID``: recorded runs; continuing one.

A run that stores a value records itself in a run store (see README
"Resuming a run"): ``<run_id>/run.json`` names its flow, status, times and
the file the flow process ran. ``runs`` lists them, ``runs show`` shows one
(and draws its flow, loaded from that file), ``resume`` loads the flow the
same way ``resultkit run`` does and calls ``flow.resume(run_id)``.
"""

from __future__ import annotations

import argparse
import os
from collections.abc import Callable, Sequence
from datetime import datetime, timezone
from typing import Any

from rich.markup import escape

from ..engine.flow import Flow
from ..engine.run_history import RunInfo
from ..engine.runs import run_store_from
from ..engine.state import Resume, State
from ..errors import FlowError
from ..results import FSSpecResult, StorageResult
from ..results._location import short
from ..runs import default_run_store, get_run, list_runs
from ._common import OK, CliError, Output, failures, human_age, plural, shown
from ._inventory import _check_there
from ._open import open_root

__all__ = ["add_parser", "run_runs", "run_resume"]

_STORE_HELP = (
    "the run store: a folder or URL (default: RESULTKIT_RUN_STORE, else RESULTKIT_HOME/runs, "
    "i.e. ~/.resultkit/runs)"
)


def add_parser(sub: Any, common: argparse.ArgumentParser, command: Callable[..., Any]) -> None:
    """Add ``runs`` (with ``runs show``) and ``resume`` (``command`` is cli.py's ``_command``)."""
    # One parser, not a sub-command "show": its options may come before or
    # after "show RUN_ID" (a sub-parser's defaults would overwrite them).
    runs = command(sub, "runs", "list recorded flow runs, newest first: id, flow, status, "
                   "started, ended, task runs recorded; 'runs show RUN_ID': one run and its "
                   "task runs (name, map index, state, location)",
                   "  resultkit runs\n  resultkit runs --store s3://bucket/runs --json\n"
                   "  resultkit runs show nightly-2026-11-25\n"
                   "  resultkit runs show nightly-2026-11-25 --graph run.svg\n"
                   "  resultkit runs show nightly-2026-11-25 --graph run.txt --json", common)  # fmt: skip
    runs.add_argument("runs_action", nargs="?", choices=["show"], metavar="show",
                      help="show one run (give its RUN_ID)")  # fmt: skip
    runs.add_argument("run_id", nargs="?", metavar="RUN_ID", help="the run to show")
    runs.add_argument("--store", metavar="URL", help=_STORE_HELP)
    runs.add_argument(
        "--graph", metavar="FILE",
        help="with show: draw the flow (loaded from the file the run recorded), coloured by what "
        "the run recorded: .svg/.png/.pdf with graphviz's dot if installed, else a text tree in "
        "FILE's .txt; .dot: its source; .txt: a text tree",
    )  # fmt: skip
    runs.add_argument(
        "--file", metavar="FILE.py",
        help="with --graph: the file that defines the flow (default: the file the run recorded)",
    )  # fmt: skip
    runs.add_argument("--flow", metavar="NAME", help="with --graph: which flow of the file")
    resume = command(sub, "resume", "continue a recorded run (killed, failed or paused) where it "
                     "stopped, with a live table of its tasks",
                     "  resultkit resume nightly-2026-11-25\n"
                     "  resultkit resume nightly-2026-11-25 flows/etl.py --flow nightly\n"
                     "  resultkit resume 3f1c... --store s3://bucket/runs --json", common)  # fmt: skip
    resume.add_argument("run_id", metavar="RUN_ID")
    resume.add_argument(
        "file", metavar="FILE.py", nargs="?",
        help="the file that defines the flow (default: the file the run recorded)",
    )  # fmt: skip
    resume.add_argument("--store", metavar="URL", help=_STORE_HELP)
    resume.add_argument("--flow", metavar="NAME", help="which flow, when the file defines several")
    resume.add_argument(
        "--approve", metavar="TASK", action="append", default=[],
        help="a paused task (manual_only) to run now, from its recorded inputs (repeatable)",
    )  # fmt: skip


def _store(args: argparse.Namespace) -> tuple[StorageResult, str]:
    """The run store the arguments name (or the default one), and its URL."""
    if args.store is not None:
        store = open_root(args.store, args.endpoint_url, args.storage_option)
        local: Any = store.storage
        if local.protocol == "file" and not os.path.isdir(local.root):
            raise CliError(
                f"--store {shown(args.store)}: no such folder; give the folder or URL runs are "
                "recorded in (see 'resultkit runs --help')"
            )
        return store, store.root_url
    if args.endpoint_url or args.storage_option:
        raise CliError("--endpoint-url and --storage-option apply to --store URL; give it")
    found = default_run_store()
    if found is None:
        raise CliError(
            "run records are off (RESULTKIT_RUN_STORE=off); give the run store with --store URL"
        )
    return found, found.root_url


def _get(store: StorageResult, url: str, run_id: str) -> RunInfo:
    if not run_id or any(c in run_id for c in "/\\{}") or run_id in (".", ".."):
        raise CliError(
            f"{shown(repr(run_id))} is not a run id (a run id names one folder of the run "
            "store); list the recorded runs with 'resultkit runs'"
        )
    try:
        with failures(url, "read"):
            return get_run(run_id, store)
    except FlowError:
        raise CliError(
            f"no run {shown(run_id)!r} is recorded in {shown(url)}; list the recorded runs with "
            f"'resultkit runs{_store_flag(url)}' (a run is recorded once a task stores its "
            "value; a flow with its own run_store records there: give it with --store URL)"
        ) from None


def _store_flag(url: str) -> str:
    default = default_run_store()
    return "" if default is not None and default.root_url == url else f" --store {url}"


def _when(iso: str | None, now: datetime) -> str:
    """An ISO time as ``2026-11-25 18:02:01 (3m ago)`` in UTC."""
    if not iso:
        return "-"
    try:
        when = datetime.fromisoformat(iso).astimezone(timezone.utc)
    except ValueError:
        return iso
    return f"{when:%Y-%m-%d %H:%M:%S} ({human_age(when, now)} ago)"


def _summary(info: RunInfo) -> dict[str, Any]:
    return {
        "run_id": info.run_id,
        "flow": info.flow,
        "status": info.status,
        "started": info.started,
        "ended": info.ended,
        "flow_file": info.flow_file,
        "task_runs": info.recorded,
    }


def run_runs(args: argparse.Namespace, out: Output) -> int:
    """``resultkit runs`` (the recorded runs) or ``resultkit runs show RUN_ID`` (one run)."""
    if args.runs_action == "show" and args.run_id is None:
        raise CliError(
            "runs show needs the run's id: resultkit runs show RUN_ID ('resultkit runs' lists them)"
        )
    extra = [f for f in ("graph", "file", "flow") if getattr(args, f) is not None]
    if args.runs_action is None and extra:
        raise CliError(f"--{extra[0]} goes with 'runs show RUN_ID'")
    store, url = _store(args)
    if args.runs_action == "show":
        return _show(args, out, store, url)
    with failures(url, "list"):
        runs = list_runs(store)
    remote = getattr(store.storage, "protocol", "") != "file"
    if not runs and remote and isinstance(store, FSSpecResult):
        _check_there(store, url)  # a listing of a missing bucket is empty, not an error
    if out.as_json:
        out.json({"store": url, "runs": [_summary(r) for r in runs]})
        return OK
    out.line(shown(url))
    if not runs:
        out.line("no run is recorded here (a run is recorded once a task stores its value)")
        return OK
    now = datetime.now(timezone.utc)
    table = [("RUN ID", "FLOW", "STATUS", "STARTED", "ENDED", "TASK RUNS")]
    for r in runs:
        table.append((r.run_id, r.flow, r.status, _when(r.started, now), _when(r.ended, now),
                      str(r.recorded)))  # fmt: skip
    _print_table(out, table)
    out.line(f"{plural(len(runs), 'run')}; 'resultkit runs show RUN_ID' for one")
    return OK


def _print_table(out: Output, table: Sequence[Sequence[str]]) -> None:
    """Columns padded to their widest cell (markup escaped after padding)."""
    cells = [[short(c, 200) for c in row] for row in table]
    widths = [max(len(row[i]) for row in cells) for i in range(len(cells[0]))]
    for row in cells:
        out.line(escape("  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip()))


#: resultkit's own folder: a run recorded with a file in it ran no flow file of the user's.
_PACKAGE = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _load_for(info: RunInfo, file: str | None, name: str | None, how: str) -> Flow:
    """The flow of run ``info``: from ``file`` if given, else from the file the run recorded.

    ``how`` is the command to suggest with the file, ``{file}`` standing for it.
    """
    from .run import load_flow

    if file is None:
        file = info.flow_file
        fix = how.format(run_id=shown(info.run_id), file="FILE.py")
        if file is not None and os.path.dirname(os.path.abspath(file)) == _PACKAGE:
            file = None  # resultkit's own __main__ (a run recorded by an older `run`)
        if file is None:
            raise CliError(
                f"run {shown(info.run_id)!r} recorded no flow file (its process ran no file); "
                f"give the file that defines flow {shown(info.flow)!r}: {fix}"
            )
        if not os.path.isfile(file):
            raise CliError(
                f"run {shown(info.run_id)!r} ran the flow from {shown(file)}, which no longer "
                f"exists; give the file that defines flow {shown(info.flow)!r}: {fix}"
            )
    return load_flow(file, name, prefer=info.flow)


def _show(args: argparse.Namespace, out: Output, store: StorageResult, url: str) -> int:
    info = _get(store, url, args.run_id)
    graph = None
    if args.graph is not None:
        from ._graph import write_graph

        how = f"resultkit runs show {{run_id}} --graph {shown(args.graph)} --file {{file}}"
        flow = _load_for(info, args.file, args.flow, how)
        _check_flow(flow, info)
        graph = write_graph(flow, info, args.graph)
    tasks = sorted(info.tasks, key=lambda r: (r.index, -1 if r.map_index is None else r.map_index))
    if out.as_json:
        document = {**_summary(info), "store": url, "parameters": info.parameters}
        document["tasks"] = [
            {"name": r.name, "index": r.index, "map_index": r.map_index, "state": r.state,
             "location": r.location, "message": r.message, "inputs": r.inputs}
            for r in tasks
        ]  # fmt: skip
        document["graph"] = graph
        out.json(document)
        return OK
    now = datetime.now(timezone.utc)
    out.line(f"run {shown(info.run_id)} of flow {shown(info.flow)!r}: {shown(info.status)}")
    out.line(f"  started     {_when(info.started, now)}")
    out.line(f"  ended       {_when(info.ended, now)}")
    out.line(f"  flow file   {shown(info.flow_file or '-')}")
    out.line(f"  parameters  {shown(repr(info.parameters))}")
    out.line(f"  store       {shown(url)}")
    table = [("TASK", "MAP INDEX", "STATE", "LOCATION")]
    for r in tasks:
        where = r.location or (f"inputs: {', '.join(r.inputs)}" if r.inputs else "-")
        table.append((r.name, "-" if r.map_index is None else str(r.map_index), r.state, where))
    if tasks:
        _print_table(out, table)
    out.line(f"{plural(len(tasks), 'task run')} recorded")
    if graph is not None:
        if graph["format"] == "text" and not args.graph.lower().endswith(".txt"):
            out.line(
                f"graphviz's dot is not installed: wrote a text tree to {shown(graph['path'])} "
                f"instead of {shown(args.graph)} (install graphviz to draw it)"
            )
        else:
            out.line(f"wrote the flow's graph to {shown(graph['path'])}")
    return OK


def _check_flow(flow: Flow, info: RunInfo) -> None:
    """Refuse a flow the run did not run (another flow, or tasks changed since); reads nothing.

    The same checks as ``flow.resume`` makes, before a live table starts.
    """
    if info.flow != flow.name:
        raise CliError(
            f"run {shown(info.run_id)!r} is a run of flow {shown(info.flow)!r}, not "
            f"{shown(flow.name)!r}; give the file that defines {shown(info.flow)!r}"
        )
    for rec in info.tasks:
        now = flow.tasks[rec.index].name if rec.index < len(flow.tasks) else None
        if now != rec.name:
            raise CliError(
                f"run {shown(info.run_id)!r} recorded task #{rec.index} as {shown(rec.name)!r}, "
                f"but this flow's task #{rec.index} is {shown(repr(now)) if now else 'missing'}: "
                "the flow changed since; start a new run instead"
            )


def _resumed(state: State) -> int:
    """How many task runs (mapped children one by one) a resume reused from the records."""
    count = 0
    for task_state in (state.result or {}).values():
        for s in [task_state, *(getattr(task_state, "map_states", None) or [])]:
            count += (s.message or "").startswith("resumed from")
    return count


def run_resume(args: argparse.Namespace, out: Output) -> int:
    """``resultkit resume RUN_ID [FILE.py]``: the run continued with a live table; 1 when it fails."""
    from .run import Progress, run_with_progress

    given = None
    if args.file is not None:
        from .run import load_flow

        given = load_flow(args.file, args.flow)
    if args.store is None and given is not None and given.run_store is not None:
        # The file's Flow(run_store=...) is where its runs are recorded.
        store = run_store_from(given.run_store, f"Flow({given.name!r}, run_store=...)")
        if store is None:
            raise CliError(f"flow {shown(given.name)!r} records no runs (run_store='off')")
        url = store.root_url
    else:
        store, url = _store(args)
    info = _get(store, url, args.run_id)
    flow = given or _load_for(info, None, args.flow, "resultkit resume {run_id} {file}")
    _check_flow(flow, info)
    approved = _approved(flow, info, args.approve)
    # The records are read from the store named here, whatever the file's
    # Flow(run_store=...) says: the run was found there.
    flow.run_store = store
    progress = Progress(flow)
    for rec in info.tasks:  # shown as resumed until the task runs (its value gone, say)
        row = progress.rows.get(rec.name)
        if row is not None and rec.map_index is None and rec.location is not None:
            row.state = "Resumed"
    where = os.path.abspath(args.file) if args.file is not None else info.flow_file

    def resume() -> State:
        state = flow.resume(info.run_id, task_states=approved, flow_file=where)
        progress.resumed = _resumed(state)
        return state

    code = run_with_progress(flow, out, resume, progress)
    paused = sorted({name for name, row in progress.rows.items() if row.state == "Paused"})
    if paused and not out.as_json:
        approve = " ".join(f"--approve {shown(n)}" for n in paused)
        out.line(f"paused: approve with resultkit resume {shown(info.run_id)} {approve}")
    return code


def _approved(flow: Flow, info: RunInfo, names: list[str]) -> dict[Any, State]:
    """``{task: Resume()}`` for each task named by ``--approve`` (a task the run paused)."""
    paused = {r.name for r in info.tasks if r.state == "Paused"}
    approved: dict[Any, State] = {}
    for name in names:
        tasks = [t for t in flow.tasks if t.name == name]
        if not tasks or name not in paused:
            raise CliError(
                f"--approve {shown(name)}: run {shown(info.run_id)!r} has no paused task of "
                f"that name (paused: {', '.join(sorted(paused)) or 'none'})"
            )
        approved.update({t: Resume() for t in tasks})
    return approved
