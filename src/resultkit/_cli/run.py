"""``resultkit run FILE.py``: run a flow with a live table of task states and a summary."""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import runpy
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from rich.live import Live
from rich.table import Table

from .. import Flow, Parameter
from ..engine.flow import _Constant
from ..engine.state import Cached, Failed, Mapped, Skipped, State, Success
from ._common import OK, PROBLEMS, CliError, Output, human_size, one_line, shown

__all__ = ["run_flow", "run_with_progress", "load_flow", "parse_params", "Progress"]

_COLOURS = {"Running": "yellow", "Retrying": "yellow", "Success": "green", "Cached": "cyan",
            "Resumed": "blue", "Paused": "magenta",
            "Failed": "red", "TriggerFailed": "red", "Skipped": "dim", "Mapped": "green"}  # fmt: skip


def parse_params(pairs: list[str]) -> dict[str, Any]:
    """``k=v`` strings as parameters: JSON values where they parse, else text.

    >>> parse_params(["n=3", "day=2026-11-23", 'cities=["Oslo"]'])
    {'n': 3, 'day': '2026-11-23', 'cities': ['Oslo']}
    """
    params: dict[str, Any] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key.isidentifier():
            raise CliError(f"--param {pair!r} is not NAME=VALUE; e.g. --param day=2026-11-23")
        try:
            params[key] = json.loads(value)
        except ValueError:
            params[key] = value
    return params


def load_flow(path: str, name: str | None, prefer: str | None = None) -> Flow:
    """The flow defined at the top level of the Python file ``path`` (``name``: which one).

    ``prefer``: the flow's name to pick when the file defines several and
    ``name`` is not given (a resume picks the flow its run recorded).
    """
    if not os.path.isfile(path):
        raise CliError(f"no such file: {shown(path)}; give the Python file that defines the flow")
    # As `python FILE.py` does: the file's folder first on the path, for its own modules.
    folder = os.path.dirname(os.path.abspath(path))
    if folder not in sys.path:
        sys.path.insert(0, folder)
    try:
        # Not "__main__": a file's own "if __name__ == '__main__': flow.run()" stays quiet.
        namespace = runpy.run_path(path, run_name="__resultkit_run__")
    except SystemExit as exc:
        raise CliError(f"{shown(path)} exited while loading (SystemExit {exc.code})") from None
    except Exception as exc:
        raise CliError(
            f"{shown(path)} failed to load: {type(exc).__name__}: {one_line(exc)}"
        ) from None
    flows = {var: obj for var, obj in namespace.items() if isinstance(obj, Flow)}
    if name is not None:
        found = [f for var, f in flows.items() if name in (var, f.name)]
        if not found:
            names = ", ".join(sorted({f.name for f in flows.values()})) or "none"
            raise CliError(
                f"{shown(path)} defines no flow named {shown(name)!r} (its flows: {names})"
            )
        return found[0]
    unique = list({id(f): f for f in flows.values()}.values())
    if not unique:
        raise CliError(
            f"{shown(path)} defines no Flow at its top level; build one there "
            "(with Flow('name') as flow: ...)"
        )
    preferred = [f for f in unique if prefer is not None and f.name == prefer]
    if len(unique) > 1 and len(preferred) == 1:
        return preferred[0]
    if len(unique) > 1:
        names = ", ".join(sorted(f.name for f in unique))
        raise CliError(
            f"{shown(path)} defines several flows ({names}); choose one with --flow NAME"
        )
    return unique[0]


def _shown_task(task: Any) -> bool:
    """Whether a task has a row: not a Parameter, nor a constant the flow made of an argument."""
    return not isinstance(task, (Parameter, _Constant))


@dataclass
class _Row:
    state: str = "Pending"
    runs: int = 0
    started: float | None = None
    seconds: float = 0.0


