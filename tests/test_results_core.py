"""Behaviour of the Result base and the local backends beyond the contract."""

from __future__ import annotations

import os
import pickle
import subprocess
import sys
import textwrap
import tracemalloc

import numpy as np
import pandas as pd
import pytest

from resultkit.errors import (
    ConfigurationError,
    ResultCorruptError,
    ResultError,
    ResultNotFoundError,
    UnsafeLocationError,
)
from resultkit.results import ConstantResult, FSSpecResult, LocalResult, MemoryResult, from_url
from resultkit.serializers import CompressedSerializer, PandasSerializer


def test_local_dir_expands_home_and_is_absolute(tmp_path, monkeypatch):
    monkeypatch.setenv("HOME", str(tmp_path))
    r = LocalResult(dir="~/res")
    assert r.dir == str(tmp_path / "res")
    assert not (tmp_path / "res").exists()  # created lazily
    r.write(1, location="x.pkl")
    assert (tmp_path / "res" / "x.pkl").exists()


def test_local_relative_dir_is_fixed_at_construction(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    r = LocalResult(dir="out")
    os.chdir("/")
    written = r.write(1, location="x.pkl")
    assert written.location == f"file://{tmp_path}/out/x.pkl"


def test_local_default_dir_uses_resultkit_home(tmp_path, monkeypatch):
    monkeypatch.setenv("RESULTKIT_HOME", str(tmp_path / "rk"))
    assert LocalResult().dir == str(tmp_path / "rk" / "results")


def test_local_dir_that_is_a_file_is_refused(tmp_path):
    f = tmp_path / "file"
    f.write_text("x")
    with pytest.raises(ConfigurationError, match="not a folder"):
        LocalResult(dir=f)


def test_parquet_target_opens_with_pandas(tmp_path):
    df = pd.DataFrame({"a": range(5), "b": list("abcde")})
    r = LocalResult(dir=tmp_path, serializer=PandasSerializer("parquet"))
    written = r.write(df, location="frames/df.parquet")
    pd.testing.assert_frame_equal(pd.read_parquet(tmp_path / "frames" / "df.parquet"), df)
    pd.testing.assert_frame_equal(r.read(written.location).value, df)


def test_large_numpy_write_streams(tmp_path):
    """Writing a 100 MB array must not build the whole pickle in memory."""
    arr = np.random.default_rng(0).random(100 * 2**20 // 8)
    r = LocalResult(dir=tmp_path)
    tracemalloc.start()
    try:
        written = r.write(arr, location="big.pkl")
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 10 * 2**20, f"peak extra memory {peak / 2**20:.1f} MiB during write"
    assert written.record.size > arr.nbytes
    assert np.array_equal(r.read(written.location).value, arr)


def test_compressed_large_write_streams(tmp_path):
    arr = np.zeros(50 * 2**20 // 8)
    r = LocalResult(dir=tmp_path, serializer=CompressedSerializer(format="zlib"))
    tracemalloc.start()
    try:
        r.write(arr, location="z.pkl")
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 10 * 2**20
    assert np.array_equal(r.read("z.pkl").value, arr)


def test_verify_false_reads_foreign_files(tmp_path):
    (tmp_path / "foreign.pkl").write_bytes(pickle.dumps({"from": "elsewhere"}))
    with pytest.raises(ResultCorruptError, match="verify=False"):
        LocalResult(dir=tmp_path).read("foreign.pkl")
    assert LocalResult(dir=tmp_path, verify=False).read("foreign.pkl").value == {
        "from": "elsewhere"
    }


def test_record_without_payload_is_not_found(tmp_path):
    r = LocalResult(dir=tmp_path)
    r.write(1, location="gone.pkl")
    (tmp_path / "gone.pkl").unlink()
    with pytest.raises(ResultNotFoundError):
        r.read("gone.pkl")
    assert r.exists("gone.pkl") is False


def test_write_into_read_only_folder_is_clear(tmp_path):
    if os.geteuid() == 0:
        # root ignores permission bits; a file where a folder should be fails the same way
        (tmp_path / "blocker").write_text("x")
        with pytest.raises(ResultError, match="blocker"):
            LocalResult(dir=tmp_path).write(1, location="blocker/x.pkl")
        return
    ro = tmp_path / "ro"
    ro.mkdir()
    ro.chmod(0o500)
    with pytest.raises(ResultError, match="ro"):
        LocalResult(dir=ro).write(1, location="x.pkl")


def test_concurrent_processes_same_key(tmp_path):
    """Two processes hammering one key leave a consistent payload+record pair."""
    script = textwrap.dedent(
        f"""
        import sys
        from resultkit.results import LocalResult
        r = LocalResult(dir={str(tmp_path)!r})
        n = int(sys.argv[1])
        for i in range(60):
            r.write(bytes([n]) * (1000 + 7 * i * n), location="shared.pkl")
        """
    )
    procs = [subprocess.Popen([sys.executable, "-c", script, str(n)]) for n in (1, 2, 3)]
    assert [p.wait(timeout=120) for p in procs] == [0, 0, 0]
    value = LocalResult(dir=tmp_path).read("shared.pkl").value
    assert value[0] in (1, 2, 3) and set(value) == {value[0]}


def test_constant_result():
    c = ConstantResult(42)
    assert c.read().value == 42 and c.exists()
    with pytest.raises(ResultError, match="ConstantResult"):
        c.write(1)


def test_from_url_local_and_memory(tmp_path):
    r = from_url(str(tmp_path / "u"))
    assert r.write(1, location="a.pkl").location == f"file://{tmp_path}/u/a.pkl"
    m = from_url("memory://from-url-test/x")
    assert m.write(2, location="b.pkl").location == "memory:///from-url-test/x/b.pkl"
    assert from_url(f"file://{tmp_path}/u").read("a.pkl").value == 1


def test_from_url_unknown_protocol():
    with pytest.raises(ConfigurationError, match="nosuchproto"):
        from_url("nosuchproto://x")


def test_from_url_keeps_storage_options_out_of_repr():
    r = from_url("memory://repr-test", secret_token="hunter2")
    assert "hunter2" not in repr(r)
    assert "hunter2" not in repr(pickle.loads(pickle.dumps(r)).__class__)


def test_lazy_filesystem_not_pickled():
    r = from_url("memory://lazy")
    _ = r.fs
    state = r.storage.__getstate__()
    assert state["_fs"] is None
    assert pickle.loads(pickle.dumps(r)).storage._fs is None


def test_copies_of_a_template_share_one_lazily_built_client():
    import threading

    template = from_url("memory://shared-client", location="{i}.pkl")
    copies = [template.format(i=i) for i in range(20)]
    assert template.storage._fs is None  # nothing built yet
    clients, errors = [], []

    def use(c):
        try:
            clients.append(c.fs)
        except Exception as exc:  # collected, asserted below
            errors.append(exc)

    threads = [threading.Thread(target=use, args=(c,)) for c in copies]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    assert len({id(c) for c in clients}) == 1
    assert template.fs is clients[0]


def test_fsspec_result_with_instance_rejects_storage_options():
    from fsspec.implementations.memory import MemoryFileSystem

    with pytest.raises(ConfigurationError, match="storage_options"):
        FSSpecResult(MemoryFileSystem(), "/x", storage_options={"a": 1})


def test_memory_results_share_a_root():
    a = MemoryResult(root="/shared-root-test")
    b = MemoryResult(root="/shared-root-test")
    a.write("v", location="k.pkl")
    assert b.read("k.pkl").value == "v"


def test_serializer_argument_must_be_a_serializer(tmp_path):
    with pytest.raises(ConfigurationError, match="Serializer"):
        LocalResult(dir=tmp_path, serializer="json")  # type: ignore[arg-type]


def test_absolute_template_gets_hint(tmp_path):
    with pytest.raises(UnsafeLocationError, match="relative to the result's root"):
        LocalResult(dir=tmp_path).write(1, location="/tmp/elsewhere.pkl")


def test_format_map_allows_location_named_key(tmp_path):
    r = LocalResult(dir=tmp_path, location="{location}/{value}.pkl")
    f = r.format_map({"location": "here", "value": 1})
    assert f.location.endswith("here/1.pkl")
