"""Large local payloads: hashed on a second thread, replaced ones freed on another.

The digest of a large read or write is taken on a thread of its own while
the bytes move (``results/_hashalong.py``); a replaced large payload is
freed after the rename, off the writer's path (``results/_localio.py``).
These tests pin what must not change: the same digests, every damage found,
no thread or descriptor left behind, and a full disk that the deferred free
never turns into a failed write.
"""

from __future__ import annotations

import os
import random
import threading

import numpy as np
import pytest
import xxhash

from resultkit.errors import ResultCorruptError
from resultkit.results import LocalResult, _localio
from resultkit.results._hashalong import HASH_ALONG_FROM, ChunkHasher, hash_while

MB = 2**20


def _hash_threads() -> list[str]:
    return [t.name for t in threading.enumerate() if t.name == "resultkit-hash"]


def _array(nbytes: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 255, nbytes, dtype=np.uint8)


def _deleted_fds_of(path: str) -> list[str]:
    """This process's descriptors on a removed file that was at ``path``."""
    out = []
    for fd in os.listdir("/proc/self/fd"):
        try:
            target = os.readlink(f"/proc/self/fd/{fd}")
        except OSError:
            continue
        if target == f"{path} (deleted)":
            out.append(target)
    return out


def _files(folder: object) -> list[str]:
    """The folder's files but its spares (kept on purpose for the next small write)."""
    return sorted(n for n in os.listdir(str(folder)) if not n.startswith(".rkspare"))


def test_chunk_hasher_gives_the_in_line_digest_for_any_split():
    data = os.urandom(3 * MB + 17)
    rng = random.Random(1)
    for _ in range(20):
        cuts = sorted(rng.sample(range(1, len(data)), rng.randint(1, 30)))
        with ChunkHasher(xxhash.xxh3_128()) as along:
            for start, end in zip([0, *cuts], [*cuts, len(data)], strict=True):
                along.add(memoryview(data)[start:end])
            assert along.hexdigest() == xxhash.xxh3_128(data).hexdigest()
    assert _hash_threads() == []


class _Broken:
    def update(self, data: object) -> None:
        raise ValueError("hasher broke")

    def hexdigest(self) -> str:  # pragma: no cover - never reached
        return ""


def test_a_hashing_error_is_raised_on_the_callers_thread():
    along = ChunkHasher(_Broken())
    along.add(memoryview(b"x" * 10))
    with pytest.raises(ValueError, match="hasher broke"):
        along.close()
    big = memoryview(bytes(HASH_ALONG_FROM))
    with pytest.raises(ValueError, match="hasher broke"):
        hash_while(_Broken(), big, lambda: None)
    assert _hash_threads() == []


def test_hash_while_returns_the_work_and_raises_its_error_after_the_hash_is_done():
    big = memoryview(os.urandom(HASH_ALONG_FROM + 5))
    h = xxhash.xxh3_128()
    assert hash_while(h, big, lambda: 42) == 42
    assert h.hexdigest() == xxhash.xxh3_128(big).hexdigest()

    def fail() -> None:
        raise OSError("disk gone")

    with pytest.raises(OSError, match="disk gone"):
        hash_while(xxhash.xxh3_128(), big, fail)
    assert _hash_threads() == []


