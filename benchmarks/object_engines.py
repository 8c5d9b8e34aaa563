"""s3fs against obstore for many small concurrent requests (the write_many / read_many workload).

Each engine PUTs then GETs ``--items`` small objects (200 bytes, with the
user metadata resultkit's record needs), ``--concurrency`` at once, on one
event loop; the S3 server is moto or SeaweedFS, reached directly and
through the latency proxy. Prints wall time and this process's CPU time per
request: with the server's CPU on the same 2 cores, the client's CPU per
request is what bounds concurrent throughput.

    .venv/bin/python benchmarks/object_engines.py --server moto --latency-ms 20

``--ab`` instead times S3Result's ``write_many`` (``--ab read_many``: its
``read_many``) two ways in turns, in one process: a thread an item (as
before the loop lane) and from the event loop.

    .venv/bin/python benchmarks/object_engines.py --server seaweedfs --ab read_many --repeat 8
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import statistics
import sys
import time
import uuid
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from latency_proxy import latent_s3  # noqa: E402

BUCKET = "engines"
BODY = b"x" * 200
META = {"rk": "1", "rk-digest": "xxh3_128:00112233445566778899aabbccddeeff", "rk-size": "200"}


async def bounded(n: int, concurrency: int, one: Callable[[int], Awaitable[object]]) -> None:
    sem = asyncio.Semaphore(concurrency)

    async def run(i: int) -> None:
        async with sem:
            await one(i)

    await asyncio.gather(*(run(i) for i in range(n)))


def s3fs_engine(
    url: str, options: dict[str, str], tuned: bool = False
) -> tuple[Callable, Callable, Callable]:
    """s3fs's client as botocore sets it up, or (``tuned``) with S3Result's settings."""
    import s3fs
    from fsspec.asyn import sync

    from resultkit.results._s3client import client_config, tuned_client

    config: dict[str, Any] = {"max_pool_connections": 128}
    fs = s3fs.S3FileSystem(
        endpoint_url=url,
        skip_instance_cache=True,
        config_kwargs=client_config(config) if tuned else config,
        **options,
    )
    if tuned:
        tuned_client(fs)
    with contextlib.suppress(FileExistsError):  # the other engine made it
        sync(fs.loop, fs._call_s3, "create_bucket", fs.kwargs, Bucket=BUCKET)

    async def put(key: str) -> None:
        await fs._call_s3("put_object", fs.kwargs, Bucket=BUCKET, Key=key, Body=BODY, Metadata=META)

    async def get(key: str) -> None:
        out = await fs._call_s3("get_object", fs.kwargs, Bucket=BUCKET, Key=key)
        body = out["Body"]
        await body.read()
        body.close()
        assert out["Metadata"]["rk"] == "1"

    def run(coro: Callable[[], Awaitable[None]]) -> None:
        sync(fs.loop, coro)

    return put, get, run


def obstore_engine(url: str, options: dict[str, str]) -> tuple[Callable, Callable, Callable]:
    import os

    import obstore
    from obstore.store import S3Store

    store = S3Store(
        BUCKET,
        endpoint=url,
        region="us-east-1",
        access_key_id=options.get("key", os.environ["AWS_ACCESS_KEY_ID"]),
        secret_access_key=options.get("secret", os.environ["AWS_SECRET_ACCESS_KEY"]),
        client_options={"allow_http": True, "pool_max_idle_per_host": "128"},
        virtual_hosted_style_request=False,
    )

    async def put(key: str) -> None:
        await obstore.put_async(store, key, BODY, attributes=META)

    async def get(key: str) -> None:
        out = await obstore.get_async(store, key)
        await out.bytes_async()
        assert out.attributes.get("rk") == "1", out.attributes

    def run(coro: Callable[[], Awaitable[None]]) -> None:
        asyncio.run(coro())

    return put, get, run


def obstore_fsspec_engine(url: str, options: dict[str, str]) -> tuple[Callable, Callable, Callable]:
    """obstore's fsspec adapter: no user metadata on a PUT, so not usable for records as is."""
    import os

    from obstore.fsspec import FsspecStore

    fs = FsspecStore(
        "s3",
        config={
            "endpoint": url,
            "region": "us-east-1",
            "access_key_id": options.get("key", os.environ["AWS_ACCESS_KEY_ID"]),
            "secret_access_key": options.get("secret", os.environ["AWS_SECRET_ACCESS_KEY"]),
            "virtual_hosted_style_request": False,
        },
        client_options={"allow_http": True, "pool_max_idle_per_host": "128"},
        asynchronous=True,
    )

    async def put(key: str) -> None:
        await fs._pipe_file(f"{BUCKET}/{key}", BODY)

    async def get(key: str) -> None:
        await fs._cat_file(f"{BUCKET}/{key}")

    def run(coro: Callable[[], Awaitable[None]]) -> None:
        asyncio.run(coro())

    return put, get, run


