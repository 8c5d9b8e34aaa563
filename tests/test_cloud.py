"""S3, GCS and Azure backends against real emulators over HTTP (no mocks)."""

from __future__ import annotations

import contextlib
import pickle
import subprocess
import sys
import threading
import time
import tracemalloc
import uuid

import cloudpickle
import pytest

import emulators
from conftest import SEAWEED_KEY, SEAWEED_SECRET
from counting_proxy import CountingProxy
from resultkit.errors import ResultError, StorageAccessError, StorageError
from resultkit.results import AzureResult, GCSResult, S3Result, from_url
from resultkit.serializers import PickleSerializer
from resultkit.testing import ResultContract


def _mkbucket(result) -> None:
    name = result.bucket if hasattr(result, "bucket") else result.container
    if not result.fs.exists(name):
        with contextlib.suppress(FileExistsError):  # created meanwhile
            result.fs.mkdir(name)


# == builders ===================================================================
def s3_result(server, bucket="rk-test", **kwargs) -> S3Result:
    r = S3Result(bucket, prefix=uuid.uuid4().hex, endpoint_url=server.url, **kwargs)
    _mkbucket(r)
    return r


def gcs_result(server, bucket="rk-test", **kwargs) -> GCSResult:
    r = GCSResult(
        bucket,
        prefix=uuid.uuid4().hex,
        endpoint_url=server.url,
        token="anon",
        project="test",
        **kwargs,
    )
    _mkbucket(r)
    return r


def azure_result(server, container="rk-test", port=None, **kwargs) -> AzureResult:
    r = AzureResult(
        container,
        prefix=uuid.uuid4().hex,
        connection_string=emulators.azurite_connection_string(port or server.port),
        **kwargs,
    )
    _mkbucket(r)
    return r


def seaweed_result(server, secret=SEAWEED_SECRET, prefix=None, **options) -> S3Result:
    opts = {"key": SEAWEED_KEY, "secret": secret, "skip_instance_cache": True, **options}
    return S3Result(
        "rk-test",
        prefix=prefix or uuid.uuid4().hex,
        endpoint_url=server.url,
        storage_options=opts,
    )


# == the contract, unchanged, on every backend ===============================================
class TestS3Contract(ResultContract):
    @pytest.fixture
    def result(self, moto_server):
        return s3_result(moto_server)


class TestGCSContract(ResultContract):
    @pytest.fixture
    def result(self, gcs_server):
        return gcs_result(gcs_server)


class TestAzureContract(ResultContract):
    @pytest.fixture
    def result(self, azurite_server):
        return azure_result(azurite_server)


class TestSeaweedFSContract(ResultContract):
    """A second S3 server, one that checks SigV4 signatures."""

    race_rounds = 5  # its conditional creates are slow (about 0.3 s a round of 12)

    @pytest.fixture
    def result(self, seaweed_server):
        r = seaweed_result(seaweed_server)
        _mkbucket(r)
        return r


# == request counts, through a counting HTTP proxy ============================================
@pytest.fixture(params=["s3", "gcs", "azure"])
def proxied(request, moto_server, gcs_server, azurite_server):
    server = {"s3": moto_server, "gcs": gcs_server, "azure": azurite_server}[request.param]
    with CountingProxy(server.port) as proxy:
        if request.param == "s3":
            r = S3Result(
                "rk-count",
                prefix=uuid.uuid4().hex,
                endpoint_url=proxy.url,
                storage_options={"skip_instance_cache": True},
            )
        elif request.param == "gcs":
            r = GCSResult(
                "rk-count",
                prefix=uuid.uuid4().hex,
                endpoint_url=proxy.url,
                token="anon",
                project="test",
                storage_options={"skip_instance_cache": True},
            )
        else:
            r = AzureResult(
                "rk-count",
                prefix=uuid.uuid4().hex,
                connection_string=emulators.azurite_connection_string(proxy.port),
                storage_options={"skip_instance_cache": True},
            )
        _mkbucket(r)
        proxy.clear()
        yield request.param, r, proxy


def test_exists_is_one_metadata_request(proxied):
    kind, r, proxy = proxied
    # A fresh Result's first miss also checks, once, that its bucket exists (a
    # missing bucket is an error, not an empty cache); a hit proves it does.
    assert r.exists("absent-first.pkl") is False
    assert len(proxy.requests) == 2
    r.write(b"x" * 1_000_000, location="present.pkl")
    proxy.clear()
    assert r.exists("present.pkl") is True
    assert len(proxy.requests) == 1
    method = proxy.methods()[0]
    # S3 and Azure: HEAD. GCS has no HEAD: one GET of the object's metadata (no payload).
    assert method == ("GET" if kind == "gcs" else "HEAD")
    if kind == "gcs":
        assert "alt=media" not in proxy.requests[0][1]
    proxy.clear()
    assert r.exists("absent.pkl") is False
    assert len(proxy.requests) == 1


