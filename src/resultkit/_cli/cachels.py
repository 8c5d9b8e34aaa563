"""``resultkit ls`` of an output cache store: its entries, not its files."""

from __future__ import annotations

import re
from datetime import datetime, timezone
from typing import Any

from ..caching import ResultCacheStore
from ..results import FSSpecResult
from ._common import OK, Output, failures, human_age, human_size, shown
from ._inventory import Inventory

__all__ = ["is_cache_store", "list_cache_store"]

_ENTRY = re.compile(r"^v1/[^/]+/entries/[^/]+\.json$")


def is_cache_store(inventory: Inventory) -> bool:
    """Whether the files listed are a ResultCacheStore's (``v1/<slot>/entries/...``)."""
    return any(_ENTRY.match(key) for key in inventory.payloads)


def list_cache_store(result: FSSpecResult, url: str, inventory: Inventory, out: Output) -> int:
    """One row per cache entry: its task, age, expiry, last hit, size and value."""
    with failures(url, "list the entries of"):
        infos = ResultCacheStore(result).entries()
    now = datetime.now(timezone.utc)
    rows: list[dict[str, Any]] = []
    for info in infos:
        stem = info.name.removesuffix(".json")
        own = [f"{info.slot}/entries/{info.name}", f"{info.slot}/hits/{stem}.json"]
        if info.value_kind == "stored":
            own.append(info.value_at)
        rows.append({
            "task": info.label, "flow": info.key.flow, "entry": result.storage.url(own[0]),
            "created": info.created, "expires": info.expires, "last_hit": info.last_hit,
            "size": sum(inventory.payloads[k].size or 0 for k in own if k in inventory.payloads),
            "value": info.value_at if info.value_kind == "location" else "stored in the cache",
        })  # fmt: skip
    total = sum(i.size or 0 for i in inventory.payloads.values())
    expired = sum(r["expires"] is not None and r["expires"] <= now for r in rows)
    if out.as_json:
        out.json({"url": url, "cache_entries": rows,
                  "totals": {"entries": len(rows), "expired": expired, "bytes": total}})  # fmt: skip
        return OK
    from .listing import print_table  # (listing imports this module)

    table = [("TASK", "SIZE", "AGE", "EXPIRES", "LAST HIT", "VALUE")]
    for r in rows:
        expires = r["expires"]
        table.append((
            r["task"], human_size(r["size"]), human_age(r["created"], now),
            "never" if expires is None else "expired" if expires <= now else human_age(expires, now),
            "-" if r["last_hit"] is None else human_age(r["last_hit"], now) + " ago", r["value"],
        ))  # fmt: skip
    out.line(f"{shown(result.root_url)} (an output cache store)")
    print_table(out, table)
    out.line(
        f"{len(rows)} {'entry' if len(rows) == 1 else 'entries'} ({expired} expired), {human_size(total)} in all; "
        "'ls -r' lists its files"
    )
    return OK
