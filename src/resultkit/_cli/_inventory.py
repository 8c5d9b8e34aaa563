"""Everything stored under a root, resultkit's own files included, in one listing.

``Storage.list`` shows the keys of values only; maintenance also needs the
files it hides: integrity records (``P.rkmeta``, sidecars on disks), temp
files of writers (``.P.rktmp-...``) and single-flight locks (``.rklocks/``).
One walk of the filesystem gives them all, with sizes and modification times.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any

from ..errors import StorageAccessError, StorageError
from ..results import FSSpecResult
from ..results._location import LOCKS_FOLDER, RECORD_SUFFIX, TEMP_MARKER
from ._common import CliError, failures, shown

__all__ = ["Item", "Inventory", "take_inventory"]


@dataclass
class Item:
    """One file or object under the root: its key, size and modification time."""

    key: str
    size: int | None
    modified: datetime | None


@dataclass
class Inventory:
    """The files under a root, by what they are."""

    payloads: dict[str, Item] = field(default_factory=dict)  # key -> payload
    sidecars: dict[str, Item] = field(default_factory=dict)  # key of its payload -> record file
    temps: list[Item] = field(default_factory=list)  # temp files of writers
    locks: list[Item] = field(default_factory=list)  # lock epochs under .rklocks/

    @property
    def empty(self) -> bool:
        return not (self.payloads or self.sidecars or self.temps or self.locks)

    def add(self, item: Item) -> None:
        name = item.key.rpartition("/")[2]
        if item.key.startswith(LOCKS_FOLDER + "/") or f"/{LOCKS_FOLDER}/" in item.key:
            self.locks.append(item)  # at any depth: a Result rooted lower keeps its locks there
        elif TEMP_MARKER in name.lower():
            self.temps.append(item)
        elif name.lower().endswith(RECORD_SUFFIX * 2):
            return  # a folder's spare file (local writers reuse it); no key has that record
        elif name.lower().endswith(RECORD_SUFFIX):
            self.sidecars[item.key[: -len(RECORD_SUFFIX)]] = item
        else:
            self.payloads[item.key] = item


def _when(info: dict[str, Any]) -> datetime | None:
    """The modification time in a listing's info (each filesystem names it differently)."""
    for name in ("mtime", "LastModified", "last_modified", "updated", "created"):
        value = info.get(name)
        if value is None:
            continue
        if isinstance(value, datetime):
            return value if value.tzinfo else value.replace(tzinfo=timezone.utc)
        if isinstance(value, (int, float)):
            return datetime.fromtimestamp(value, timezone.utc)
        if isinstance(value, str):
            try:
                parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
            except ValueError:
                continue
            return parsed if parsed.tzinfo else parsed.replace(tzinfo=timezone.utc)
    return None


def _walk_local(root: str) -> Iterator[Item]:
    # os.walk never follows symlinked folders (a link loop cannot hang the walk,
    # a link out of the root is not listed), and lstat never follows a final link.
    for folder, _, files in os.walk(root, followlinks=False, onerror=_refuse_unlisted):
        for name in files:
            path = os.path.join(folder, name)
            try:
                info = os.lstat(path)
            except OSError:  # removed meanwhile
                continue
            if not stat.S_ISREG(info.st_mode):
                continue  # a symlink, FIFO or device is never a result
            key = os.path.relpath(path, root).replace(os.sep, "/")
            yield Item(key, info.st_size, datetime.fromtimestamp(info.st_mtime, timezone.utc))


def _refuse_unlisted(exc: OSError) -> None:
    """A folder the walk cannot list is an error, not an empty folder: ``ls`` would
    hide its results, ``verify`` say all verified, ``rm -r`` find nothing there."""
    if isinstance(exc, (FileNotFoundError, NotADirectoryError)):
        return  # removed meanwhile (or the root is not there: said after the walk)
    reason = exc.strerror or type(exc).__name__
    kind = StorageAccessError if isinstance(exc, PermissionError) else StorageError
    raise kind(
        f"cannot list the folder {exc.filename} ({reason}): results in it would be "
        "missed; fix its permissions (or run as its owner) and try again"
    ) from exc


def _walk_fs(result: FSSpecResult) -> Iterator[Item]:
    storage = result.storage
    fs = result.fs
    root = storage.root.rstrip("/")  # type: ignore[attr-defined]
    fs.invalidate_cache()
    try:
        found = fs.find(root, detail=True, withdirs=False)
    except FileNotFoundError:
        return
    start = len(root) + 1 if root else 0
    for name, info in found.items():
        if info.get("type") == "directory":
            continue
        plain = name.split("://", 1)[1] if "://" in name else name
        key = plain[start:]
        if key and not key.endswith("/"):
            size = info.get("size")
            yield Item(key, int(size) if size is not None else None, _when(info))


def take_inventory(result: FSSpecResult, url: str, prefix: str = "") -> Inventory:
    """Every file under ``result``'s root (or under ``prefix`` in it), sorted by key."""
    inventory = Inventory()
    with failures(url, "list"):
        if result.storage.protocol == "file":  # type: ignore[attr-defined]
            root = result.storage.root  # type: ignore[attr-defined]
            items = list(_walk_local(os.path.join(root, prefix) if prefix else root))
            if prefix:
                for item in items:
                    item.key = f"{prefix.rstrip('/')}/{item.key}"
        else:
            items = [i for i in _walk_fs(result) if i.key.startswith(prefix)]
    for item in sorted(items, key=lambda i: i.key):
        inventory.add(item)
    if not items:
        _check_there(result, url)
    return inventory


def _check_there(result: FSSpecResult, url: str) -> None:
    """Tell a folder or bucket that is not there from an empty one."""
    storage: Any = result.storage
    if storage.protocol == "file":
        if not os.path.isdir(storage.root):
            raise CliError(f"nothing is stored at {shown(url)}: no such file or folder")
        return
    with failures(url, "list"):
        result.exists(".resultkit-probe")  # a missing bucket raises; an empty prefix does not