def test_read_is_one_consistent_get(proxied):
    kind, r, proxy = proxied
    written = r.write({"v": 1}, location="r.pkl")
    proxy.clear()
    assert r.read(written.location).value == {"v": 1}
    # The record is the object's own metadata: no sidecar request.
    assert not any(".rkmeta" in path for _, path in proxy.requests), proxy.requests
    if kind == "gcs":
        # The object's metadata, then the media of exactly that generation.
        (m1, meta), (m2, media) = proxy.requests
        assert (m1, m2) == ("GET", "GET") and "alt=media" not in meta
        assert "alt=media" in media and "generation=" in media
    else:  # S3 and Azure: one GET returns the body and its metadata together
        assert proxy.methods() == ["GET"], proxy.requests


def test_stat_is_one_metadata_request(proxied):
    kind, r, proxy = proxied
    written = r.write("s", location="s.pkl")
    proxy.clear()
    assert r.stat(written.location) == written.record
    assert proxy.methods() == ["GET" if kind == "gcs" else "HEAD"], proxy.requests


def test_small_write_is_one_request(proxied):
    kind, r, proxy = proxied
    r.write("small", location="w.pkl")
    # One PUT (GCS: one multipart POST) carrying payload and record together.
    assert proxy.methods() == ["POST" if kind == "gcs" else "PUT"], proxy.requests
    assert not any(".rkmeta" in path for _, path in proxy.requests), proxy.requests


def test_large_write_publishes_once_and_leaves_no_temp(proxied):
    kind, r, proxy = proxied
    r.storage.single_request_limit = 64 * 2**10  # an instance attribute: this test only
    if kind == "azure":
        r.storage.block_size = 64 * 2**10
    value = bytes(range(256)) * 1200  # ~300 KB: past the limit
    written = r.write(value, location="big/w.bin")
    requests = list(proxy.requests)
    temps = [path for _, path in requests if ".rktmp-" in path]
    if kind == "azure":
        # Blocks staged on the blob itself, then one Put Block List with the metadata.
        assert not temps, requests
        assert sum("comp=block&" in p or p.endswith("comp=block") for _, p in requests) >= 2
        assert [p for _, p in requests if "comp=blocklist" in p], requests
    else:
        # Streamed to a temporary object, copied onto the key with the metadata, deleted.
        assert temps, requests
        assert "DELETE" in [m for m, p in requests if ".rktmp-" in p], requests
    assert r.storage.list("big") == ["big/w.bin"]
    names = [p.rsplit("/", 1)[-1] for p in r.fs.find(r.storage.root)]
    assert names == ["w.bin"], names
    proxy.clear()
    assert r.read(written.location).value == value
    assert len(proxy.requests) == (2 if kind == "gcs" else 1), proxy.requests


# == errors: not found vs denied vs down ================================================================
def test_wrong_secret_is_a_clear_auth_error(seaweed_server):
    good = seaweed_result(seaweed_server)
    _mkbucket(good)
    written = good.write("secret data", location="auth.pkl")
    bad = seaweed_result(
        seaweed_server, secret="not-the-secret", prefix=good.storage.root.split("/", 1)[1]
    )
    bad.location = written.location
    for call in (
        lambda: bad.exists(written.location),
        lambda: bad.read(written.location),
        lambda: bad.write(1, location="auth2.pkl"),
    ):
        with pytest.raises(StorageAccessError) as info:
            call()
        message = str(info.value)
        assert "auth" in message and "denied" in message
        assert "not-the-secret" not in message and SEAWEED_SECRET not in message
    assert good.read(written.location).value == "secret data"
    assert not good.exists("auth2.pkl")


def test_server_down_is_an_error_not_a_miss():
    port = emulators.free_port()  # nothing listens there
    r = S3Result(
        "b",
        endpoint_url=f"http://127.0.0.1:{port}",
        storage_options={
            "skip_instance_cache": True,
            "config_kwargs": {"retries": {"max_attempts": 1}, "connect_timeout": 2},
        },
    )
    with pytest.raises(StorageError) as info:
        r.exists("x.pkl")
    assert not isinstance(info.value, StorageAccessError)
    assert "s3://b/x.pkl" in str(info.value)
    assert "connect" in str(info.value).lower()


def test_missing_bucket_write_is_clear(moto_server):
    r = S3Result(f"no-such-bucket-{uuid.uuid4().hex[:8]}", endpoint_url=moto_server.url)
    with pytest.raises(StorageError, match="does not exist"):
        r.write(1, location="x.pkl")


