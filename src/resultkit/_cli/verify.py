"""``resultkit verify``: check every payload's size and digest against its record."""

from __future__ import annotations

import argparse
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from typing import Any

from rich.progress import BarColumn, DownloadColumn, Progress, TextColumn, TimeRemainingColumn

from ..errors import ResultCorruptError, ResultKitError
from ..results import FSSpecResult
from ._common import (
    INTERRUPTED,
    OK,
    PROBLEMS,
    Output,
    human_size,
    one_line,
    plural,
    shown,
)
from ._inventory import Item, take_inventory
from ._open import open_target

__all__ = ["run_verify", "check_one"]

#: Reads in flight at once (object stores answer each in a round trip).
READ_THREADS = 8


def check_one(result: FSSpecResult, key: str) -> str | None:
    """The problem with the result stored under ``key``, or ``None`` when it verifies."""
    try:
        result.read_bytes(key)  # size and digest against the record; nothing deserialized
    except ResultCorruptError as exc:
        return one_line(exc)
    except FileNotFoundError:
        return None  # deleted since the listing: nothing left to be wrong
    except ResultKitError as exc:
        return one_line(exc)
    return None


def _items(args: argparse.Namespace) -> tuple[FSSpecResult, list[Item], list[dict[str, Any]], str]:
    target = open_target(args.url, args.endpoint_url, args.storage_option)
    if target.name is not None:
        return target.result, [Item(target.name, None, None)], [], target.url
    inventory = take_inventory(target.result, args.url)

    def wanted(key: str) -> bool:
        return args.recursive or "/" not in key

    items = [i for k, i in inventory.payloads.items() if wanted(k)]
    orphans = [
        {"location": target.key_url(k), "problem": "an integrity record without its payload"}
        for k in inventory.sidecars
        if k not in inventory.payloads and wanted(k)
    ]
    return target.result, items, orphans, target.url


def run_verify(args: argparse.Namespace, out: Output) -> int:
    """``resultkit verify URL [-r]``: every digest checked; 1 on any problem, 130 on Ctrl-C."""
    result, items, problems, url = _items(args)
    done = 0
    progress = Progress(
        TextColumn("verifying {task.fields[done]}/{task.fields[of]}"),
        BarColumn(),
        DownloadColumn(),
        TimeRemainingColumn(),
        console=out.errors,
        transient=True,
        disable=not out.interactive,
    )
    total = sum(i.size or 0 for i in items)
    pool = ThreadPoolExecutor(READ_THREADS if len(items) > 1 else 1)
    try:
        with progress:
            bar = progress.add_task("verify", total=total or None, done=0, of=len(items))
            pending: dict[Future[str | None], Item] = {}
            queue = list(reversed(items))
            while queue or pending:
                while queue and len(pending) < READ_THREADS * 2:
                    item = queue.pop()
                    pending[pool.submit(check_one, result, item.key)] = item
                finished, _ = wait(pending, return_when=FIRST_COMPLETED)
                for future in finished:
                    item = pending.pop(future)
                    problem = future.result()
                    done += 1
                    progress.update(bar, advance=item.size or 0, done=done)
                    if problem is not None:
                        problems.append(
                            {"location": result.storage.url(item.key), "problem": problem}
                        )
                        if out.interactive:  # as they come, above the bar
                            progress.console.print(
                                f"[red]problem[/red] {shown(result.storage.url(item.key))}: {problem}"
                            )
    except KeyboardInterrupt:
        pool.shutdown(wait=False, cancel_futures=True)
        out.errors.print(
            f"resultkit verify: interrupted after {done} of {len(items)} results; "
            f"{len(problems)} problems so far"
        )
        return INTERRUPTED
    pool.shutdown()
    problems.sort(key=lambda p: p["location"])
    if out.as_json:
        out.json({"url": url, "checked": len(items), "bytes": total, "problems": problems})
    else:
        if not out.interactive:  # else printed as they came
            for p in problems:
                out.line(f"problem {shown(p['location'])}: {shown(p['problem'], 400)}")
        verdict = (
            "[green]all verified[/green]"
            if not problems
            else f"[red]{plural(len(problems), 'problem')}[/red]"
        )
        out.line(f"{plural(len(items), 'result')} checked ({human_size(total)}): {verdict}")
    return PROBLEMS if problems else OK
