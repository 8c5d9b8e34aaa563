"""Property-based fuzzing (hypothesis) of payloads, integrity records and locations.

Promises checked (README "Guarantees"), 1000 generated examples each with
RESULTKIT_STRESS=full (300 in CI):

- payloads: any picklable value round-trips through ``PickleSerializer`` and
  any JSON value through ``JSONSerializer``, exactly (type and value);
- verify before deserialize: any change to the bytes of a stored payload
  (bytes flipped, cut off or added) is detected as ``ResultCorruptError``;
  a read never returns a wrong value;
- records: whatever the ``.rkmeta`` sidecar holds (arbitrary bytes,
  arbitrary JSON, a real record with fields removed, replaced or added), a
  read returns the right value or raises ``ResultCorruptError`` (or
  ``SerializerMismatchError`` when a record that matches the payload names
  another serializer); never another exception, never a wrong value;
- containment: any text used as a location, or substituted into a template,
  is refused (``UnsafeLocationError``, ``TemplateError``) or stored strictly
  under the root: on LocalResult checked with ``os.path.realpath`` (and a
  symlink in the root that points outside must never be followed), on
  MemoryResult by the keys of the memory filesystem.

Every example gets a fresh root, so examples never see each other's files.
"""

from __future__ import annotations

import json
import math
import os
import uuid
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from fsspec.implementations.memory import MemoryFileSystem
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from resultkit.errors import (
    ResultCorruptError,
    SerializerMismatchError,
    TemplateError,
    UnsafeLocationError,
)
from resultkit.results import LocalResult, MemoryResult
from resultkit.serializers import JSONSerializer

# 1000 examples each with full counts (RESULTKIT_STRESS=full, as for tests/stress);
# CI runs 300 of each to stay within its time.
FULL = os.environ.get("RESULTKIT_STRESS", "").lower() == "full"
FUZZ = settings(
    max_examples=1000 if FULL else 300,
    deadline=None,
    database=None,  # nothing written into the checkout
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)


@pytest.fixture(scope="module")
def base(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("fuzz")


def _forget(root: str) -> None:
    """Drop a memory root's files (fsspec's memory filesystem scans every file per call)."""
    for key in [k for k in MemoryFileSystem.store if k == root or k.startswith(root + "/")]:
        MemoryFileSystem.store.pop(key, None)
    MemoryFileSystem.pseudo_dirs[:] = [
        d for d in MemoryFileSystem.pseudo_dirs if not (d == root or d.startswith(root + "/"))
    ]


def _fresh(base: Path) -> Path:
    folder = base / uuid.uuid4().hex[:12]
    folder.mkdir()
    return folder


def _same(a: Any, b: Any) -> bool:
    """Equal, of the same types all the way down (1 == 1.0 == True do not count)."""
    if type(a) is not type(b):
        return False
    if isinstance(a, float):
        return a == b or (math.isnan(a) and math.isnan(b))
    if isinstance(a, (list, tuple)):
        return len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b, strict=True))
    if isinstance(a, dict):
        return list(a) == list(b) and all(
            _same(a[k], b[k]) and type(k) is type(kb) for k, kb in zip(a, b, strict=True)
        )
    if isinstance(a, (set, frozenset)):
        return a == b
    return bool(a == b)


# == payloads ===================================================================================
_scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.floats(allow_nan=False),
    st.text(),
    st.binary(),
    st.complex_numbers(allow_nan=False),
    st.floats(allow_nan=False, allow_infinity=False).map(Decimal),  # st.decimals() is slow
    st.datetimes(),
    st.integers(0, 2**128 - 1).map(lambda n: uuid.UUID(int=n)),
)
_hashable = st.one_of(st.integers(), st.text(), st.binary(), st.booleans(), st.none())
picklable = st.recursive(
    _scalars,
    lambda inner: st.one_of(
        st.lists(inner, max_size=5),
        st.tuples(inner, inner),
        st.dictionaries(_hashable, inner, max_size=5),
        st.frozensets(_hashable, max_size=5),
        st.sets(_hashable, max_size=5),
    ),
    max_leaves=20,
)
# For the damage and record fuzzers the value matters less than the damage: smaller, faster.
small_values = st.recursive(
    _scalars,
    lambda inner: st.one_of(
        st.lists(inner, max_size=4), st.dictionaries(_hashable, inner, max_size=4)
    ),
    max_leaves=6,
)
# Keys that look like the JSON serializer's own tags come up on purpose.
_json_keys = st.one_of(st.text(), st.sampled_from(["__resultkit_type__", "value", "bytes", "date"]))
json_values = st.recursive(
    st.one_of(st.none(), st.booleans(), st.integers(), st.floats(allow_nan=False), st.text()),
    lambda inner: st.one_of(
        st.lists(inner, max_size=5), st.dictionaries(_json_keys, inner, max_size=5)
    ),
    max_leaves=20,
)


