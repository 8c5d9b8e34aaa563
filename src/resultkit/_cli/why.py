"""``resultkit why FILE.py TASK``: why a task's cache missed, from its two newest entries.

The flow file is loaded as ``resultkit run`` loads it (without running the
flow); the task's cache key and store are the ones a run would use. The
components of the two newest entries (inputs, parameters, each piece of
code, expiry) are printed side by side, changed ones first, and the task's
code as it is now is compared with the newest entry's.
"""

from __future__ import annotations

import argparse
import re
from collections.abc import Callable
from typing import Any

from ._common import OK, CliError, Output, shown

__all__ = ["add_parser", "run_why"]

_TOKEN = 12  # hex digits of a token shown: enough to tell two apart


def add_parser(sub: Any, common: argparse.ArgumentParser, command: Callable[..., Any]) -> None:
    """Add ``why`` to the subcommands (``command`` is cli.py's ``_command``)."""
    why = command(sub, "why", "show why a task's output cache missed: its two newest entries' "
                  "inputs, parameters and code side by side",
                  "  resultkit why flows/etl.py clean\n"
                  "  resultkit why flows/etl.py clean --flow nightly --map-index 2 --json", common)  # fmt: skip
    why.add_argument("file", metavar="FILE.py")
    why.add_argument("task", metavar="TASK", help="the task's name in the flow")
    why.add_argument("--flow", metavar="NAME", help="which flow, when the file defines several")
    why.add_argument("--map-index", type=int, default=None, help="a mapped child's index")


def _short(token: str | None) -> str:
    """A token's first hex digits (an expiry is shown whole)."""
    if token is None:
        return "-"
    return token[:_TOKEN] if re.fullmatch(r"[0-9a-f]{16,}", token) else token


def run_why(args: argparse.Namespace, out: Output) -> int:
    """Print the comparison of the task's two newest cache entries."""
    from ..caching import CacheKey, compare_last_entries
    from ..engine.context import default_cache_store
    from ..engine.output_cache import task_code
    from .run import load_flow

    flow = load_flow(args.file, args.flow)
    tasks = [t for t in flow.tasks if t.name == args.task]
    if not tasks:
        names = ", ".join(sorted({t.name for t in flow.tasks if t.cache_for is not None}))
        raise CliError(
            f"flow {shown(flow.name)!r} has no task named {shown(args.task)!r} "
            f"(its cached tasks: {names or 'none'})"
        )
    task = tasks[0]
    if task.cache_for is None:
        raise CliError(f"task {shown(task.name)!r} has no output cache (no cache_for=...)")
    if task.cache_key is not None:
        key = CacheKey(task.cache_key, None, args.map_index)
    else:
        key = CacheKey(task.name, flow.name, args.map_index)
    store = flow.cache_store if flow.cache_store is not None else default_cache_store()
    comparison = compare_last_entries(store, key)
    newest = {
        c.name[len("code ") :]: c.newer
        for c in comparison.components
        if c.name.startswith("code ") and c.newer is not None
    }
    compared = bool(newest)  # the task's validator compares code
    code_now = task_code(task).changed_from(newest) if compared else []
    if out.as_json:
        out.json(
            {
                "task": task.name,
                "key": {"name": key.name, "flow": key.flow, "map_index": key.map_index},
                "store": repr(store),
                "older": comparison.older,
                "newer": comparison.newer,
                "components": [
                    {"name": c.name, "older": c.older, "newer": c.newer, "changed": c.changed}
                    for c in comparison.components
                ],
                "code_changed_since_newer": code_now if compared else None,
            }
        )
        return OK
    out.line(f"task {shown(task.name)!r}, cache {shown(key.label)!r} in {shown(repr(store))}")
    if comparison.newer is None:
        out.line("no entry yet: the next run computes it")
        return OK
    out.line(f"older: {comparison.older or '-'}   newer: {comparison.newer}")
    rows = [(c.name, _short(c.older), _short(c.newer), c.changed) for c in comparison.components]
    name_width = max(len("component"), *(len(r[0]) for r in rows))
    older_width = max(len("older"), *(len(r[1]) for r in rows))
    widths = (name_width, older_width)
    out.line(f"  {'component':<{widths[0]}}  {'older':<{widths[1]}}  newer")
    for name, older, newer, changed in rows:
        mark = "  changed" if changed and comparison.older is not None else ""
        out.line(f"  {shown(name):<{widths[0]}}  {older:<{widths[1]}}  {newer}{mark}")
    if compared:
        shown_now = ", ".join(code_now[:5]) if code_now else "none"
        out.line(f"code changed since the newer entry: {shown(shown_now)}")
    return OK