@pytest.mark.parametrize("where", ["first", "middle", "last"])
def test_a_flipped_byte_in_a_large_payload_is_found(tmp_path, where):
    r = LocalResult(dir=tmp_path)
    value = _array(6 * MB)
    r.write(value, location="big.pkl")
    path = tmp_path / "big.pkl"
    size = path.stat().st_size
    offset = {"first": 0, "middle": size // 2, "last": size - 1}[where]
    with open(path, "r+b") as f:
        f.seek(offset)
        byte = f.read(1)
        f.seek(offset)
        f.write(bytes([byte[0] ^ 0x01]))
    with pytest.raises(ResultCorruptError, match="big.pkl"):
        r.read("big.pkl")
    assert _hash_threads() == []


def test_a_large_payload_reads_back_exactly_and_a_short_or_long_one_is_damage(tmp_path):
    r = LocalResult(dir=tmp_path)
    value = _array(9 * MB, seed=3)
    r.write(value, location="big.pkl")
    assert np.array_equal(r.read("big.pkl").value, value)
    path = tmp_path / "big.pkl"
    data = path.read_bytes()
    for damaged in (data[:-1], data + b"\0"):
        path.write_bytes(damaged)
        with pytest.raises(ResultCorruptError, match="big.pkl"):
            r.read("big.pkl")
    assert _hash_threads() == []


def test_a_replaced_large_payload_is_freed_and_no_descriptor_is_left(tmp_path):
    r = LocalResult(dir=tmp_path)
    path = str(tmp_path / "big.pkl")
    for seed in range(3):
        r.write(_array(10 * MB, seed), location="big.pkl")
        assert np.array_equal(r.read("big.pkl").value, _array(10 * MB, seed))
    _localio.wait_for_releases()
    assert _deleted_fds_of(path) == []
    assert _files(tmp_path) == ["big.pkl", "big.pkl.rkmeta"]


@pytest.fixture
def small_disk(tmpfs):
    return tmpfs("24m")


def test_a_full_disk_waits_for_replaced_payloads_still_being_freed(small_disk, monkeypatch):
    # The closing thread never runs (as if not yet scheduled): the replaced
    # payload still holds its 10 MB when the next write needs them.
    monkeypatch.setattr(_localio, "_start_closer", lambda: None)
    r = LocalResult(dir=small_disk)
    for seed in range(4):  # 24 MB: the live value, the new one, and one held would not fit
        r.write(_array(10 * MB, seed), location="v.pkl")
        assert np.array_equal(r.read("v.pkl").value, _array(10 * MB, seed))
    assert _files(small_disk) == ["v.pkl", "v.pkl.rkmeta"]


def test_reading_a_file_in_place_by_two_threads_gives_the_in_line_digest(tmp_path):
    from resultkit.results._hashalong import read_file_along

    data = os.urandom(5 * MB + 123)
    path = tmp_path / "f"
    path.write_bytes(b"head" + data)
    fd = os.open(path, os.O_RDONLY)
    try:
        for room in (len(data), len(data) + 3 * MB):  # exact, and a file shorter than the room
            buf = bytearray(room)
            h = xxhash.xxh3_128()
            assert read_file_along(fd, 4, memoryview(buf), h) == len(data)
            assert h.hexdigest() == xxhash.xxh3_128(data).hexdigest()
            assert bytes(buf[: len(data)]) == data
    finally:
        os.close(fd)
    assert [t for t in threading.enumerate() if t.name == "resultkit-read"] == []


def test_a_small_write_after_a_large_one_reserves_little_ahead(tmp_path):
    # An out-of-band pickle ends with a few bytes of table after its arrays:
    # reserving (then giving back) 64 MB for them cost ~3 ms a 100 MB write.
    f = _localio.PreallocatedFile(str(tmp_path / "f"))
    try:
        f.write(bytes(100))
        f.write(bytes(20 * MB))
        assert f._allocated == f.pos  # a large write is reserved exactly
        f.write(bytes(40))
        assert f._allocated - f.pos < 256 * 1024
        for _ in range(2000):  # many small writes still reserve ahead in growing steps
            f.write(bytes(512))
        assert f._allocated >= f.pos
    finally:
        f.close()
    assert os.path.getsize(tmp_path / "f") == 100 + 20 * MB + 40 + 2000 * 512


def test_a_large_npy_reads_back_writable_and_equal_and_damage_is_found(tmp_path):
    from resultkit.serializers import NumpySerializer

    r = LocalResult(dir=tmp_path, serializer=NumpySerializer())
    value = np.random.default_rng(7).random((1024, 1024))  # 8 MB: its own fresh pages
    r.write(value, location="a.npy")
    back = r.read("a.npy").value
    assert np.array_equal(back, value) and back.dtype == value.dtype
    back[0, 0] = -1.0  # writable, like an array numpy made
    assert np.array_equal(np.load(tmp_path / "a.npy"), value)  # other tools open the file
    with open(tmp_path / "a.npy", "r+b") as f:
        f.seek(5 * MB)
        byte = f.read(1)
        f.seek(5 * MB)
        f.write(bytes([byte[0] ^ 0x10]))
    with pytest.raises(ResultCorruptError, match="a.npy"):
        r.read("a.npy")


def test_an_unverified_read_of_a_large_pickle_gives_writable_equal_arrays(tmp_path):
    value = {"a": _array(6 * MB, seed=8), "b": np.arange(MB, dtype=np.int64)}
    LocalResult(dir=tmp_path).write(value, location="v.pkl")
    back = LocalResult(dir=tmp_path, verify=False).read("v.pkl").value
    assert np.array_equal(back["a"], value["a"]) and np.array_equal(back["b"], value["b"])
    back["a"][0] = 1  # read into the serializer's own buffer: writable, no read-only bytes
    assert back["a"].flags.writeable and back["b"].flags.writeable