@FUZZ
@given(value=picklable)
def test_any_picklable_value_round_trips(value):
    root = f"/fz-pickle-{uuid.uuid4().hex}"
    r = MemoryResult(root=root)
    try:
        written = r.write(value, location="v.pkl")
        assert _same(r.read(written.location).value, value)
    finally:
        _forget(root)


@FUZZ
@given(value=json_values)
@example(value={"__resultkit_type__": "date", "value": "2026-11-23"})
@example(value={"__resultkit_type__": "bytes", "value": "not base64!"})
def test_any_json_value_round_trips(value):
    root = f"/fz-json-{uuid.uuid4().hex}"
    r = MemoryResult(root=root, serializer=JSONSerializer())
    try:
        written = r.write(value, location="v.json")
        assert _same(r.read(written.location).value, value)
    finally:
        _forget(root)


# == damaged payloads are always detected ===========================================================
_damage = st.one_of(
    st.tuples(
        st.just("flip"),
        st.lists(
            st.tuples(st.floats(0, 1, exclude_max=True), st.integers(1, 255)),
            min_size=1,
            max_size=4,
        ),
    ),
    st.tuples(st.just("cut"), st.floats(0, 1, exclude_max=True)),
    st.tuples(st.just("add"), st.binary(min_size=1, max_size=16)),
)


def _damaged(data: bytes, damage: tuple) -> bytes:
    kind, how = damage
    if kind == "flip":
        out = bytearray(data)
        for where, mask in how:
            out[int(where * len(out))] ^= mask
        return bytes(out)
    if kind == "cut":
        return data[: int(how * len(data))]
    return data + how


@FUZZ
@given(value=small_values, damage=_damage)
def test_any_change_to_a_stored_payload_is_detected(base, value, damage):
    root = _fresh(base)
    r = LocalResult(dir=root)
    r.write(value, location="v.pkl")
    payload = root / "v.pkl"
    original = payload.read_bytes()
    changed = _damaged(original, damage)
    payload.write_bytes(changed)
    if changed == original:  # flips that cancel out: the value must still read
        assert _same(r.read("v.pkl").value, value)
        return
    with pytest.raises(ResultCorruptError):
        r.read("v.pkl")


# == whatever the record holds =====================================================================
_json_any = st.recursive(
    st.one_of(st.none(), st.booleans(), st.integers(), st.floats(allow_nan=False), st.text()),
    lambda inner: st.one_of(
        st.lists(inner, max_size=4), st.dictionaries(st.text(), inner, max_size=4)
    ),
    max_leaves=12,
)
_field_values = st.one_of(
    _json_any,
    st.integers().map(str),
    st.sampled_from(
        [
            "1",
            "0",
            "-1",
            "2",
            "pickle",
            "json",
            "xxh3_128:",
            "xxh3_128:00",
            "2026-01-01T00:00:00",
            "2026-01-01T00:00:00+00:00",
            "9999-12-31T23:59:59+00:00",
            "1970-01-01T00:00:00+00:00",
            "",
            "NaN",
            "1e309",
            "\x00",
        ]
    ),
)
_FIELDS = [
    "digest",
    "serializer",
    "size",
    "version",
    "written_at",
    "previous",
    "signature",
    "key_id",
]
_edits = st.lists(
    st.one_of(
        st.tuples(st.just("drop"), st.sampled_from(_FIELDS), st.none()),
        st.tuples(st.just("set"), st.sampled_from(_FIELDS), _field_values),
        st.tuples(st.just("add"), st.text(max_size=10), _field_values),
        st.tuples(st.just("previous-of-self"), st.just(""), st.just("")),
    ),
    max_size=4,
)
_sidecars = st.one_of(
    st.tuples(st.just("bytes"), st.binary(max_size=200)),
    st.tuples(st.just("json"), _json_any),
    st.tuples(st.just("edit"), _edits),
    st.tuples(st.just("deep"), st.integers(1, 100_000)),
)