# == secrets, pickling, laziness ===================================================================
def test_secrets_never_in_repr():
    r = S3Result("b", storage_options={"key": "AKIAEXAMPLE", "secret": "hunter2"})
    a = AzureResult("c", connection_string="AccountName=x;AccountKey=topsecretkey==")
    g = GCSResult("b", token={"private_key": "pk-secret"})
    for res in (r, a, g):
        assert "hunter2" not in repr(res) and "topsecretkey" not in repr(res)
        assert "pk-secret" not in repr(res) and "AKIAEXAMPLE" not in repr(res)


def test_secrets_never_in_error_messages(azurite_server):
    # Azurite checks SharedKey signatures: a wrong account key is refused (403).
    key = "c2VjcmV0LWFjY291bnQta2V5LXdyb25nLXdyb25nLXdyb25nLXdyb25nLXdyb25nLXdyb25nLXdyb25nLQ=="
    r = AzureResult(
        "rk-test",
        connection_string=(
            f"DefaultEndpointsProtocol=http;AccountName=devstoreaccount1;AccountKey={key};"
            f"BlobEndpoint=http://127.0.0.1:{azurite_server.port}/devstoreaccount1;"
        ),
        storage_options={"skip_instance_cache": True},
    )
    with pytest.raises(StorageAccessError) as info:
        r.exists("x.pkl")
    assert key not in str(info.value) and "az://rk-test/x.pkl" in str(info.value)
    port = emulators.free_port()  # nothing listens: the client fails to connect
    s3 = S3Result(
        "b",
        endpoint_url=f"http://127.0.0.1:{port}",
        storage_options={
            "key": "AKIDEXAMPLE",
            "secret": "s3-secret-value",
            "skip_instance_cache": True,
            "config_kwargs": {"retries": {"max_attempts": 1}, "connect_timeout": 1},
        },
    )
    with pytest.raises(StorageError) as info:
        s3.read("x.pkl")
    assert "s3-secret-value" not in str(info.value) and "AKIDEXAMPLE" not in str(info.value)


def test_client_not_pickled_and_works_in_another_process(any_cloud):
    r = any_cloud.copy()
    r.location = "{k}.pkl"
    r.write("from parent", k="p")
    assert r.storage._fs is not None  # the client exists here...
    blob = cloudpickle.dumps(r)
    assert pickle.loads(blob).storage._fs is None  # ...but is not shipped
    code = (
        "import sys, pickle; r = pickle.loads(sys.stdin.buffer.read()); "
        "print(r.read(k='p').value); r.write('from child', k='c')"
    )
    out = subprocess.run([sys.executable, "-c", code], input=blob, capture_output=True, timeout=120)
    assert out.returncode == 0, out.stderr.decode()[-2000:]
    assert out.stdout.decode().strip() == "from parent"
    assert r.read(k="c").value == "from child"


def test_from_url_s3(moto_server):
    base = s3_result(moto_server)
    r = from_url(base.root_url, endpoint_url=moto_server.url)
    r.write([1], location="u.pkl")
    assert base.read("u.pkl").value == [1]


# == large objects ========================================================================
def test_large_write_streams_multipart_with_bounded_memory(moto_server):
    with CountingProxy(moto_server.port) as proxy:
        r = S3Result(
            "rk-large",
            endpoint_url=proxy.url,
            prefix=uuid.uuid4().hex,
            storage_options={"skip_instance_cache": True, "default_block_size": 8 * 2**20},
        )
        _mkbucket(r)
        proxy.clear()
        value = bytes(128 * 2**20)
        tracemalloc.start()
        try:
            written = r.write(value, location="large.bin")
            _, peak = tracemalloc.get_traced_memory()
        finally:
            tracemalloc.stop()
        parts = [p for m, p in proxy.requests if m == "PUT" and "partNumber" in p]
        assert len(parts) >= 2
        assert any(m == "POST" and "uploads" in p for m, p in proxy.requests)
        # Bounded by a few parts in flight, not by the value's size.
        assert peak < len(value) / 2, f"peak {peak / 2**20:.0f} MiB"
        # The parts went to a temporary object, copied onto the key with the record.
        assert all(".rktmp-" in p for p in parts)
        copies = [p for m, p in proxy.requests if m == "PUT" and p.endswith("/large.bin")]
        assert len(copies) == 1, proxy.requests
        proxy.clear()
        assert r.read(written.location).value == value
        # Past ranged_read_from: the record with the first GET, the payload by
        # concurrent ranged GETs of that version (tests/test_ranged_reads.py).
        assert set(proxy.methods()) == {"GET"}


