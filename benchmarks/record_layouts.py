"""Where the integrity record of a small value could live: sidecar, xattr or one file (issue 10).

resultkit keeps a payload ``P`` (exactly the serializer's bytes) and its JSON
record ``P.rkmeta`` beside it. This script times that layout against the two
alternatives the issue asks about, for a ~1 KB value, on the same kind of disk
the benchmarks use (a temp folder), with stdlib + xxhash only. It mirrors
resultkit's steps without importing it:

* **sidecar** (today's): under the folder's ``flock``, the new payload goes
  into the payload spare (``overwrite_spare``: open ``O_WRONLY|O_NOFOLLOW|
  O_NONBLOCK|O_CLOEXEC``, ``fstat``, ``pwrite``, ``ftruncate`` if it shrank);
  the current record is read; a record naming both the new payload and the
  one it replaces (``previous``) goes in through the record spare and a
  ``renameat2(RENAME_EXCHANGE)``; the payload spare is swapped in; the record
  alone goes in through the record spare (3 swaps, 3 spare writes).
  Read: record, then payload (each ``open``, ``fstat``, ``read``), verified.
  Warm check: ``lstat`` of both files against their kept identity.
* **xattr**: the record is set as the ``user.resultkit`` extended attribute
  of the payload spare (``fsetxattr``) before the one swap. Read: ``open``,
  ``fstat``, ``fgetxattr``, ``read``. Warm check: one ``lstat`` (a change of
  the attribute moves the change time: :func:`facts` checks it here).
* **one file**: the record as a header in the payload's file
  (``RKv1`` + 4-byte length + record + payload), one spare write and one swap.
  Read: one ``read``. Warm check: one ``lstat``.
* **raw floor**: an in-place overwrite (``open(path, "wb")``: ``O_TRUNC``,
  then write, Prefect 1's way; neither atomic nor checked) and a plain read.

Every write takes the digest (XXH3-128) and builds the JSON record (with its
write time) as resultkit does; the value is pickled once up front (the
serializer's cost is the same in every layout and is left out, so the ratios
are about the layouts). Layouts are timed in turns (the order rotating each
round), so host drift hits all alike; the table gives medians of every call
and, against the sidecar, the median of the per-turn ratios.

Run: ``.venv/bin/python benchmarks/record_layouts.py [--folder DIR] [--rounds N] [--tiny]``.
"""

from __future__ import annotations

import argparse
import json
import os
import pickle
import stat
import statistics
import struct
import sys
import tempfile
import time
from collections.abc import Callable
from typing import Any

from record_io import (
    READ_FLAGS,
    RECORD_READ,
    RECORD_SUFFIX,
    SMALL_PAIR,
    SPARE_PAYLOAD,
    SPARE_RECORD,
    XATTR_NAME,
    Corrupt,
    exchange,
    folder_lock,
    get_record_attribute,
    identity,
    overwrite_spare,
    parse_record,
    read_whole,
    record_bytes,
    record_metadata,
    verified,
)
from xattr_facts import facts

# A ~1 KB value, as the small case says (local_cases.SMALL pickles to 359 bytes).
SMALL = {"rows": list(range(100)), "name": "small", "meta": {"k": "v" * 800}}
PAYLOAD = pickle.dumps(SMALL, protocol=5)  # 1062 bytes
#: The one-file layout's header: this, the record's length (4 bytes), the record.
ONE_FILE_MAGIC = b"RKv1"


class Layout:
    """One way to store a payload and its record in ``folder`` (file ``small.pkl``)."""

    name = ""

    def __init__(self, folder: str) -> None:
        self.folder = folder
        os.makedirs(folder, exist_ok=True)
        self.path = os.path.join(folder, "small.pkl")
        self.kept: tuple[Any, ...] = ()

    def prepare(self, data: bytes) -> None:
        """Put a first value and the spares in place (as resultkit's first writes do)."""
        raise NotImplementedError

    def write(self, data: bytes) -> None:
        raise NotImplementedError

    def read(self) -> tuple[bytes, dict[str, str]]:
        """The payload, verified against its record, and the record."""
        raise NotImplementedError

    def files(self) -> list[str]:
        """The files a warm check looks at."""
        return [self.path]

    def keep(self) -> None:
        """Remember the identity of the files (what a warm target hit keeps)."""
        self.kept = tuple(identity(p) for p in self.files())

    def unchanged(self) -> bool:
        """The warm check: are the files still exactly the kept ones?"""
        return tuple(identity(p) for p in self.files()) == self.kept

    def payload_offset(self) -> int:
        """Where the payload starts in :attr:`path` (a byte flipped there is damage)."""
        return 0

    def _spare(self, which: str) -> str:
        return os.path.join(self.folder, which)


