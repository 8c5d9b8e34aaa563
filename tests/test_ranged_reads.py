"""Large object-store reads as concurrent ranged GETs into the destination buffer.

Every backend (S3 via s3fs, S3 via obstore, GCS, Azure) runs against its real
emulator behind the counting proxy, with the ranged-read settings lowered so
a 1 MiB payload is "large": 64 KiB parts, 4 in flight, from 256 KiB.
"""

from __future__ import annotations

import contextlib
import threading
import tracemalloc
import uuid

import numpy as np
import pytest

import emulators
from counting_proxy import CountingProxy
from interrupts import interrupted_when, wait_for
from resultkit.errors import ConfigurationError, ResultCorruptError, StorageAccessError
from resultkit.results import AzureResult, GCSResult, S3Result
from resultkit.serializers import NumpySerializer

THRESHOLD = 256 * 2**10
PART = 64 * 2**10
CONCURRENCY = 4
SIZE = 2**20  # past THRESHOLD: 16 parts


def _mkbucket(result) -> None:
    name = result.bucket if hasattr(result, "bucket") else result.container
    if not result.fs.exists(name):
        with contextlib.suppress(FileExistsError):  # created meanwhile
            result.fs.mkdir(name)


def _build(kind: str, port: int, prefix: str, **kwargs):
    url = f"http://127.0.0.1:{port}"
    options = {"skip_instance_cache": True}
    if kind in ("s3", "obstore"):
        if kind == "obstore":
            options.update(key="testing", secret="testing")
        r = S3Result(
            "rk-ranged",
            prefix=prefix,
            endpoint_url=url,
            storage_options=options,
            engine="s3fs" if kind == "s3" else "obstore",
            **kwargs,
        )
    elif kind == "gcs":
        r = GCSResult(
            "rk-ranged",
            prefix=prefix,
            endpoint_url=url,
            token="anon",
            project="test",
            storage_options=options,
            **kwargs,
        )
    else:
        r = AzureResult(
            "rk-ranged",
            prefix=prefix,
            connection_string=emulators.azurite_connection_string(port),
            storage_options=options,
            **kwargs,
        )
    _mkbucket(r)
    storage = r.storage
    storage.ranged_read_from, storage.read_part_size, storage.read_concurrency = (
        THRESHOLD,
        PART,
        CONCURRENCY,
    )
    return r


@pytest.fixture(scope="module", params=["s3", "obstore", "gcs", "azure"])
def _pair(request, moto_server, gcs_server, azurite_server):
    kind = request.param
    server = {"gcs": gcs_server, "azure": azurite_server}.get(kind, moto_server)
    prefix = uuid.uuid4().hex
    with CountingProxy(server.port) as proxy:
        yield kind, _build(kind, proxy.port, prefix), _build(kind, server.port, prefix), proxy


@pytest.fixture
def pair(_pair):
    """(kind, Result through the counting proxy, Result straight to the emulator, proxy)."""
    _pair[3].latency_ms = 0  # the clients are shared by the module's tests; the latency is not
    return _pair


def _array(seed: int) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 2**63, SIZE // 8, dtype=np.int64)


def _gets(proxy: CountingProxy) -> int:
    return proxy.count("GET")