# == crash mid-write ===================================================================
class SlowBytesSerializer(PickleSerializer):
    """Streams 5 MiB chunks with a pause between them, so a write lasts seconds."""

    name = "pickle"  # same bytes as pickle: the old value stays readable

    def dump(self, value, stream):
        data = pickle.dumps(value, protocol=5)
        for start in range(0, len(data), 5 * 2**20):
            stream.write(data[start : start + 5 * 2**20])
            time.sleep(0.1)


def test_server_killed_mid_write_leaves_no_partial_object(tmp_path):
    server = emulators.seaweedfs(tmp_path, SEAWEED_KEY, SEAWEED_SECRET).start()
    try:
        r = seaweed_result(
            server,
            default_block_size=5 * 2**20,
            config_kwargs={
                "retries": {"max_attempts": 1},
                "connect_timeout": 2,
                "read_timeout": 10,
            },
        )
        _mkbucket(r)
        r.write("old", location="victim.pkl")
        slow = r.copy()
        slow.serializer = SlowBytesSerializer()
        errors: list[BaseException] = []

        def writer():
            try:
                slow.write(bytes(100 * 2**20), location="victim.pkl")  # >= 2 s of streaming
            except BaseException as exc:
                errors.append(exc)

        t = threading.Thread(target=writer)
        t.start()
        time.sleep(0.8)  # some parts are uploaded, the upload is not complete
        assert t.is_alive()
        server.kill()
        t.join(timeout=300)
        assert not t.is_alive()
        assert len(errors) == 1 and isinstance(errors[0], ResultError), errors
        assert "victim.pkl" in str(errors[0])
        server.start()
        fresh = seaweed_result(server, prefix=r.storage.root.split("/", 1)[1])
        assert fresh.read("victim.pkl").value == "old"  # old value intact, no partial object
        names = [p.rsplit("/", 1)[-1] for p in fresh.fs.find(fresh.storage.root)]
        assert sorted(names) == ["victim.pkl"]  # the record is the object's metadata
    finally:
        server.stop()


# == conditional create (for single-flight locks) ================================================
@pytest.fixture(params=["s3", "seaweedfs", "gcs", "azure"])
def any_cloud(request, moto_server, seaweed_server, gcs_server, azurite_server):
    if request.param == "s3":
        return s3_result(moto_server)
    if request.param == "seaweedfs":
        r = seaweed_result(seaweed_server)
        _mkbucket(r)
        return r
    if request.param == "gcs":
        return gcs_result(gcs_server)
    return azure_result(azurite_server)


def test_put_if_absent_exactly_one_winner(any_cloud):
    wins: list[bool] = []
    barrier = threading.Barrier(6)

    def contender(i):
        barrier.wait()
        wins.append(any_cloud.put_if_absent(f"owner-{i}".encode(), "locks/one.lock"))

    threads = [threading.Thread(target=contender, args=(i,)) for i in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(wins) == [False] * 5 + [True]
    assert any_cloud.put_if_absent(b"again", "locks/one.lock") is False
    assert any_cloud.delete("locks/one.lock") is True
    assert any_cloud.put_if_absent(b"after delete", "locks/one.lock") is True


def test_put_if_absent_local_and_memory(tmp_path):
    from resultkit.results import LocalResult, MemoryResult

    for r in (LocalResult(dir=tmp_path), MemoryResult(root=f"/pia-{uuid.uuid4().hex}")):
        assert r.put_if_absent(b"1", "l.lock") is True
        assert r.put_if_absent(b"2", "l.lock") is False


def test_bulk_exists_is_one_listing(proxied):
    kind, r, proxy = proxied
    for i in range(30):
        r.write(i, location=f"mapped/{i}.pkl")
    proxy.clear()
    locations = [f"mapped/{i}.pkl" for i in range(40)]
    found = r.exists_many(locations)
    assert found == [True] * 30 + [False] * 10
    # One listing of the folder (adlfs lists twice: the prefix, then the folder),
    # whatever the number of locations; no per-object HEAD.
    assert len(proxy.requests) <= 2, proxy.requests
    assert all(m == "GET" for m in proxy.methods())


def test_denied_target_fails_the_task_instead_of_recomputing(seaweed_server):
    from resultkit import Flow, task

    runs = []
    bad = seaweed_result(seaweed_server, secret="not-the-secret")

    @task(target="denied/{task_name}.pkl", result=bad)
    def guarded():
        runs.append(1)
        return 1

    with Flow("denied") as flow:
        ref = guarded()
    state = flow.run()
    assert state.result[ref].is_failed() and runs == []
    assert isinstance(state.result[ref].exception, StorageAccessError)
    assert "denied/guarded.pkl" in state.result[ref].message
