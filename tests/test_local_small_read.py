"""The small verified read of a local pair: two reads when all is well, the general path
(which says what is wrong) for anything else, and never a false "corrupt" in a race.

Real files on the real disk; the general path's calls are counted by wrapping the
real function (nothing is replaced).
"""

from __future__ import annotations

import os
import pickle
import subprocess
import sys
import threading
from collections.abc import Callable
from pathlib import Path

import pytest

from resultkit.errors import (
    ResultCorruptError,
    ResultNotFoundError,
    SerializerMismatchError,
    UnsafeLocationError,
)
from resultkit.results import LocalResult, _storage_result
from resultkit.results._location import FormattedLocation
from resultkit.results._record import Record, with_previous
from resultkit.serializers import JSONSerializer

VALUE = {"rows": list(range(100)), "name": "small"}
KEY = "k" * 32


@pytest.fixture
def general_reads(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The keys read through the general path (the real one, counted)."""
    calls: list[str] = []
    real = _storage_result.load_pair

    def counted(result, location, key, raw=False):  # type: ignore[no-untyped-def]
        calls.append(key)
        return real(result, location, key, raw)

    monkeypatch.setattr(_storage_result, "load_pair", counted)
    return calls


def _written(root: Path, value: object = VALUE, **options: object) -> LocalResult:
    r = LocalResult(dir=root, **options)  # type: ignore[arg-type]
    r.write(value, location="k.pkl")
    return r


def test_a_settled_small_pair_takes_two_reads_and_no_general_path(tmp_path, general_reads):
    r = _written(tmp_path)
    read = r.read("k.pkl")
    assert read.value == VALUE and read.record is not None
    assert r.read(read.location).value == VALUE  # the canonical URL too
    data, record = r.read_bytes("k.pkl")
    assert data == (tmp_path / "k.pkl").read_bytes()
    assert (record.size, record.digest) == (len(data), Record.digest_of(data))
    signed = _written(tmp_path / "signed", signing_key=KEY)
    assert signed.read("k.pkl").value == VALUE
    assert general_reads == []


def _flip_a_byte(root: Path) -> None:
    data = bytearray((root / "k.pkl").read_bytes())
    data[len(data) // 2] ^= 1
    (root / "k.pkl").write_bytes(bytes(data))


def _replace_payload(make: Callable[[Path], None]) -> Callable[[Path], None]:
    def damage(root: Path) -> None:
        kept = (root / "k.pkl").read_bytes()
        (root / "k.pkl").unlink()
        (root / "kept.bin").write_bytes(kept)
        make(root)

    return damage


DAMAGE: dict[str, tuple[Callable[[Path], None], type[Exception], str]] = {
    "a byte flipped": (_flip_a_byte, ResultCorruptError, "does not match"),
    "a byte more": (
        lambda root: (root / "k.pkl").write_bytes((root / "k.pkl").read_bytes() + b"x"),
        ResultCorruptError,
        "does not match",
    ),
    "a byte less": (
        lambda root: (root / "k.pkl").write_bytes((root / "k.pkl").read_bytes()[:-1]),
        ResultCorruptError,
        "does not match",
    ),
    "no record": (
        lambda root: (root / "k.pkl.rkmeta").unlink(),
        ResultCorruptError,
        "no integrity record",
    ),
    "a record that is not JSON": (
        lambda root: (root / "k.pkl.rkmeta").write_bytes(b"{not json"),
        ResultCorruptError,
        "unreadable",
    ),
    "a FIFO for the payload": (
        _replace_payload(lambda root: os.mkfifo(root / "k.pkl")),
        UnsafeLocationError,
        "not a regular file",
    ),
    "a folder for the payload": (
        _replace_payload(lambda root: (root / "k.pkl").mkdir()),
        UnsafeLocationError,
        "not a regular file",
    ),
    "a symlink for the payload": (
        _replace_payload(lambda root: (root / "k.pkl").symlink_to(root / "kept.bin")),
        UnsafeLocationError,
        "symlink",
    ),
    "a symlink for the record": (
        lambda root: (
            (root / "kept.rkmeta").write_bytes((root / "k.pkl.rkmeta").read_bytes()),
            (root / "k.pkl.rkmeta").unlink(),
            (root / "k.pkl.rkmeta").symlink_to(root / "kept.rkmeta"),
        ),
        UnsafeLocationError,
        "symlink",
    ),
    "nothing at all": (
        lambda root: ((root / "k.pkl").unlink(), (root / "k.pkl.rkmeta").unlink()),
        ResultNotFoundError,
        "nothing is stored",
    ),
}


@pytest.mark.parametrize("damage", list(DAMAGE))
def test_anything_wrong_goes_the_general_way_and_is_named(tmp_path, general_reads, damage):
    make, error, words = DAMAGE[damage]
    r = _written(tmp_path)
    make(tmp_path)
    outcome: list[BaseException] = []

    def read() -> None:
        try:
            r.read("k.pkl")
        except BaseException as exc:  # collected and asserted below
            outcome.append(exc)

    reader = threading.Thread(target=read)  # a reader must never block on a FIFO
    reader.start()
    reader.join(timeout=30)
    assert not reader.is_alive(), "the read blocked"
    assert len(outcome) == 1 and isinstance(outcome[0], error), outcome
    assert words in str(outcome[0])
    assert general_reads, "the damage was not seen by the two-read path"


def test_a_mismatched_serializer_or_key_is_refused_as_before(tmp_path, general_reads):
    r = _written(tmp_path)
    with pytest.raises(SerializerMismatchError, match="'pickle' but is being read with 'json'"):
        LocalResult(dir=tmp_path, serializer=JSONSerializer()).read("k.pkl")
    with pytest.raises(ResultCorruptError, match="not signed"):
        LocalResult(dir=tmp_path, signing_key=KEY).read("k.pkl")
    _written(tmp_path, signing_key=KEY)
    with pytest.raises(ResultCorruptError, match="key this result does not have"):
        LocalResult(dir=tmp_path, signing_key="o" * 32).read("k.pkl")
    assert r.read("k.pkl").value == VALUE  # a signed pair reads without a key
    assert len(general_reads) == 3


def test_pairs_it_leaves_to_the_general_path_still_read(tmp_path, general_reads):
    # An interrupted publish (the record names the payload on disk only as the one
    # it replaces), a payload over 64 KB, a record padded past one small read.
    r = _written(tmp_path)
    old = (tmp_path / "k.pkl").read_bytes()
    old_record = (tmp_path / "k.pkl.rkmeta").read_bytes()
    new = Record("pickle", Record.digest_of(b"other"), 5).to_metadata()
    sidecar = with_previous(new, old_record, lambda: len(old), lambda: Record.digest_of(old))
    (tmp_path / "k.pkl.rkmeta").write_bytes(sidecar)
    assert r.read("k.pkl").value == VALUE
    large = {"blob": b"x" * (1 << 17)}
    r.write(large, location="large.pkl")
    assert r.read("large.pkl").value == large
    r.write(VALUE, location="padded.pkl")
    padded = (tmp_path / "padded.pkl.rkmeta").read_bytes()[:-1] + b" " * 5000 + b"}"
    (tmp_path / "padded.pkl.rkmeta").write_bytes(padded)
    assert r.read("padded.pkl").value == VALUE
    assert general_reads == ["k.pkl", "large.pkl", "padded.pkl"]


WRITER = r"""
import sys
from resultkit.results import LocalResult
r = LocalResult(dir=sys.argv[1])
print("ready", flush=True)
for i in range(1, int(sys.argv[2]) + 1):
    r.write({"i": i, "pad": "x" * (i % 4) * 300}, location="k.pkl")
"""


@pytest.mark.parametrize(
    ("exchange", "writes"), [("1", 1500), ("0", 150)], ids=["exchange", "rename"]
)
def test_reads_racing_one_writer_never_fail_nor_go_back(tmp_path, general_reads, exchange, writes):
    """Old or new, never "corrupt", and never older than a value already read."""
    r = _written(tmp_path, {"i": 0, "pad": ""})
    writer = subprocess.Popen(
        [sys.executable, "-c", WRITER, str(tmp_path), str(writes)],
        stdout=subprocess.PIPE,
        text=True,
        env={**os.environ, "RESULTKIT_LOCAL_EXCHANGE": exchange},
    )
    assert writer.stdout is not None and writer.stdout.readline() == "ready\n"
    seen, reads = [0], 0
    while writer.poll() is None:
        value = r.read("k.pkl").value
        reads += 1
        assert value["i"] >= seen[-1] and len(value["pad"]) == value["i"] % 4 * 300
        if value["i"] != seen[-1]:
            seen.append(value["i"])
    assert writer.wait() == 0
    assert r.read("k.pkl").value["i"] == writes
    assert len(seen) > 10, f"the reads hardly raced the writes: {len(seen)} values seen"
    # Both paths served reads in the race (the general one mid-publish).
    assert 0 < len(general_reads) < reads, (len(general_reads), reads)


def test_a_location_read_again_gives_the_same_answers_as_the_first_time(tmp_path):
    """Checked locations are remembered: the answers, refusals included, do not change."""
    r = _written(tmp_path)
    url = f"file://{tmp_path}/./k.pkl"
    for _ in range(2):  # the second round answers from what the first remembered
        # A canonical location passed back stays as given; the same text as a str,
        # or a relative spelling, is normalised.
        assert r.read(FormattedLocation(url)).location == url
        assert r.read(url).location == f"file://{tmp_path}/k.pkl"
        assert r.read("./k.pkl").location == f"file://{tmp_path}/k.pkl"
        assert r.format(x=1).read("k.pkl").value == VALUE
        for refused in ("../k.pkl", "k.pkl.rkmeta", f"file://{tmp_path.parent}/k.pkl"):
            with pytest.raises(UnsafeLocationError):
                r.read(refused)
    shipped = pickle.loads(pickle.dumps(r))
    assert shipped.read(FormattedLocation(url)).location == url and shipped == r