class Progress:
    """Task states as the run goes (a state handler on every task), and the run's totals."""

    def __init__(self, flow: Flow) -> None:
        self.rows = {t.name: _Row() for t in flow.sorted_tasks() if _shown_task(t)}
        self.ran = self.cached = self.failed = self.skipped = 0
        self.resumed = 0  # task runs a resume reused from the run's records
        self.bytes_written = 0
        self.failures: list[str] = []
        self._lock = threading.Lock()

    def handler(self, task: Any, old: State, new: State) -> None:
        if not _shown_task(task) or task.name not in self.rows:
            return
        with self._lock:
            row = self.rows[task.name]
            row.state = type(new).__name__
            now = time.monotonic()
            if row.state == "Running":
                row.runs += 1
                if row.started is None:
                    row.started = now
            if isinstance(new, (Success, Failed)) and row.started is not None:
                row.seconds, row.started = row.seconds + now - row.started, None
            if isinstance(new, Mapped):
                return  # its children were counted one by one
            if isinstance(new, Cached):
                self.cached += 1
            elif isinstance(new, Skipped):
                self.skipped += 1
            elif isinstance(new, Success):
                self.ran += 1
                record = getattr(getattr(new, "_result", None), "record", None)
                if record is not None and new.location is not None:
                    self.bytes_written += record.size
            elif isinstance(new, Failed):
                self.failed += 1
                self.failures.append(
                    f"{task.name}: {shown(' '.join((new.message or 'failed').split()), 400)}"
                )

    def table(self) -> Table:
        table = Table(box=None, pad_edge=False)
        for column in ("task", "state", "runs", "time"):
            table.add_column(column, justify="right" if column in ("runs", "time") else "left")
        with self._lock:
            for name, row in self.rows.items():
                colour = _COLOURS.get(row.state, "white")
                running = time.monotonic() - row.started if row.started is not None else 0.0
                table.add_row(shown(name), f"[{colour}]{row.state}[/{colour}]", str(row.runs),
                              f"{row.seconds + running:.2f}s")  # fmt: skip
        return table


def run_flow(args: argparse.Namespace, out: Output) -> int:
    """``resultkit run FILE.py``: the flow run with a live table; 1 when it fails."""
    params = parse_params(args.param)
    flow = load_flow(args.file, args.flow)
    known = {p.name for p in flow.parameters()}
    unknown = sorted(set(params) - known)
    if unknown:
        raise CliError(
            f"flow {shown(flow.name)!r} has no parameter {', '.join(map(repr, unknown))} "
            f"(its parameters: {', '.join(sorted(known)) or 'none'})"
        )
    # The run's record names the flow's file, not this command's, so that
    # ``resultkit resume RUN_ID`` can load the flow again.
    where = os.path.abspath(args.file)
    return run_with_progress(flow, out, lambda: flow.run(parameters=params, flow_file=where))


def run_with_progress(
    flow: Flow, out: Output, start_run: Callable[[], State], progress: Progress | None = None
) -> int:
    """Call ``start_run`` (a run or a resume of ``flow``) with a live table, then print the
    summary; the exit code: 0 when the flow succeeded, 1 when it did not."""
    progress = progress or Progress(flow)
    handlers = {t: list(t.state_handlers) for t in flow.tasks}
    # On a remote executor (Dask) the tasks' handlers run on the workers: the table
    # is filled from the final states instead of live.
    remote = bool(getattr(flow.executor, "remote", False))
    for t in flow.tasks if not remote else []:
        t.state_handlers.append(progress.handler)
    start = time.monotonic()
    try:
        if out.as_json:
            # What tasks print goes to stderr: stdout carries one JSON document.
            with contextlib.redirect_stdout(sys.stderr):
                state = start_run()
        else:
            with Live(get_renderable=progress.table, console=out.console, refresh_per_second=8,
                      redirect_stderr=False):  # fmt: skip
                state = start_run()
            if not out.console.is_terminal:
                out.line()  # the table's last line has no line end when piped
    finally:
        for t, before in handlers.items():
            t.state_handlers[:] = before
    if remote and isinstance(state.result, dict):
        for t, final in state.result.items():
            for child in getattr(final, "map_states", []):
                progress.handler(t, final, child)
            progress.handler(t, final, final)
    seconds = time.monotonic() - start
    summary = {
        "flow": flow.name, "run_id": state.run_id, "state": type(state).__name__,
        "message": state.message, "ran": progress.ran, "cached": progress.cached,
        "resumed": progress.resumed, "failed": progress.failed, "skipped": progress.skipped,
        "seconds": round(seconds, 3), "bytes_written": progress.bytes_written,
        "failures": progress.failures,
    }  # fmt: skip
    if out.as_json:
        out.json(summary)
    else:
        colour = "green" if state.is_successful() else "red"
        resumed = f", {progress.resumed} resumed" if progress.resumed else ""
        out.line(
            f"flow {shown(flow.name)!r}: [{colour}]{type(state).__name__}[/{colour}] in "
            f"{seconds:.2f}s: {progress.ran} ran, {progress.cached} cached{resumed}, "
            f"{progress.failed} failed; {human_size(progress.bytes_written)} written"
        )
        for failure in progress.failures:
            out.line(f"  [red]failed[/red] {shown(failure, 400)}")
    return OK if state.is_successful() else PROBLEMS
