"""``resultkit ls``, ``inspect`` and ``cat``: what is stored, its record, its value."""

from __future__ import annotations

import argparse
import pprint
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timezone
from typing import Any

from rich.markup import escape

from ..caching._layout import _parse_name
from ..errors import ResultCorruptError, ResultKitError
from ..results import FSSpecResult, Record
from ..results._location import short
from ._common import (
    OK,
    PROBLEMS,
    CliError,
    Output,
    failures,
    human_age,
    human_size,
    one_line,
    plural,
    shown,
)
from ._inventory import Inventory, Item, take_inventory
from ._open import open_target
from ._serializers import serializer_named
from .cachels import is_cache_store, list_cache_store

__all__ = ["run_ls", "run_inspect", "run_cat", "describe_all", "expiry_of"]

#: Concurrent metadata requests when listing an object store (one HEAD per result).
STAT_THREADS = 16


def expiry_of(key: str) -> datetime | None:
    """The expiry a cache store's entry (or stored value) carries in its name, if any.

    >>> expiry_of("v1/task-ab/entries/20261101T000000000000Z_20261102T000000000000Z_0123456789abcdef.json")
    datetime.datetime(2026, 11, 2, 0, 0, tzinfo=datetime.timezone.utc)
    >>> expiry_of("reports/monday.pkl") is None
    True
    """
    folder, _, name = key.rpartition("/")
    kind = folder.rpartition("/")[2]
    if kind == "values" and name.endswith(".val"):
        name = name[: -len(".val")] + ".json"
    elif kind != "entries":
        return None
    parsed = _parse_name(name)
    return None if parsed is None else parsed[0]


def describe(result: FSSpecResult, item: Item) -> dict[str, Any]:
    """One stored payload as a row: location, size, written, serializer, expiry, record."""
    row: dict[str, Any] = {
        "location": result.storage.url(item.key),
        "key": item.key,
        "size": item.size,
        "written_at": item.modified,
        "serializer": None,
        "expires": expiry_of(item.key),
        "record": "ok",
    }
    try:
        record = result.stat(item.key)
    except ResultCorruptError as exc:
        row["record"] = "missing" if "no integrity record" in str(exc) else "unreadable"
        row["problem"] = one_line(exc)
        return row
    except ResultKitError as exc:  # a name resultkit refuses, a failure of the storage
        row["record"] = "unreadable"
        row["problem"] = one_line(exc)
        return row
    if record is None:  # removed since the listing
        row["record"] = "gone"
        return row
    row.update(size=record.size, written_at=record.written_at, serializer=record.serializer)
    row["digest"] = record.digest
    return row


def describe_all(result: FSSpecResult, items: list[Item]) -> list[dict[str, Any]]:
    """:func:`describe` for many payloads (concurrently on object stores)."""
    if result.storage.protocol == "file" or len(items) < 4:  # type: ignore[attr-defined]
        return [describe(result, i) for i in items]
    with ThreadPoolExecutor(STAT_THREADS) as pool:
        return list(pool.map(lambda i: describe(result, i), items))


