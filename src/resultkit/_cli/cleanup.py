"""``resultkit rm`` and ``resultkit gc``: delete results, and clean what is no longer needed."""

from __future__ import annotations

import argparse
import contextlib
import os
from typing import Any

from ..caching import ResultCacheStore
from ..caching.locks import remove_stale_lock
from ..errors import ResultKitError
from ..results import FSSpecResult
from ..results._localsafety import sweep_dead_writers
from ._common import (
    OK,
    PROBLEMS,
    USAGE,
    CliError,
    Output,
    failures,
    human_size,
    parse_duration,
    parse_size,
    shown,
)
from ._gcplan import Plan, Removal, make_plan
from ._inventory import take_inventory
from ._open import open_target

__all__ = ["run_rm", "run_gc"]


def run_rm(args: argparse.Namespace, out: Output) -> int:
    """``resultkit rm URL... [-r]``: each URL is tried; 2 when one named nothing."""
    removed: list[str] = []
    failed: list[dict[str, str]] = []
    for url in args.urls:
        try:
            target = open_target(url, args.endpoint_url, args.storage_option)
            if target.name is not None:
                keys = [target.name]
            elif not args.recursive:
                raise CliError(
                    f"nothing is stored at {shown(url)} (to delete every result in a folder, "
                    "use rm -r)"
                )
            else:
                _refuse_whole_disk(target.result, url, "rm -r")
                inventory = take_inventory(target.result, url)
                # Results only (a payload with its record): another file in the folder
                # is not resultkit's to delete.
                keys = sorted(
                    k
                    for k in inventory.payloads
                    if k in inventory.sidecars or _has_record(target.result, k)
                )
                if not keys:
                    raise CliError(
                        f"no result (a value with its integrity record) under {shown(url)}"
                    )
            for key in keys:
                with failures(target.key_url(key), "delete"):
                    if target.result.delete(key):
                        removed.append(target.key_url(key))
                        out.line(f"removed {shown(target.key_url(key))}")
        except CliError as exc:
            failed.append({"url": url, "error": str(exc)})
            out.errors.print(f"resultkit rm: {exc}")
    if out.as_json:
        out.json({"removed": removed, "failed": failed})
    return USAGE if failed else OK


def _refuse_whole_disk(result: FSSpecResult, url: str, what: str) -> None:
    """A local root, or the home folder itself, is never a results folder: refuse it."""
    storage = result.storage
    if getattr(storage, "protocol", None) != "file":
        return
    root = os.path.realpath(str(getattr(storage, "root", "")) or "/")
    if root in ("/", os.path.realpath(os.path.expanduser("~"))):
        raise CliError(
            f"{what} of {shown(url)} ({root}) refused: that is not a results folder; give the "
            "folder your results are in, e.g. ~/.resultkit/results"
        )


def _has_record(result: FSSpecResult, key: str) -> bool:
    try:
        return result.stat(key) is not None
    except Exception:
        return False


def _has_records(result: FSSpecResult, inventory: Any) -> bool:
    """Whether any payload under the root has an integrity record (object stores keep it inline)."""
    return any(_has_record(result, k) for k in list(inventory.payloads)[:50])


def _delete_result(result: FSSpecResult, removal: Removal) -> bool:
    """Delete a result unless it was written again since the plan (a writer raced gc)."""
    if removal.written_at is not None:
        with contextlib.suppress(ResultKitError):
            record = result.stat(removal.key)
            if record is not None and record.written_at != removal.written_at:
                return False
    removed = result.delete(removal.key)
    for key in removal.keys:
        removed = result.delete(key) or removed
    return removed