def _sidecar(valid: dict[str, Any], how: tuple) -> bytes:
    kind, arg = how
    if kind == "bytes":
        return bytes(arg)
    if kind == "json":
        return json.dumps(arg).encode()
    if kind == "deep":  # nested arrays, as deep as asked (far past the parser's recursion limit)
        return (
            ("[" * arg + "]" * arg).encode()
            if arg % 2
            else ('{"a":' * arg + "1" + "}" * arg).encode()
        )
    doc: dict[str, Any] = dict(valid)
    for op, field, val in arg:
        if op == "drop":
            doc.pop(field, None)
        elif op == "previous-of-self":  # a "previous" that vouches for this very payload
            doc["previous"] = json.dumps({k: v for k, v in valid.items() if k != "previous"})
        else:
            doc[field] = val
    return json.dumps(doc).encode()


@FUZZ
@given(value=small_values, how=_sidecars)
@example(value=1, how=("edit", [("set", "size", "1073741823")]))
@example(value=1, how=("edit", [("set", "serializer", "json")]))
@example(value=1, how=("edit", [("set", "written_at", "9999-12-31T23:59:59+00:00")]))
@example(value=1, how=("edit", [("set", "written_at", "2026-01-01T00:00:00")]))
@example(value=1, how=("deep", 100_001))
def test_any_record_reads_right_or_is_called_corrupt(base, value, how):
    root = _fresh(base)
    r = LocalResult(dir=root)
    r.write(value, location="v.pkl")
    record = root / "v.pkl.rkmeta"
    valid = json.loads(record.read_bytes())
    record.write_bytes(_sidecar(valid, how))
    try:
        got = r.read("v.pkl").value
    except ResultCorruptError:
        return
    except SerializerMismatchError as exc:
        assert exc.written_by != "pickle"  # only for a record that names another serializer
        return
    assert _same(got, value), f"a wrong value was returned for the record {how!r}"


# == locations: refused, or strictly under the root =====================================================
_FRAGMENTS = [
    "..",
    ".",
    "/",
    "//",
    "\\",
    "~",
    "~root",
    "$HOME",
    "%2e%2e",
    "..%2f",
    "%2F",
    "C:",
    "c:\\",
    "file://",
    "file:///etc/passwd",
    "s3://b/",
    "memory://",
    "memory:///x",
    "\x00",
    "\n",
    "\r",
    "\x1b",
    "\t",
    "\x7f",
    "{",
    "}",
    "{x}",
    "{0}",
    "{}",
    "{x!r}",
    "{x.y}",
    "{x[0]}",
    ".rkmeta",
    ".RKMETA",
    ".rktmp-",
    ".RkTmP-1-2",
    ".rklocks",
    "escape",
    "escape/",
    "*",
    "?",
    "[",
    "]",
    "[!a]",
    " ",
    "\u2024",
    "\uff0e\uff0e",
    "\u202e",
    "\ufeff",
    "a",
    "b.pkl",
]
location_text = st.lists(
    st.one_of(st.sampled_from(_FRAGMENTS), st.text(max_size=8)), max_size=6
).map("".join)
_TEMPLATES = ["{x}", "{x}.pkl", "a/{x}/b.pkl", "{x}/{x}", "k-{x}"]
REFUSALS = (UnsafeLocationError, TemplateError)


def _local_root(base: Path) -> tuple[Path, Path, LocalResult]:
    """A fresh root, a sibling folder 'outside' and a symlink root/escape -> outside."""
    folder = _fresh(base)
    root, outside = folder / "root", folder / "outside"
    root.mkdir()
    outside.mkdir()
    (root / "escape").symlink_to(outside, target_is_directory=True)
    return root, outside, LocalResult(dir=root)


