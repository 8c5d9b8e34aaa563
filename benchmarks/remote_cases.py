"""Object-store cases: many checkpoints written and read at once over a 20 ms link, vs serially.

The S3 servers run behind ``latency_proxy.py`` (every request waits 20 ms,
as on a nearby region). ``run.py`` starts them once and passes their URLs
in ``BENCH_S3`` (JSON: ``{server: {"url": ..., "options": {...}}}``); run
alone, the harness starts moto itself. "serial" is the same Result writing
(reading) one value after the other, the way a runner without batches does.
"""

from __future__ import annotations

import contextlib
import json
import os
import uuid
from collections.abc import Callable
from typing import Any

from harness import sized, timed

CHECKPOINTS = sized(200, 20)
SERIAL_REPEAT = 3  # a serial batch takes ~10 s over 20 ms


def servers() -> dict[str, dict[str, Any]]:
    return dict(json.loads(os.environ.get("BENCH_S3", "{}")))


@contextlib.contextmanager
def s3_result(server: str, engine: str = "s3fs") -> Any:
    """A fresh S3Result (its own prefix, ``engine``) on ``server`` behind the latency proxy."""
    from resultkit.results import S3Result

    known = servers().get(server)
    with contextlib.ExitStack() as stack:
        if known is None:
            from latency_proxy import latent_s3

            s3 = stack.enter_context(latent_s3(server=server))
            known = {"url": s3.url, "options": s3.storage_options}
        r = S3Result(
            "bench",
            prefix=uuid.uuid4().hex,
            endpoint_url=known["url"],
            storage_options=dict(known["options"]),
            engine=engine,
        )
        with contextlib.suppress(FileExistsError):
            if not r.fs.exists("bench"):
                r.fs.mkdir("bench")
        r.write(0, "warm.pkl")  # the client, its connections and the bucket check
        yield r


def values() -> dict[str, dict[str, int]]:
    return {f"ckpt/{i}.pkl": {"i": i} for i in range(CHECKPOINTS)}


def fresh(r: Any, batch: Callable[[Any, dict[str, Any]], object]) -> Callable[[], object]:
    """One timed batch: the same values, under a new folder each time (no overwrite)."""

    def once() -> object:
        folder = uuid.uuid4().hex[:8]
        return batch(r, {f"{folder}/{k}": v for k, v in values().items()})

    return once


def write_many(server: str, engine: str = "s3fs") -> Callable[[str, int], list[float]]:
    def case(d: str, repeat: int) -> list[float]:
        with s3_result(server, engine) as r:
            return timed(fresh(r, lambda r, items: r.write_many(items)), repeat)

    return case


def write_serially(server: str) -> Callable[[str, int], list[float]]:
    def case(d: str, repeat: int) -> list[float]:
        with s3_result(server) as r:
            once = fresh(r, lambda r, items: [r.write(v, k) for k, v in items.items()])
            return timed(once, min(repeat, SERIAL_REPEAT))

    return case


def read_many(server: str) -> Callable[[str, int], list[float]]:
    def case(d: str, repeat: int) -> list[float]:
        with s3_result(server) as r:
            written = [w.location for w in r.write_many(values())]
            return timed(lambda: r.read_many(written), repeat)

    return case


def read_serially(server: str) -> Callable[[str, int], list[float]]:
    def case(d: str, repeat: int) -> list[float]:
        with s3_result(server) as r:
            written = [w.location for w in r.write_many(values())]
            return timed(lambda: [r.read(w) for w in written], min(repeat, SERIAL_REPEAT))

    return case


#: The large verified read: a numpy array, read by ranges vs by one GET.
LARGE_READ_MB = sized(64, 4)


def large_read(server: str, ranged: bool) -> Callable[[str, int], list[float]]:
    """A verified read of one LARGE_READ_MB array: concurrent ranged GETs, or one GET.

    The tiny mode's 4 MB is below the default ``ranged_read_from``: it lowers
    the settings so the ranged path still runs (512 KiB parts).
    """

    def case(d: str, repeat: int) -> list[float]:
        import numpy as np

        from resultkit.serializers import NumpySerializer

        with s3_result(server) as r:
            r = r.copy()
            r.serializer = NumpySerializer()
            storage = r.storage
            if LARGE_READ_MB < 16:
                storage.ranged_read_from, storage.read_part_size = 2**20, 2**19
            if not ranged:  # the old path: one streamed GET
                storage.ranged_read_from = 2**62
            value = np.arange(LARGE_READ_MB * 2**20 // 8, dtype=np.int64)
            location = r.write(value, "large.npy").location
            r.read(location)  # the connections warm
            return timed(lambda: r.read(location), repeat)

    return case


#: Keys of the exists_many row, half of them there: a task's few targets, checked at once.
EXISTS_KEYS = 8


def exists_many(server: str, serially: bool) -> Callable[[str, int], list[float]]:
    """One ``exists_many`` of EXISTS_KEYS keys (a HEAD each, at once), or one ``exists`` after
    the other."""

    def case(d: str, repeat: int) -> list[float]:
        with s3_result(server) as r:
            r.write_many({f"e/{i}.pkl": i for i in range(0, EXISTS_KEYS, 2)})
            keys = [f"e/{i}.pkl" for i in range(EXISTS_KEYS)]
            if serially:
                return timed(lambda: [r.exists(k) for k in keys], repeat)
            return timed(lambda: r.exists_many(keys), repeat)

    return case


CASES: dict[str, tuple[str, dict[str, Callable[[str, int], list[float]]]]] = {}
# SeaweedFS when the run has it: moto reads the whole object for every ranged
# GET (its CPU, not requests, would be measured).
_LARGE_SERVER = "seaweedfs" if "seaweedfs" in servers() else "moto"
CASES["s3_large_read"] = (
    f"verified read, {LARGE_READ_MB} MB numpy, S3 ({_LARGE_SERVER}) over 20 ms: "
    "ranged GETs vs one GET",
    {"resultkit": large_read(_LARGE_SERVER, True), "one GET": large_read(_LARGE_SERVER, False)},
)
CASES["s3_exists_many"] = (
    f"exists_many of {EXISTS_KEYS} keys on S3 (moto) over 20 ms, vs {EXISTS_KEYS} exists() in turn",
    {"resultkit": exists_many("moto", False), "serial": exists_many("moto", True)},
)
for _server in servers() or {"moto": {}}:
    _suffix = "" if _server == "moto" else f"_{_server}"
    CASES[f"s3_checkpoints{_suffix}"] = (
        f"write {CHECKPOINTS} checkpoints to S3 ({_server}) over 20 ms a request",
        {"resultkit": write_many(_server), "serial": write_serially(_server)},
    )
    CASES[f"s3_checkpoints_obstore{_suffix}"] = (
        f"the same with S3Result(engine='obstore') ({_server}), vs serial with s3fs",
        {"resultkit": write_many(_server, "obstore"), "serial": write_serially(_server)},
    )
    CASES[f"s3_reads{_suffix}"] = (
        f"verified read of {CHECKPOINTS} checkpoints from S3 ({_server}) over 20 ms",
        {"resultkit": read_many(_server), "serial": read_serially(_server)},
    )
