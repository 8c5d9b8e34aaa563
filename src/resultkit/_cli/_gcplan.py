"""What ``resultkit gc`` removes: a plan made from one listing, before anything is deleted."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import Any

from ..caching import CacheEntryInfo, ResultCacheStore
from ..caching.locks import lock_holders
from ..results import FSSpecResult
from ..results._localsafety import is_dead_writer_temp
from ..results._location import LOCKS_FOLDER
from ..results._upload import is_stale_temp
from ._common import failures
from ._inventory import Inventory, Item
from .listing import describe_all

__all__ = ["Removal", "Plan", "make_plan", "ORPHAN_RECORD_AGE"]

#: A record without its payload is left alone this long: a writer publishing
#: a new key renames its record into place just before its payload.
ORPHAN_RECORD_AGE = timedelta(hours=1)
#: A temporary object on a filesystem without its own rule is a dead writer's after a day.
TEMP_AGE = 24 * 3600.0
#: The objects of a ResultCacheStore (see resultkit.caching.result_store).
_CACHE = re.compile(r"^(v1/[^/]+)/(entries|values|tags|index|hits)/(.+)$")


@dataclass
class Removal:
    """One thing gc removes: what it is, its key(s), why, and the bytes it frees."""

    kind: str  # temp file, stale lock, expired entry, old result, over size, orphan...
    key: str
    size: int = 0
    keys: list[str] = field(default_factory=list)  # deleted with it
    written_at: datetime | None = None  # checked again just before a result is deleted
    entry: CacheEntryInfo | None = None  # a cache entry: the store removes it


@dataclass
class Plan:
    removals: list[Removal] = field(default_factory=list)
    kept: list[dict[str, Any]] = field(default_factory=list)  # locked, with the holder
    total: int = 0  # bytes stored under the root before gc
    cache_store: bool = False


def _temp_is_garbage(result: FSSpecResult, item: Item) -> bool:
    name = item.key.rpartition("/")[2]
    if result.storage.protocol == "file":  # type: ignore[attr-defined]
        if item.modified is None:
            return False
        return is_dead_writer_temp(name, item.modified.timestamp())
    age = getattr(result.storage, "stale_temp_age", TEMP_AGE)
    return is_stale_temp(name, item.modified, age)


def _units(
    result: FSSpecResult, inventory: Inventory, rows: dict[str, dict[str, Any]], entries: bool
) -> list[dict[str, Any]]:
    """What gc may remove as one piece: a result, or a cache entry (``entries``: read them)."""
    units: list[dict[str, Any]] = []
    for key, item in inventory.payloads.items():
        if _CACHE.match(key) is None:
            row = rows.get(key, {})
            units.append({
                "kind": "result", "key": key, "keys": [key],
                "size": row.get("size") or item.size or 0,
                "used": row.get("written_at") or item.modified,
                "written_at": row.get("written_at"), "record": row.get("record", "ok"),
                "modified": item.modified,
            })  # fmt: skip
    if not entries:
        return units
    for info in ResultCacheStore(result).entries():
        stem = info.name.removesuffix(".json")
        own = [f"{info.slot}/entries/{info.name}", f"{info.slot}/hits/{stem}.json"]
        if info.value_kind == "stored":
            own.append(info.value_at)  # a copy under the store (a checkpoint is the task's)
        units.append({
            "kind": "entry", "key": own[0], "keys": [], "info": info,
            "expires": info.expires, "used": info.last_hit or info.created,
            "size": sum(inventory.payloads[k].size or 0 for k in own if k in inventory.payloads),
        })  # fmt: skip
    return units


def held_from_above(result: FSSpecResult) -> dict[str, dict[str, Any]]:
    """Live locks on this root's results taken by runs whose Result is rooted higher up.

    A lock lives under its Result's root (``<root>/.rklocks/<key>/``), so a
    run writing ``<root>/weather/x.pkl`` holds ``<root>/.rklocks/weather/x.pkl``:
    gc of ``<root>/weather`` must see it too. Keys are relative to ``result``.
    """
    storage: Any = result.storage
    held: dict[str, dict[str, Any]] = {}
    head, tail = storage.root.rstrip("/"), ""
    while "/" in head.strip("/"):
        head, _, name = head.rpartition("/")
        tail = f"{name}/{tail}" if tail else name
        above = FSSpecResult(result.fs, head or "/")  # the same client, a higher root
        for target, holder in lock_holders(above).items():
            if holder is not None and target.startswith(tail + "/"):
                held[target[len(tail) + 1 :]] = holder
    return held


def held_below(result: FSSpecResult, inventory: Inventory) -> dict[str, dict[str, Any]]:
    """Live locks of runs whose Result is rooted in a sub-folder (``<sub>/.rklocks/``).

    gc of ``~/.resultkit`` must see the locks of a run writing under
    ``~/.resultkit/results``. Keys are relative to ``result``.
    """
    storage: Any = result.storage
    marker = f"/{LOCKS_FOLDER}/"
    subs = sorted({i.key.split(marker, 1)[0] for i in inventory.locks if marker in i.key})
    held: dict[str, dict[str, Any]] = {}
    for sub in subs:
        below = FSSpecResult(result.fs, f"{storage.root.rstrip('/')}/{sub}")
        for target, holder in lock_holders(below).items():
            if holder is not None:
                held[f"{sub}/{target}"] = holder
    return held


def make_plan(
    result: FSSpecResult,
    url: str,
    inventory: Inventory,
    *,
    expired: bool = False,
    older_than: float | None = None,
    max_size: int | None = None,
    orphans: bool = False,
) -> Plan:
    """Decide what gc removes; nothing is deleted here."""
    now = datetime.now(timezone.utc)
    plan = Plan()
    plan.total = sum(i.size or 0 for i in inventory.payloads.values())
    plan.cache_store = any("/entries/" in k and _CACHE.match(k) for k in inventory.payloads)
    for item in inventory.temps:
        if _temp_is_garbage(result, item):
            plan.removals.append(Removal("temp file", item.key, item.size or 0))
    with failures(url, "list the locks of"):
        holders = lock_holders(result)
    for target, holder in holders.items():
        if holder is None:
            plan.removals.append(Removal("stale lock", target))
    held = {t: h for t, h in holders.items() if h is not None}
    if older_than is not None or max_size is not None or orphans or expired:
        with failures(url, "list the locks above"):
            held.update(held_from_above(result))
        with failures(url, "list the locks below"):
            held.update(held_below(result, inventory))

    needs_records = orphans or older_than is not None or max_size is not None
    plain = [i for k, i in inventory.payloads.items() if not _CACHE.match(k)]
    rows = {r["key"]: r for r in describe_all(result, plain)} if needs_records else {}
    wants_entries = expired or older_than is not None or max_size is not None
    units = _units(result, inventory, rows, wants_entries and plan.cache_store)
    chosen: set[str] = set()

    def take(unit: dict[str, Any], kind: str) -> None:
        if unit["key"] in chosen:
            return
        holder = held.get(unit["key"])
        if holder is not None:
            plan.kept.append(
                {"location": result.storage.url(unit["key"]), "reason": "its lock is held",
                 "owner": holder.get("owner")}
            )  # fmt: skip
            chosen.add(unit["key"])
            return
        chosen.add(unit["key"])
        extra = [k for k in unit["keys"] if k != unit["key"]]
        plan.removals.append(
            Removal(
                kind, unit["key"], unit["size"], extra, unit.get("written_at"), unit.get("info")
            )
        )

    if orphans:
        for unit in units:
            young = unit.get("modified") is not None and now - unit["modified"] < ORPHAN_RECORD_AGE
            if unit["kind"] == "result" and unit["record"] == "missing" and not young:
                take(unit, "payload without record")  # an hour old: not a write in progress
        for key, item in inventory.sidecars.items():
            old = item.modified is not None and now - item.modified >= ORPHAN_RECORD_AGE
            if key not in inventory.payloads and old:
                take({"key": key, "keys": [key], "size": item.size or 0}, "record without payload")
    if expired:
        for unit in units:
            if unit["kind"] == "entry" and unit["expires"] is not None and unit["expires"] <= now:
                take(unit, "expired entry")
    # Age and size pick among resultkit's own results and entries: a payload
    # without a record (another tool's, not adopted yet) is --orphans' to remove.
    units = [u for u in units if u.get("record", "ok") == "ok"]
    if older_than is not None:
        cutoff = now - timedelta(seconds=older_than)
        for unit in units:
            if unit["used"] is not None and unit["used"] < cutoff:
                take(unit, "old " + unit["kind"])
    if max_size is not None:
        housekeeping = ("temp file", "stale lock", "record without payload")
        freed = sum(r.size for r in plan.removals if r.kind not in housekeeping)
        left = plan.total - freed
        oldest_first = sorted(units, key=lambda u: u["used"] or now)
        for unit in oldest_first:
            if left <= max_size:
                break
            if unit["key"] in chosen:
                continue
            take(unit, "over size")
            if plan.removals and plan.removals[-1].key == unit["key"]:
                left -= unit["size"]
    return plan