def test_large_read_is_concurrent_ranges_and_equal(pair):
    kind, r, _, proxy = pair
    value = _array(1)
    loc = r.write(value, "big.npy").location
    proxy.latency_ms = 40  # each request held: the proxy sees how many overlap
    proxy.clear()
    back = r.read(loc).value
    assert np.array_equal(back, value)
    # Azure's first GET brings the first THRESHOLD bytes with the metadata; on
    # S3 (s3fs) the first part is read from the first GET's body.
    first = {"azure": THRESHOLD, "s3": PART}.get(kind, 0)
    ranges = -(-(SIZE - first) // PART)
    metadata_gets = 1  # the GET that gives size, version and record
    assert _gets(proxy) >= metadata_gets + ranges
    assert proxy.max_in_flight == CONCURRENCY, "ranges went one at a time"


def test_numpy_serializer_reads_its_array_by_ranges(moto_server):
    with CountingProxy(moto_server.port) as proxy:
        r = _build("s3", proxy.port, uuid.uuid4().hex, serializer=NumpySerializer())
        value = _array(2).reshape(256, -1)
        loc = r.write(value, "a.npy").location
        proxy.clear()
        assert np.array_equal(r.read(loc).value, value)
        assert _gets(proxy) > 1 + SIZE // PART // 2


def test_small_value_stays_one_get(moto_server):
    with CountingProxy(moto_server.port) as proxy:
        r = _build("s3", proxy.port, uuid.uuid4().hex)
        loc = r.write(b"x" * (THRESHOLD - 1000), "small.pkl").location
        proxy.clear()
        assert r.read(loc).value == b"x" * (THRESHOLD - 1000)
        assert proxy.methods() == ["GET"]


def test_flipped_byte_in_one_range_is_corruption_naming_the_location(pair):
    kind, r, direct, _ = pair
    loc = r.write(_array(3), "flip.pkl").location
    storage = direct.storage
    key = r.storage_key(loc)
    raw = bytearray(direct.read_bytes(loc)[0])
    raw[SIZE // 2 + 17] ^= 0x01  # in a middle range
    storage._put_object(storage.path(key), bytes(raw), storage._encode(storage.head(key)))
    with pytest.raises(ResultCorruptError) as caught:
        r.read(loc)
    assert loc in str(caught.value) and caught.value.location == loc


def test_overwrite_racing_the_ranges_reads_the_new_value_whole(pair):
    kind, r, direct, proxy = pair
    old, new = _array(4), _array(5)
    loc = r.write(old, "race.pkl").location
    proxy.latency_ms = 150  # every range is held while the overwrite lands
    proxy.clear()
    errors: list[BaseException] = []

    def overwrite() -> None:
        try:
            wait_for(lambda: _gets(proxy) >= 2, "the first ranged GET")
            direct.write(new, "race.pkl")  # straight to the emulator: not held
        except BaseException as exc:
            errors.append(exc)

    writer = threading.Thread(target=overwrite)
    writer.start()
    back = r.read(loc).value
    writer.join()
    assert errors == []
    assert np.array_equal(back, new), "a read overtaken mid-way reads the new version whole"
    # first GET, the ranges in flight (412: version gone), then one streamed GET
    # of the new version (a second overtaken read could otherwise repeat forever)
    one_read = 1 + -(-SIZE // PART)
    assert 1 + CONCURRENCY <= _gets(proxy) < one_read, "the read did not start over"


def test_many_reads_racing_many_overwrites_see_whole_values(moto_server):
    r = _build("s3", moto_server.port, uuid.uuid4().hex)
    values = [_array(10), _array(11)]
    loc = r.write(values[0], "churn.pkl").location
    stop = threading.Event()
    errors: list[BaseException] = []

    def churn() -> None:
        try:
            i = 0
            while not stop.is_set():
                i += 1
                r.write(values[i % 2], "churn.pkl")
        except BaseException as exc:
            errors.append(exc)

    writer = threading.Thread(target=churn)
    writer.start()
    try:
        for _ in range(6):
            back = r.read(loc).value
            assert any(np.array_equal(back, v) for v in values)
    finally:
        stop.set()
        writer.join()
    assert errors == []


def test_memory_is_the_buffer_plus_the_parts_in_flight(moto_server):
    r = _build("s3", moto_server.port, uuid.uuid4().hex, serializer=NumpySerializer())
    value = np.full(2 * SIZE // 8, 7, dtype=np.int64)
    loc = r.write(value, "mem.npy").location
    r.read(loc)  # connections and client warm

    def peak_of_read() -> int:
        tracemalloc.start()
        try:
            back = r.read(loc).value
            _, peak = tracemalloc.get_traced_memory()
        finally:
            tracemalloc.stop()
        assert np.array_equal(back, value)
        return peak

    ranged = peak_of_read()
    # the array itself (the destination), plus the parts in flight and their copies
    assert ranged < value.nbytes + 2 * CONCURRENCY * PART + 512 * 2**10, ranged
    r.storage.ranged_read_from = 2**40  # the old path: one GET's body, then the array
    sequential = peak_of_read()
    assert sequential > 1.5 * value.nbytes, "the bound above does not tell the two paths apart"


def test_ctrl_c_mid_read_stops_every_range_and_leaves_no_thread(moto_server):
    with CountingProxy(moto_server.port) as proxy:
        r = _build("s3", proxy.port, uuid.uuid4().hex)
        loc = r.write(_array(6), "int.pkl").location
        r.read(loc)
        threads = set(threading.enumerate())
        proxy.latency_ms = 100
        proxy.clear()
        with interrupted_when(lambda: _gets(proxy) >= 3, "ranged GETs") as took:
            r.read(loc)
        assert took.seconds < 2.0, "the read waited for its ranges to finish"
        # the proxy's own handler threads are still holding the cancelled requests
        left = {t for t in set(threading.enumerate()) - threads if "process_request" not in t.name}
        assert left == set()
        proxy.latency_ms = 0
        assert np.array_equal(r.read(loc).value, _array(6))  # the client still works


def test_bad_settings_are_refused_in_one_line(moto_server):
    r = _build("s3", moto_server.port, uuid.uuid4().hex)
    loc = r.write(b"v", "s.pkl").location
    r.storage.read_concurrency = 0
    with pytest.raises(ConfigurationError, match="read_concurrency must be a positive"):
        r.read(loc)


def test_access_denied_mid_read_is_mapped_and_names_the_location(moto_server):
    with CountingProxy(moto_server.port) as proxy:
        r = _build("s3", proxy.port, uuid.uuid4().hex, retries=1)
        loc = r.write(_array(7), "denied.pkl").location
        proxy.latency_ms = 100
        proxy.clear()
        errors: list[BaseException] = []

        def deny_after_first_get() -> None:
            try:
                wait_for(lambda: _gets(proxy) >= 1, "the first GET")
                proxy.fail(None, status=403)  # the ranges are refused
            except BaseException as exc:
                errors.append(exc)

        watcher = threading.Thread(target=deny_after_first_get)
        watcher.start()
        with pytest.raises(StorageAccessError) as caught:
            r.read(loc)
        watcher.join()
        assert errors == []
        assert loc in str(caught.value)
        assert _gets(proxy) >= 2, "the refusal came before any range"


def test_unverified_read_takes_the_ranges_too(moto_server):
    with CountingProxy(moto_server.port) as proxy:
        r = _build("s3", proxy.port, uuid.uuid4().hex, verify=False)
        value = _array(8)
        written = r.write(value, "plain.pkl")
        loc, size = written.location, written.record.size
        proxy.clear()
        assert np.array_equal(r.read(loc).value, value)
        # the opening GET (its body: the first part), then one GET per other part
        assert _gets(proxy) == -(-size // PART)


def test_an_object_whose_size_differs_from_its_record_is_damage_without_the_ranges(pair):
    kind, r, direct, proxy = pair
    loc = r.write(_array(6), "short.pkl").location
    storage, key = direct.storage, r.storage_key(loc)
    raw = direct.read_bytes(loc)[0]
    # The bytes lose their last part; the record (metadata) still names the old size.
    storage._put_object(storage.path(key), raw[: SIZE - PART], storage._encode(storage.head(key)))
    proxy.clear()
    with pytest.raises(ResultCorruptError) as caught:
        r.read(loc)
    assert caught.value.location == loc and "size differs" in str(caught.value)
    # The opening GET only (asked twice more: a length that differs from the
    # record may be a response cut short); none of the 15 ranges.
    assert _gets(proxy) <= 3, "the ranges were fetched for a payload already known damaged"