class Sidecar(Layout):
    name = "sidecar"

    def files(self) -> list[str]:
        return [self.path + RECORD_SUFFIX, self.path]

    def prepare(self, data: bytes) -> None:
        meta = record_bytes(record_metadata(data))
        for path, content in (
            (self.path + RECORD_SUFFIX, meta),
            (self.path, data),
            (self._spare(SPARE_RECORD), meta),
            (self._spare(SPARE_PAYLOAD), data),
        ):
            with open(path, "wb") as f:
                f.write(content)

    def write(self, data: bytes) -> None:
        record = self.path + RECORD_SUFFIX
        meta = record_metadata(data)
        with folder_lock(self.folder):
            os.lstat(self.path)  # _is_regular: the replaced payload is kept as the spare
            spare = self._spare(SPARE_PAYLOAD)
            overwrite_spare(spare, data)
            current = read_whole(record, RECORD_READ + 1)  # _cat_or_none
            first = dict(meta)
            first["previous"] = json.dumps(json.loads(current), sort_keys=True)
            self._put_record(record, record_bytes(first))  # vouches for old and new
            exchange(spare, self.path)
            self._put_record(record, record_bytes(meta))  # the publish is complete

    def _put_record(self, record: str, content: bytes) -> None:
        os.lstat(record)
        spare = self._spare(SPARE_RECORD)
        overwrite_spare(spare, content)
        exchange(spare, record)

    def read(self) -> tuple[bytes, dict[str, str]]:
        raw = read_whole(self.path + RECORD_SUFFIX, RECORD_READ)
        meta = parse_record(raw)
        data = read_whole(self.path, int(meta["size"]) + 1)
        return verified(data, meta), meta


class Xattr(Layout):
    name = "xattr"

    def prepare(self, data: bytes) -> None:
        meta = record_bytes(record_metadata(data))
        for path in (self.path, self._spare(SPARE_PAYLOAD)):
            with open(path, "wb") as f:
                f.write(data)
            os.setxattr(path, XATTR_NAME, meta)

    def write(self, data: bytes) -> None:
        meta = record_bytes(record_metadata(data))
        with folder_lock(self.folder):
            os.lstat(self.path)
            spare = self._spare(SPARE_PAYLOAD)
            overwrite_spare(spare, data, record=meta)
            exchange(spare, self.path)

    def read(self) -> tuple[bytes, dict[str, str]]:
        # The record comes first only to bound the read, as the sidecar's does.
        fd = os.open(self.path, READ_FLAGS)
        try:
            if not stat.S_ISREG(os.fstat(fd).st_mode):
                raise Corrupt(f"{self.path} is not a regular file")
            meta = parse_record(get_record_attribute(fd))
            data = os.read(fd, int(meta["size"]) + 1)
        finally:
            os.close(fd)
        return verified(data, meta), meta


class OneFile(Layout):
    name = "one file"
    _LENGTH = struct.Struct(">I")

    def _content(self, data: bytes) -> bytes:
        meta = record_bytes(record_metadata(data))
        return ONE_FILE_MAGIC + self._LENGTH.pack(len(meta)) + meta + data

    def prepare(self, data: bytes) -> None:
        for path in (self.path, self._spare(SPARE_PAYLOAD)):
            with open(path, "wb") as f:
                f.write(self._content(data))

    def write(self, data: bytes) -> None:
        content = self._content(data)
        with folder_lock(self.folder):
            os.lstat(self.path)
            spare = self._spare(SPARE_PAYLOAD)
            overwrite_spare(spare, content)
            exchange(spare, self.path)

    def read(self) -> tuple[bytes, dict[str, str]]:
        raw = read_whole(self.path, RECORD_READ + SMALL_PAIR)
        if raw[:4] != ONE_FILE_MAGIC:
            raise Corrupt(f"{self.path} has no record header")
        (n,) = self._LENGTH.unpack_from(raw, 4)
        meta = parse_record(raw[8 : 8 + n])
        return verified(raw[8 + n :], meta), meta

    def payload_offset(self) -> int:
        with open(self.path, "rb") as f:
            head = f.read(8)
        return 8 + self._LENGTH.unpack_from(head, 4)[0]