def _folders(inventory: Inventory, rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Rows of the root's own results, and one per sub-folder with its totals."""
    top: list[dict[str, Any]] = []
    folders: dict[str, dict[str, Any]] = {}
    for row in rows:
        head, sep, _ = row["key"].partition("/")
        if not sep:
            top.append(row)
            continue
        folder = folders.setdefault(head, {"key": head + "/", "results": 0, "size": 0})
        folder["results"] += 1
        folder["size"] += row["size"] or 0
    return top + list(folders.values())


def run_ls(args: argparse.Namespace, out: Output) -> int:
    """``resultkit ls URL [-r]``: one result, a folder (sub-folders as rows), or a cache store."""
    target = open_target(args.url, args.endpoint_url, args.storage_option)
    result = target.result
    if target.name is not None:
        items = [Item(target.name, None, None)]
        rows = describe_all(result, items)
    else:
        inventory = take_inventory(result, args.url)
        if not args.recursive and is_cache_store(inventory):
            return list_cache_store(result, target.url, inventory, out)
        rows = describe_all(result, list(inventory.payloads.values()))
        rows += [
            {"location": result.storage.url(k), "key": k, "size": None, "written_at": i.modified,
             "serializer": None, "expires": None, "record": "orphan",
             "problem": "an integrity record without its payload"}
            for k, i in inventory.sidecars.items() if k not in inventory.payloads
        ]  # fmt: skip
        rows.sort(key=lambda r: r["key"])
    shown_rows = rows if args.recursive or target.name is not None else _folders(Inventory(), rows)
    totals = {
        "results": len(rows),
        "bytes": sum(r["size"] or 0 for r in rows),
        "without_record": sum(r["record"] != "ok" for r in rows),
    }
    if out.as_json:
        out.json({"url": target.url, "entries": shown_rows, "totals": totals})
        return OK
    now = datetime.now(timezone.utc)
    table = [("LOCATION", "SIZE", "AGE", "SERIALIZER", "EXPIRES", "RECORD")]
    for row in shown_rows:
        if "results" in row:  # a folder
            table.append(
                (row["key"], human_size(row["size"]), "", plural(row["results"], "result"), "", "")
            )
            continue
        expires = row["expires"]
        table.append((
            row["key"], human_size(row["size"]), human_age(row["written_at"], now),
            row["serializer"] or "-",
            "-" if expires is None else ("expired" if expires <= now else human_age(expires, now)),
            row["record"],
        ))  # fmt: skip
    if target.name is None:
        out.line(shown(result.root_url))
    print_table(out, table)
    out.line(
        f"{plural(totals['results'], 'result')}, {human_size(totals['bytes'])}"
        + (
            f", {totals['without_record']} without a usable record"
            if totals["without_record"]
            else ""
        )
    )
    return OK


def print_table(out: Output, table: Sequence[Sequence[str]]) -> None:
    # Widths of the text as printed; markup is escaped after padding.
    cells = [[short(c, 200) for c in row] for row in table]
    widths = [max(len(row[i]) for row in cells) for i in range(len(cells[0]))]
    right = {1, 2}  # sizes and ages line up on the right
    for row in cells:
        parts = [
            c.rjust(w) if i in right else c.ljust(w)
            for i, (c, w) in enumerate(zip(row, widths, strict=True))
        ]
        out.line(escape("  ".join(parts).rstrip()))


def _record_json(record: Record) -> dict[str, Any]:
    return {
        "serializer": record.serializer,
        "size": record.size,
        "digest": record.digest,
        "written_at": record.written_at.isoformat(),
    }


def preview(value: Any, lines: int = 12, width: int = 100) -> str:
    """A short text of a value: its repr, pretty-printed and cut.

    >>> preview(list(range(3)))
    '[0, 1, 2]'
    """
    text = value if isinstance(value, str) else pprint.pformat(value, width=width, compact=True)
    cut = text.splitlines()[:lines]
    cut = [line if len(line) <= width else line[: width - 3] + "..." for line in cut]
    more = len(text.splitlines()) > lines
    return "\n".join(cut) + ("\n..." if more else "")


def _read_value(result: FSSpecResult, name: str, url: str, record: Record) -> Any:
    reader = result.copy()
    reader.serializer = serializer_named(record.serializer, url)
    with failures(url, "read"):
        return reader.read(name).value


def run_inspect(args: argparse.Namespace, out: Output) -> int:
    """``resultkit inspect URL [--value]``: the record, the bytes verified; 1 when damaged."""
    target = open_target(args.url, args.endpoint_url, args.storage_option, single=True)
    result, name = target.result, target.name
    assert name is not None
    try:
        with failures(args.url, "read"):
            _, record = result.read_bytes(name)  # verifies size and digest; deserializes nothing
    except CliError as exc:
        if exc.code != PROBLEMS:
            raise
        if out.as_json:
            out.json({"url": target.url, "ok": False, "problem": str(exc)})
        else:
            out.errors.print(f"[red]problem[/red] {shown(args.url)}: {exc}")
        return PROBLEMS
    value = _read_value(result, name, args.url, record) if args.value else None
    if out.as_json:
        doc: dict[str, Any] = {"url": target.url, "ok": True, "record": _record_json(record)}
        if args.value:
            doc["preview"] = preview(value)
        out.json(doc)
        return OK
    out.line(f"[green]ok[/green] {shown(target.url)}")
    out.line(f"  serializer  {shown(record.serializer)}")
    out.line(f"  size        {record.size} bytes ({human_size(record.size)})")
    out.line(f"  digest      {record.digest}")
    out.line(f"  written at  {record.written_at.isoformat()} ({human_age(record.written_at)} ago)")
    if record.signature:
        out.line("  signed      yes (HMAC-SHA256)")
    if args.value:
        out.line("  value")
        for line in preview(value).splitlines():
            out.line(f"    {shown(line, 200)}")
    return OK


def run_cat(args: argparse.Namespace, out: Output) -> int:
    """``resultkit cat URL``: the value, read with the serializer its record names."""
    target = open_target(args.url, args.endpoint_url, args.storage_option, single=True)
    assert target.name is not None
    with failures(args.url, "read"):
        record = target.result.stat(target.name)
    if record is None:
        raise CliError(f"nothing is stored at {shown(args.url)}")
    value = _read_value(target.result, target.name, args.url, record)
    if out.as_json:
        out.json(value)
    elif isinstance(value, (bytes, bytearray)):
        out.console.file.flush()
        import sys

        sys.stdout.buffer.write(bytes(value))
    else:
        out.console.print(value if isinstance(value, str) else pprint.pformat(value), markup=False)
    return OK