ENGINES: dict[str, Callable[[str, dict[str, str]], tuple[Callable, Callable, Callable]]] = {
    "s3fs": s3fs_engine,
    # S3Result's client settings (results/_s3client.py): no CRC32s, no parameter
    # checks, a fixed User-Agent, Last-Modified parsed without dateutil.
    "s3fs.resultkit": lambda url, options: s3fs_engine(url, options, tuned=True),
    "obstore": obstore_engine,
    "obstore.fsspec": obstore_fsspec_engine,
}


# -- the same through resultkit: write_many / read_many of S3Result ------------------------
def obstore_store(url: str, options: dict[str, str], bucket: str) -> Any:
    import os

    from obstore.store import S3Store

    return S3Store(
        bucket,
        endpoint=url,
        region="us-east-1",
        access_key_id=options.get("key", os.environ["AWS_ACCESS_KEY_ID"]),
        secret_access_key=options.get("secret", os.environ["AWS_SECRET_ACCESS_KEY"]),
        client_options={"allow_http": True, "pool_max_idle_per_host": "128"},
        virtual_hosted_style_request=False,
    )


def obstore_requests(storage: Any, store: Any) -> None:
    """A prototype engine: S3Storage's three small-object requests sent by obstore."""
    import obstore
    from obstore.exceptions import AlreadyExistsError, NotFoundError, PreconditionError

    def key_of(path: str) -> str:
        return path.split("/", 1)[1]

    def put_object(path: str, data: bytes, metadata: dict, create: bool = False) -> bool:
        try:
            obstore.put(
                store,
                key_of(path),
                data,
                attributes=metadata,
                mode="create" if create else "overwrite",
            )
        except (AlreadyExistsError, PreconditionError):
            return False
        return True

    def get_object(path: str) -> Any:
        try:
            got = obstore.get(store, key_of(path))
        except NotFoundError:
            return None
        return bytes(got.bytes()), dict(got.attributes)

    def head_object(path: str) -> Any:
        try:
            return dict(obstore.get(store, key_of(path), options={"head": True}).attributes)
        except NotFoundError:
            return None

    storage._put_object, storage._get_object, storage._head_object = (
        put_object,
        get_object,
        head_object,
    )
    storage._request_loop = lambda: None  # no s3fs coroutine: write_many sends from threads


def through_resultkit(
    engine: str, url: str, options: dict, items: int, concurrency: int, repeat: int
) -> dict[str, tuple[float, float]]:
    from resultkit.results import S3Result

    r = S3Result(BUCKET, prefix=uuid.uuid4().hex, endpoint_url=url, storage_options=dict(options))
    if engine == "obstore":
        obstore_requests(r.storage, obstore_store(url, options, BUCKET))
    r.write(0, "warm.pkl")
    out = {}
    for name in ("write_many", "read_many"):
        walls, cpus = [], []
        for i in range(repeat):
            values = {f"{name}-{i}/{n}.pkl": {"n": n} for n in range(items)}
            t, c = time.perf_counter(), time.process_time()
            if name == "write_many":
                r.write_many(values, concurrency=concurrency)
            else:
                got = r.read_many(
                    [f"write_many-0/{n}.pkl" for n in range(items)], concurrency=concurrency
                )
                assert [g.value["n"] for g in got] == list(range(items))
            walls.append(time.perf_counter() - t)
            cpus.append(time.process_time() - c)
        out[name] = (statistics.median(walls), statistics.median(cpus))
    return out


def measure(
    engine: str, url: str, options: dict, items: int, concurrency: int, repeat: int
) -> dict[str, tuple[float, float]]:
    """Median (wall, client CPU) seconds of ``items`` PUTs, then of as many GETs."""
    put, get, run = ENGINES[engine](url, options)
    first = f"{engine}/{uuid.uuid4().hex[:8]}"
    out = {}
    for name in ("put", "get"):
        walls, cpus = [], []
        for r in range(repeat):
            prefix = f"{first}-{r}" if name == "put" else f"{first}-0"
            op = put if name == "put" else get

            def batch(op: Callable = op, prefix: str = prefix) -> Awaitable[None]:
                return bounded(items, concurrency, lambda i: op(f"{prefix}/{i}"))

            t, c = time.perf_counter(), time.process_time()
            run(batch)
            walls.append(time.perf_counter() - t)
            cpus.append(time.process_time() - c)
        out[name] = (statistics.median(walls), statistics.median(cpus))
    return out