class RawInPlace(Layout):
    """The floor: Prefect 1's in-place overwrite and a plain read (no record, not atomic)."""

    name = "raw in place"

    def prepare(self, data: bytes) -> None:
        self.write(data)

    def write(self, data: bytes) -> None:
        with open(self.path, "wb") as f:
            f.write(data)

    def read(self) -> tuple[bytes, dict[str, str]]:
        with open(self.path, "rb") as f:
            return f.read(), {}


LAYOUTS: tuple[type[Layout], ...] = (Sidecar, Xattr, OneFile, RawInPlace)
OPS = ("write", "read", "warm")


def operation(layout: Layout, op: str) -> Callable[[], object]:
    if op == "write":
        return lambda: layout.write(PAYLOAD)
    if op == "read":
        return layout.read
    return layout.unchanged


def measure(folder: str, rounds: int, per_turn: int) -> dict[str, dict[str, dict[str, float]]]:
    """Median and 90th percentile time (us) of each layout's ops, and the median of its
    per-turn ratios to the sidecar's.

    Returns ``{layout: {op: {"median_us": ..., "p90_us": ..., "ratio": ...}}}``.
    """
    layouts = [cls(os.path.join(folder, cls.name.replace(" ", "-"))) for cls in LAYOUTS]
    for layout in layouts:
        layout.prepare(PAYLOAD)
        for _ in range(3):  # untimed: the spares, the page cache, the dentries
            layout.write(PAYLOAD)
            layout.read()
    calls: dict[tuple[str, str], list[float]] = {(x.name, op): [] for x in layouts for op in OPS}
    ratios: dict[tuple[str, str], list[float]] = {k: [] for k in calls}
    for turn in range(rounds):
        order = layouts[turn % len(layouts) :] + layouts[: turn % len(layouts)]
        for op in OPS:
            if op == "warm":
                for layout in layouts:
                    layout.keep()
            turn_median: dict[str, float] = {}
            for layout in order:
                fn = operation(layout, op)
                times = []
                for _ in range(per_turn):
                    t0 = time.perf_counter_ns()
                    fn()
                    times.append((time.perf_counter_ns() - t0) / 1000)
                calls[(layout.name, op)] += times
                turn_median[layout.name] = statistics.median(times)
            for name, value in turn_median.items():
                ratios[(name, op)].append(value / turn_median[Sidecar.name])
    return {
        x.name: {
            op: {
                "median_us": statistics.median(calls[(x.name, op)]),
                "p90_us": statistics.quantiles(calls[(x.name, op)], n=10)[-1],
                "ratio": statistics.median(ratios[(x.name, op)]),
            }
            for op in OPS
        }
        for x in layouts
    }


def table(results: dict[str, dict[str, dict[str, float]]]) -> str:
    """The medians as a markdown table, each with its ratio to the sidecar layout and its p90."""
    lines = [
        "median per call (its time / the sidecar's, the median of the per-turn ratios; p90 in us)",
        "",
        "| layout | overwrite | verified read | warm check |",
        "|---|---|---|---|",
    ]
    for name, ops in results.items():
        cells = [
            f"{ops[op]['median_us']:.1f} us ({ops[op]['ratio']:.2f}x; p90 {ops[op]['p90_us']:.0f})"
            for op in OPS
        ]
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--folder", default=None, help="where to write (default: a temp folder)")
    parser.add_argument("--rounds", type=int, default=200, help="turns of every layout")
    parser.add_argument("--per-turn", type=int, default=20, help="calls of one layout per turn")
    parser.add_argument("--tiny", action="store_true", help="a few calls (the smoke test)")
    parser.add_argument("--json", default=None, help="also write the medians to this file")
    args = parser.parse_args(argv)
    rounds, per_turn = (4, 2) if args.tiny else (args.rounds, args.per_turn)
    with tempfile.TemporaryDirectory(prefix="rk-layouts-", dir=args.folder) as d:
        results = measure(d, rounds, per_turn)
        notes = facts(d)
    print(f"payload {len(PAYLOAD)} bytes; {rounds} turns x {per_turn} calls per layout and op")
    print(table(results))
    for line in notes:
        print(line)
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"results": results, "facts": notes}, f, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
