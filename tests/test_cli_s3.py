"""The ``resultkit`` command on S3 (moto), through ``python -m resultkit``."""

from __future__ import annotations

import contextlib
import json
import subprocess
import sys
import time
import uuid

import cloudpickle
import pytest

from resultkit.caching.locks import SingleFlightLock
from resultkit.cli import main
from resultkit.results import S3Result


def rk(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "resultkit", *args],
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
    )


@pytest.fixture
def s3(moto_server):
    """A fresh prefix of a bucket on moto, its URL, and the flag naming the server."""
    r = S3Result("rk-cli", prefix=uuid.uuid4().hex, endpoint_url=moto_server.url)
    with contextlib.suppress(FileExistsError):
        r.fs.mkdir("rk-cli")
    return r, f"s3://{r.storage.root}", ["--endpoint-url", moto_server.url]


def _raw_put(r: S3Result, key: str, data: bytes, metadata: dict[str, str] | None = None) -> None:
    """Put an object as another tool would (or with a record's metadata but other bytes)."""
    bucket, _, path = r.storage.path(key).partition("/")
    r.fs.call_s3("put_object", Bucket=bucket, Key=path, Body=data, Metadata=metadata or {})


def _metadata(r: S3Result, key: str) -> dict[str, str]:
    bucket, _, path = r.storage.path(key).partition("/")
    return dict(r.fs.call_s3("head_object", Bucket=bucket, Key=path)["Metadata"])


def test_ls_inspect_cat_verify_on_s3(s3, capsys):
    r, url, endpoint = s3
    r.write({"rows": 3}, location="a/extract.pkl")
    r.write(list(range(100)), location="b.pkl")
    good = r.write("fine", location="c.pkl")
    _raw_put(r, "c.pkl", b"\x80\x05flipped", _metadata(r, "c.pkl"))  # same record, other bytes
    assert good.record is not None

    listing = json.loads(rk("ls", "-r", url, *endpoint, "--json").stdout)
    assert {e["key"] for e in listing["entries"]} == {"a/extract.pkl", "b.pkl", "c.pkl"}
    assert all(e["serializer"] == "pickle" for e in listing["entries"])

    shown = rk("inspect", f"{url}/a/extract.pkl", "--value", *endpoint)
    assert shown.returncode == 0, shown.stderr
    assert "pickle" in shown.stdout and "{'rows': 3}" in shown.stdout
    assert main(["cat", f"{url}/b.pkl", *endpoint, "--json"]) == 0  # (in-process)
    assert json.loads(capsys.readouterr().out) == list(range(100))

    verify = rk("verify", "-r", url, *endpoint)
    assert verify.returncode == 1, verify.stdout + verify.stderr
    problems = [line for line in verify.stdout.splitlines() if line.startswith("problem")]
    assert len(problems) == 1 and f"{url}/c.pkl" in problems[0]


def test_adopt_gc_and_rm_on_s3(s3, capsys):
    r, url, endpoint = s3
    _raw_put(r, "prefect/extract.txt", cloudpickle.dumps([1, 2, 3]))  # a Prefect 1 target
    _raw_put(r, "prefect/junk.txt", b"not a pickle")
    r.write("busy", location="busy.pkl")
    r.write("old", location="old.pkl")
    adopted = json.loads(rk("adopt", "-r", url, *endpoint, "--json").stdout)
    assert adopted["adopted"] == [f"{url}/prefect/extract.txt"]
    assert [p["location"] for p in adopted["refused"]] == [f"{url}/prefect/junk.txt"]
    assert r.read("prefect/extract.txt").value == [1, 2, 3]

    stale = {"owner": "gone:1:x", "expires": time.time() - 60, "lease": 30.0}
    r.storage.put_if_absent(".rklocks/old.pkl/0000000001", json.dumps(stale).encode(), {})
    lock = SingleFlightLock(r, "busy.pkl", lease=120)
    assert lock.acquire()
    try:
        assert main(["gc", url, "--older-than", "0s", *endpoint, "--dry-run", "--json"]) == 0
        dry = json.loads(capsys.readouterr().out)  # (in-process; the real run below is not)
        removed = {(e["kind"], e["location"]) for e in dry["removed"]}
        assert ("stale lock", f"{url}/old.pkl") in removed
        assert ("old result", f"{url}/old.pkl") in removed
        assert [k["location"] for k in dry["kept"]] == [f"{url}/busy.pkl"]
        assert r.exists("old.pkl") and r.storage.list(".rklocks/old.pkl/")  # dry run
        done = rk("gc", url, "--older-than", "0s", "--orphans", *endpoint)
        assert done.returncode == 0, done.stdout + done.stderr
        assert r.read("busy.pkl").value == "busy" and lock.holder() is not None
        assert not r.exists("old.pkl")
        # A payload without a record is an orphan once an hour old (it may be a write
        # in progress, or another tool's file): this one was just written, so it stays.
        assert r.exists("prefect/junk.txt")
        assert not list(r.storage.list(".rklocks/old.pkl/"))
    finally:
        lock.release()
    gone = rk("rm", f"{url}/busy.pkl", *endpoint)
    assert gone.returncode == 0 and not r.exists("busy.pkl")