@contextlib.contextmanager
def thread_per_item() -> Any:
    """write_many / read_many as before their loop lanes: every item on a thread."""
    from resultkit.results._asyncbatch import LoopWrites
    from resultkit.results._asyncreads import LoopReads

    saved = [(lane, lane.__dict__["for_batch"]) for lane in (LoopWrites, LoopReads)]
    for lane, _ in saved:
        lane.for_batch = classmethod(lambda cls, *args: None)  # type: ignore[assignment,method-assign]
    try:
        yield
    finally:
        for lane, method in saved:
            lane.for_batch = method  # type: ignore[method-assign]


def many_ab(
    op: str, url: str, options: dict, items: int, concurrency: int, rounds: int
) -> dict[str, list[tuple[float, float]]]:
    """``op`` (write_many or read_many) of ``items`` checkpoints, the thread path and the
    loop path in turns.

    In ONE process, alternating, so that both see the same machine load: the
    (wall, client CPU) seconds of every round of each.
    """
    from resultkit.results import S3Result

    r = S3Result(BUCKET, prefix=uuid.uuid4().hex, endpoint_url=url, storage_options=dict(options))
    with contextlib.suppress(FileExistsError):
        if not r.fs.exists(BUCKET):
            r.fs.mkdir(BUCKET)
    r.write(0, "warm.pkl")
    stored = [
        w.location for w in r.write_many({f"ab-read/{n}.pkl": {"i": n} for n in range(items)})
    ]
    out: dict[str, list[tuple[float, float]]] = {"threads": [], "loop": []}
    for i in range(rounds):
        for path in ("threads", "loop") if i % 2 == 0 else ("loop", "threads"):
            values = {f"ab-{path}-{i}/{n}.pkl": {"i": n} for n in range(items)}
            with thread_per_item() if path == "threads" else contextlib.nullcontext():
                t, c = time.perf_counter(), time.process_time()
                if op == "write_many":
                    r.write_many(values, concurrency=concurrency)
                else:
                    got = r.read_many(stored, concurrency=concurrency)
                out[path].append((time.perf_counter() - t, time.process_time() - c))
            if op == "read_many":
                assert [g.value["i"] for g in got] == list(range(items))
    return out


def main_ab(args: argparse.Namespace) -> None:
    with latent_s3(args.latency_ms, args.server) as s3:
        got = many_ab(
            args.ab, s3.url, s3.storage_options, args.items, args.concurrency, args.repeat
        )
    for path, runs in got.items():
        wall = statistics.median(w for w, _ in runs)
        cpu = statistics.median(c for _, c in runs)
        print(
            f"{args.server:>9} +{args.latency_ms:g} ms {args.ab} {path:>7}: {args.items} items, "
            f"{len(runs)} rounds: median {wall * 1000:6.0f} ms wall, "
            f"{cpu / args.items * 1000:5.2f} ms client CPU an item",
            flush=True,
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--server", choices=["moto", "seaweedfs"], default="moto")
    parser.add_argument("--latency-ms", type=float, default=20.0)
    parser.add_argument("--items", type=int, default=200)
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument(
        "--engines", default=",".join(ENGINES), help=f"comma-separated, of {', '.join(ENGINES)}"
    )
    parser.add_argument(
        "--ab",
        nargs="?",
        const="write_many",
        choices=["write_many", "read_many"],
        help="write_many (or read_many) through S3Result: a thread an item vs the event "
        "loop, in turns",
    )
    args = parser.parse_args()
    if args.ab:
        main_ab(args)
        return
    engines = [e for e in args.engines.split(",") if e]
    unknown = [e for e in engines if e not in ENGINES]
    if unknown:
        parser.error(
            f"--engines: no engine {', '.join(unknown)}; the engines: {', '.join(ENGINES)}"
        )
    with latent_s3(args.latency_ms, args.server) as s3:
        for label, url in (("direct", s3.direct_url), (f"+{args.latency_ms:g} ms", s3.url)):
            for engine in engines:
                got = measure(
                    engine, url, s3.storage_options, args.items, args.concurrency, args.repeat
                )
                # obstore.fsspec: no metadata, resultkit cannot use it as is;
                # s3fs.resultkit: what S3Result does with "s3fs" already.
                if engine not in ("obstore.fsspec", "s3fs.resultkit"):
                    got.update(
                        through_resultkit(
                            engine,
                            url,
                            s3.storage_options,
                            args.items,
                            args.concurrency,
                            args.repeat,
                        )
                    )
                for op, (wall, cpu) in got.items():
                    print(
                        f"{args.server:>9} {label:>8} {engine:>8} {op}: {args.items} x "
                        f"{args.concurrency} at once {wall * 1000:7.0f} ms wall, "
                        f"{cpu / args.items * 1000:5.2f} ms client CPU a request",
                        flush=True,
                    )


if __name__ == "__main__":
    main()
