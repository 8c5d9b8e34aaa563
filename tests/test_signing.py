"""Signed results: with a key, nothing unsigned, tampered, swapped or relocated is unpickled."""

from __future__ import annotations

import os
import pickle
from pathlib import Path

import pytest

from resultkit.errors import ConfigurationError, ResultCorruptError
from resultkit.results import LocalResult, MemoryResult
from resultkit.results._record import Record

KEY = "k" * 32
OTHER = "o" * 32


class Boom:
    """Unpickling it creates a file: the proof that bytes reached pickle."""

    def __init__(self, path: str) -> None:
        self.path = path

    def __reduce__(self):
        return (Path.touch, (Path(self.path),))


def _forge(tmp_path: Path, name: str, payload: bytes) -> None:
    """What an attacker with write access but no key can do: payload and a matching record."""
    (tmp_path / name).write_bytes(payload)
    record = Record("pickle", Record.digest_of(payload), len(payload))
    (tmp_path / f"{name}.rkmeta").write_bytes(record.to_bytes())


def test_signed_roundtrip_and_the_key_is_never_shown(tmp_path):
    r = LocalResult(dir=tmp_path, signing_key=KEY)
    written = r.write({"a": 1}, location="x.pkl")
    assert written.record.signature and written.record.key_id
    assert r.read("x.pkl").value == {"a": 1}
    assert KEY not in repr(r) and KEY not in (tmp_path / "x.pkl.rkmeta").read_text()


def test_tampered_payload_with_a_recomputed_record_never_runs(tmp_path):
    marker = tmp_path / "pwned"
    r = LocalResult(dir=tmp_path, signing_key=KEY)
    r.write("honest", location="x.pkl")
    _forge(tmp_path, "x.pkl", pickle.dumps(Boom(str(marker))))
    with pytest.raises(ResultCorruptError, match="not signed.*Nothing was deserialized"):
        r.read("x.pkl")
    assert not marker.exists()
    # Without a key the digest matches, so the same forgery would be read: that is
    # what signing adds.
    assert LocalResult(dir=tmp_path).read("x.pkl") is not None
    assert marker.exists()


def test_swapped_and_relocated_pairs_are_refused(tmp_path):
    r = LocalResult(dir=tmp_path, signing_key=KEY)
    r.write("value of a", location="a.pkl")
    r.write("value of b", location="b.pkl")
    a = ((tmp_path / "a.pkl").read_bytes(), (tmp_path / "a.pkl.rkmeta").read_bytes())
    b = ((tmp_path / "b.pkl").read_bytes(), (tmp_path / "b.pkl.rkmeta").read_bytes())
    (tmp_path / "a.pkl").write_bytes(b[0])
    (tmp_path / "a.pkl.rkmeta").write_bytes(b[1])
    (tmp_path / "b.pkl").write_bytes(a[0])
    (tmp_path / "b.pkl.rkmeta").write_bytes(a[1])
    for name in ("a.pkl", "b.pkl"):
        with pytest.raises(ResultCorruptError, match="signature does not match"):
            r.read(name)
    os.makedirs(tmp_path / "moved")
    (tmp_path / "moved" / "c.pkl").write_bytes(a[0])
    (tmp_path / "moved" / "c.pkl.rkmeta").write_bytes(a[1])
    with pytest.raises(ResultCorruptError, match="signature does not match"):
        r.read("moved/c.pkl")


def test_key_rotation_several_keys_verify_the_first_signs():
    old = MemoryResult(root="/signing-rotation", signing_key=OTHER)
    old.write("signed with the old key", location="k.pkl")
    rotated = MemoryResult(root="/signing-rotation", signing_key=[KEY, OTHER])
    assert rotated.read("k.pkl").value == "signed with the old key"
    rotated.write("new", location="n.pkl")
    assert MemoryResult(root="/signing-rotation", signing_key=KEY).read("n.pkl").value == "new"
    with pytest.raises(ResultCorruptError, match="key this result does not have"):
        MemoryResult(root="/signing-rotation", signing_key=KEY).read("k.pkl")


def test_signing_key_from_the_environment(tmp_path, monkeypatch):
    monkeypatch.setenv("RESULTKIT_SIGNING_KEY", KEY)
    LocalResult(dir=tmp_path).write(1, location="e.pkl")
    monkeypatch.delenv("RESULTKIT_SIGNING_KEY")
    assert LocalResult(dir=tmp_path, signing_key=KEY).read("e.pkl").value == 1
    with pytest.raises(ResultCorruptError, match="key this result does not have"):
        LocalResult(dir=tmp_path, signing_key=OTHER).read("e.pkl")


def test_short_keys_are_refused():
    with pytest.raises(ConfigurationError, match="at least 16 bytes"):
        MemoryResult(signing_key="short")


def test_the_environment_takes_several_keys_the_first_signs(tmp_path, monkeypatch):
    MemoryResult(root="/env-rotation", signing_key=OTHER).write("old", location="o.pkl")
    monkeypatch.setenv("RESULTKIT_SIGNING_KEY", f"{KEY} {OTHER}")
    r = MemoryResult(root="/env-rotation")
    assert r.read("o.pkl").value == "old"
    assert r.write("new", location="n.pkl").record.key_id != ""
    assert MemoryResult(root="/env-rotation", signing_key=KEY).read("n.pkl").value == "new"