def _check_local(root: Path, outside: Path, written: LocalResult) -> None:
    real_root = os.path.realpath(root)
    assert written.location.startswith(written.root_url.rstrip("/") + "/"), written.location
    real = os.path.realpath(written.location[len("file://") :])  # canonical: file:///abs/path
    assert real.startswith(real_root + os.sep), f"{written.location} is stored at {real}"
    assert list(outside.iterdir()) == [], (
        f"something landed outside the root: {list(outside.iterdir())}"
    )
    assert sorted(p.name for p in root.parent.iterdir()) == ["outside", "root"]
    for dirpath, _, files in os.walk(root):  # os.walk does not follow the symlink
        for name in files:
            assert os.path.realpath(os.path.join(dirpath, name)).startswith(real_root + os.sep)


def _exercise(r: Any, location: Any, keys: dict[str, Any]) -> Any:
    """Write, check, read back; the written Result, or None when refused."""
    try:
        written = r.write(["fuzz", 1], location=location, **keys)
    except REFUSALS:
        for call in (lambda: r.exists(location, **keys), lambda: r.read(location, **keys)):
            with pytest.raises(REFUSALS):  # refused for every operation alike
                call()
        return None
    assert r.exists(written.location)
    assert r.read(written.location).value == ["fuzz", 1]
    assert r.read(location, **keys).value == ["fuzz", 1]
    return written


@FUZZ
@given(text=location_text)
@example(text="escape/x.pkl")
@example(text="a/../../x.pkl")
@example(text="file:///etc/passwd")
def test_any_text_as_a_local_location_stays_under_the_root(base, text):
    root, outside, r = _local_root(base)
    written = _exercise(r, text, {})
    if written is not None:
        _check_local(root, outside, written)


@FUZZ
@given(template=st.sampled_from(_TEMPLATES), text=location_text)
@example(template="{x}/v.pkl", text="escape")
@example(template="{x}", text="../x")
def test_any_text_as_a_local_template_value_stays_under_the_root(base, template, text):
    root, outside, r = _local_root(base)
    written = _exercise(r, template, {"x": text})
    if written is not None:
        _check_local(root, outside, written)


def _memory_state() -> tuple[set[str], set[str]]:
    return set(MemoryFileSystem.store), set(MemoryFileSystem.pseudo_dirs)


def _check_memory(root: str, before: tuple[set[str], set[str]], written: MemoryResult) -> None:
    assert written.location.startswith(f"memory://{root}/"), written.location
    files, dirs = _memory_state()
    added = files - before[0]
    assert added, "the write stored nothing"
    for key in added:
        assert key.startswith(root + "/"), f"{key!r} was stored outside {root!r}"
    for folder in dirs - before[1]:
        assert folder == root or folder.startswith(root + "/"), (
            f"folder {folder!r} outside {root!r}"
        )


@FUZZ
@given(text=location_text)
def test_any_text_as_a_memory_location_stays_under_the_root(text):
    root = f"/fz-loc-{uuid.uuid4().hex}"
    r = MemoryResult(root=root)
    before = _memory_state()
    try:
        written = _exercise(r, text, {})
        if written is not None:
            _check_memory(root, before, written)
        else:
            assert _memory_state()[0] == before[0]
    finally:
        _forget(root)


@FUZZ
@given(template=st.sampled_from(_TEMPLATES), text=location_text)
def test_any_text_as_a_memory_template_value_stays_under_the_root(template, text):
    root = f"/fz-tpl-{uuid.uuid4().hex}"
    r = MemoryResult(root=root)
    before = _memory_state()
    try:
        written = _exercise(r, template, {"x": text})
        if written is not None:
            _check_memory(root, before, written)
        else:
            assert _memory_state()[0] == before[0]
    finally:
        _forget(root)


def test_the_fuzzers_reach_both_outcomes(base):
    """A sanity check of the location strategy: it yields both refusals and writes."""
    seen = {"refused": 0, "stored": 0}

    @settings(max_examples=200, deadline=None, database=None)
    @given(text=location_text)
    def probe(text):
        root = f"/fz-probe-{uuid.uuid4().hex}"
        try:
            MemoryResult(root=root).write(1, location=text)
        except REFUSALS:
            seen["refused"] += 1
        else:
            seen["stored"] += 1
        finally:
            _forget(root)

    probe()
    assert seen["refused"] > 10 and seen["stored"] > 10, seen