def _apply(
    result: FSSpecResult, url: str, plan: Plan
) -> tuple[list[Removal], list[dict[str, str]]]:
    """Carry the plan out; what was removed and what failed."""
    done: list[Removal] = []
    failed: list[dict[str, str]] = []
    storage: Any = result.storage
    local = storage.protocol == "file"
    swept: set[str] = set()
    store: ResultCacheStore | None = None
    for removal in plan.removals:
        where = storage.url(removal.key)
        try:
            with failures(where, "remove"):
                if removal.kind == "temp file" and local:
                    folder = os.path.dirname(storage.path(removal.key))
                    if folder not in swept:  # the writers' own sweep: the same rule
                        swept.update({folder})
                        gone = set(sweep_dead_writers(folder, force=True))
                        done += [r for r in plan.removals if r.kind == "temp file"
                                 and os.path.dirname(storage.path(r.key)) == folder
                                 and r.key.rpartition("/")[2] in gone]  # fmt: skip
                elif removal.kind == "temp file":
                    with contextlib.suppress(FileNotFoundError):
                        storage.fs.rm_file(storage.path(removal.key))
                        done.append(removal)
                elif removal.kind == "stale lock":
                    if remove_stale_lock(result, removal.key):
                        done.append(removal)
                elif removal.entry is not None:
                    store = store or ResultCacheStore(result)
                    store.remove(removal.entry)  # its indexes, hit mark and stored copy too
                    done.append(removal)
                elif _delete_result(result, removal):
                    done.append(removal)
        except CliError as exc:
            failed.append({"location": where, "error": str(exc)})
    return done, failed


def run_gc(args: argparse.Namespace, out: Output) -> int:
    """``resultkit gc URL [...]``: plan from one listing (make_plan), then apply unless --dry-run."""
    older = parse_duration(args.older_than) if args.older_than is not None else None
    cap = parse_size(args.max_size) if args.max_size is not None else None
    target = open_target(args.url, args.endpoint_url, args.storage_option)
    if target.name is not None:
        raise CliError(f"{shown(args.url)} is one result; gc takes the folder it is in (or rm it)")
    result = target.result
    _refuse_whole_disk(result, args.url, "gc")
    inventory = take_inventory(result, args.url)
    if args.orphans and not inventory.sidecars and not _has_records(result, inventory):
        raise CliError(
            f"no resultkit result under {shown(args.url)}, so every file there would count as "
            "an orphan: --orphans takes a folder resultkit writes to"
        )
    plan = make_plan(
        result, args.url, inventory,
        expired=args.expired, older_than=older, max_size=cap, orphans=args.orphans,
    )  # fmt: skip
    if args.dry_run:
        done, failed = plan.removals, list[dict[str, str]]()
    else:
        done, failed = _apply(result, args.url, plan)
    freed = sum(r.size for r in done)
    verb = "would remove" if args.dry_run else "removed"
    if out.as_json:
        out.json({
            "url": target.url, "dry_run": args.dry_run,
            "removed": [{"kind": r.kind, "location": result.storage.url(r.key), "bytes": r.size,
                         **({"task": r.entry.label} if r.entry is not None else {})}
                        for r in done],
            "kept": plan.kept, "failed": failed, "bytes_freed": freed,
            "bytes_before": plan.total,
        })  # fmt: skip
        return PROBLEMS if failed else OK
    for r in done:
        what = shown(result.storage.url(r.key))
        if r.entry is not None:  # name the task, not only the entry's file
            what = f"cache entry of {shown(r.entry.label)!r} ({what})"
        out.line(f"{verb} {r.kind}: {what} ({human_size(r.size)})")
    for kept in plan.kept:
        owner = f" by {shown(str(kept['owner']))}" if kept.get("owner") else ""
        out.line(f"kept {shown(kept['location'])}: its lock is held{owner}")
    for f in failed:
        out.errors.print(f"resultkit gc: could not remove {shown(f['location'])}: {f['error']}")
    out.line(
        f"{len(done)} {verb}, {human_size(freed)} freed of {human_size(plan.total)}"
        + (f"; {len(plan.kept)} kept (locked)" if plan.kept else "")
        + ("; nothing changed (dry run)" if args.dry_run else "")
    )
    return PROBLEMS if failed else OK
