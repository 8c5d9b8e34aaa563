"""S3Result(engine="obstore"): the whole contract suite, and its errors mapped like s3fs's."""

from __future__ import annotations

import uuid

import pytest

from fault_proxy import FaultProxy
from resultkit.errors import StorageAccessError, StorageError
from resultkit.results import BatchError, S3Result
from resultkit.testing import ResultContract


def obstore_result(url: str, **kwargs) -> S3Result:
    r = S3Result(
        "rk-obstore",
        prefix=uuid.uuid4().hex,
        endpoint_url=url,
        engine="obstore",
        storage_options={"key": "testing", "secret": "testing"},
        **kwargs,
    )
    if not r.fs.exists("rk-obstore"):
        r.fs.mkdir("rk-obstore")
    return r


class TestS3ObstoreContract(ResultContract):
    large_size = 6 * 2**20  # past the single-request limit: the s3fs part of the engine
    race_rounds = 5

    @pytest.fixture
    def result(self, moto_server):
        return obstore_result(moto_server.url)


def test_obstore_engine_errors_are_resultkits(moto_server):
    with FaultProxy(moto_server.port) as proxy:
        r = obstore_result(proxy.url, retries=2)
        r.write(1, "a.pkl")
        proxy.fail(1, status=503, method="GET")  # transient: retried by the RetryPolicy
        assert r.read("a.pkl").value == 1
        assert proxy.count("GET", outcome="status:503") == 1
        proxy.fail(None, status=403)
        with pytest.raises(StorageAccessError, match="a.pkl"):
            r.read("a.pkl")
        proxy.heal()
        proxy.reset(None)
        with pytest.raises(BatchError) as caught:
            r.write_many({"b.pkl": 2, "c.pkl": 3})
        assert [type(e) for _, e in caught.value.failures] == [StorageError, StorageError]
        proxy.heal()
        assert not r.exists("b.pkl")
    missing = S3Result(
        "no-such-bucket-rk",
        endpoint_url=moto_server.url,
        engine="obstore",
        storage_options={"key": "testing", "secret": "testing"},
    )
    with pytest.raises(StorageError, match="does not exist"):
        missing.read("a.pkl")
    with pytest.raises(StorageError, match="does not exist"):
        missing.write(1, "a.pkl")
    with pytest.raises(Exception, match="engine must be"):
        S3Result("b", engine="boto")


FORKED = """
import multiprocessing as mp, os, sys, uuid
from resultkit.errors import ConfigurationError
from resultkit.results import S3Result

def child(r, q):
    try:
        r.write(os.getpid(), "child.pkl")
        q.put(("wrote", r.read("child.pkl").value == os.getpid()))
    except ConfigurationError as exc:
        q.put(("refused", str(exc)))
    except BaseException as exc:
        q.put(("other", repr(exc)))

def in_child(r):
    ctx = mp.get_context("fork")
    q = ctx.Queue()
    p = ctx.Process(target=child, args=(r, q))
    p.start()
    p.join(30)
    if p.exitcode is None:
        p.kill()
        return ("hung", "")
    return q.get(timeout=5)

if __name__ == "__main__":
    r = S3Result("rk-obstore", prefix=uuid.uuid4().hex, endpoint_url=sys.argv[1],
                 engine="obstore", storage_options={"key": "testing", "secret": "testing"})
    print("before:", in_child(r), flush=True)  # no request sent here yet: the child may
    r.write(1, "parent.pkl")
    print("after:", in_child(r), flush=True)
    print("parent:", r.read("parent.pkl").value, flush=True)  # the parent is unharmed
"""


def test_a_process_forked_after_obstore_ran_is_refused_not_hung(moto_server, tmp_path):
    """obstore's runtime does not survive fork: its requests there would wait forever."""
    import subprocess
    import sys

    obstore_result(moto_server.url)  # the bucket
    script = tmp_path / "forked.py"
    script.write_text(FORKED)
    out = subprocess.run(
        [sys.executable, str(script), moto_server.url],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert out.returncode == 0, out.stderr[-2000:]
    lines = dict(line.split(": ", 1) for line in out.stdout.splitlines())
    assert lines["before"] == "('wrote', True)"
    assert lines["after"].startswith("('refused', ") and "spawn" in lines["after"], lines
    assert "engine='s3fs'" in lines["after"]
    assert lines["parent"] == "1"
